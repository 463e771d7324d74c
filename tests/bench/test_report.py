"""Scenario tables: the ratio imapd/peer per column."""

from __future__ import annotations

from bench.report import Column, PeerFigures, ScenarioReport, format_report, ratio


def test_ratios_are_imapd_over_peer_and_skip_context_columns() -> None:
    report = ScenarioReport("t", [Column("ops", "ops/s"), Column("p99", "p99 ms", False),
                                  Column("n", "count", compared=False)])
    report.rows = [PeerFigures("imapd", {"ops": 300.0, "p99": 20.0, "n": 10.0}),
                   PeerFigures("dovecot", {"ops": 600.0, "p99": 10.0, "n": 5.0}, errors=2)]
    report.skipped["pymap-dict"] = "not installed"
    assert ratio(report, "dovecot", "ops") == 0.5
    assert ratio(report, "dovecot", "p99") == 2.0
    assert ratio(report, "dovecot", "n") is None
    assert ratio(report, "pymap-dict", "ops") is None
    text = format_report(report)
    assert "imapd/dovecot" in text and "0.500x" in text and "2.00x" in text
    assert "skipped pymap-dict: not installed" in text
    assert "lower is better: p99 ms" in text

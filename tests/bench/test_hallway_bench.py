"""The hallway benchmark's logic without servers (issue 12): ratios, the
Markdown it writes into docs/benchmarks.md, options, the idle count."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench import hallway_bench, idle
from bench.hallway_report import BEGIN_MARK, END_MARK, fmt, headline, ratio, render, update_doc
from bench.peers import Peer
from bench.report import PeerFigures

RESULTS: dict[str, Any] = {
    "header": {"date": "2026-12-06 13:00 UTC", "before": "6e81f84", "after": "abc1234",
               "machine": {"cores": "2", "cpu": "AMD EPYC", "memory": "23.5 GiB"}, "appenders": 8,
               "load_before": "1.00 1.00 1.00", "load_after": "2.00 2.00 2.00",
               "skipped": {"pymap-maildir": "too slow"}, "versions": {"dovecot": "2.3.19", "pymap": "0.36.7"}},
    "mixed": {"10": {
        "before": {"commands_per_s": 600.0, "p50_ms": 10.0, "errors": 0, "notes": ["load x"]},
        "after": {"commands_per_s": 900.0, "p50_ms": 8.0, "errors": 0, "notes": []},
        "dovecot": {"commands_per_s": 1200.0, "p50_ms": 4.0, "errors": 0, "notes": []},
        "pymap-dict": {"commands_per_s": 200.0, "p50_ms": 40.0, "errors": 7, "notes": []},
    }},
    "latency": {"before": {"noop_p50_ms": 12.0, "store_p50_ms": 12.5, "errors": 0, "notes": []},
                "after": {"noop_p50_ms": 0.5, "store_p50_ms": 9.0, "errors": 0, "notes": []}},
    "idle": {"before": {"connections": 10000.0, "rss_kib_per_conn": 11.0, "errors": 0, "notes": []},
             "after": {"errors": 1, "notes": ["RuntimeError: server exited with 1"]}},
}


def test_ratio_needs_two_positive_numbers() -> None:
    assert ratio({"x": 3.0}, {"x": 2.0}, "x") == 1.5
    assert ratio({"x": 3.0}, {"x": 0.0}, "x") is None
    assert ratio({"x": 3.0}, None, "x") is None
    assert ratio({}, {"x": 2.0}, "x") is None
    assert fmt(None) == "–" and fmt(1234.5) == "1,234" and fmt(0.1234) == "0.123"


def test_mixed_table_gives_imapd_over_peer_for_before_and_after() -> None:
    text = render(RESULTS)
    assert "| before/dovecot | 0.500× |" in text
    assert "| after/dovecot | 0.750× |" in text
    assert "| after/pymap-dict | 4.50× |" in text
    assert "| after/before | 1.50× |" in text
    assert "| pymap-dict | 200 | 40.0 |" in text and "| 7 |" in text
    assert "before = `6e81f84`, after = `abc1234`" in text
    assert "1.00 1.00 1.00 at the start" in text and "Skipped: pymap-maildir: too slow" in text
    assert "Versions: dovecot 2.3.19, pymap 0.36.7." in text


def test_headline_and_failed_server_rows() -> None:
    lines = headline(RESULTS)
    assert "imapd/dovecot: before 0.500× → after 0.750×" in lines[0]
    assert any("NOOP p50 under APPEND load: before 12.0 ms → after 0.500 ms" in line for line in lines)
    text = render(RESULTS)
    # A server that never started shows its reason and dashes, not zeros.
    assert "* after: RuntimeError: server exited with 1" in text
    assert "| after | – | – |" in text


def test_update_doc_replaces_only_the_marked_block() -> None:
    doc = f"# Benchmarks\n\nold section\n\n## Hallway\n\nintro\n\n{BEGIN_MARK}\nfirst run\n{END_MARK}\n\nafter\n"
    once = update_doc(doc, "second run\n")
    assert "first run" not in once and "second run" in once
    assert once.startswith("# Benchmarks\n\nold section") and once.endswith(f"{END_MARK}\n\nafter\n")
    assert update_doc(once, "second run\n") == once
    fresh = update_doc("# Benchmarks\n", "a run")
    assert fresh == f"# Benchmarks\n\n{BEGIN_MARK}\na run\n{END_MARK}\n"


def test_options_override_the_scale() -> None:
    quick = hallway_bench.scale_of(hallway_bench.parse_args(["--quick"]))
    assert quick == hallway_bench.QUICK
    args = hallway_bench.parse_args(["--mixed-clients", "3,7", "--idle-connections", "42", "--appenders", "2"])
    scale = hallway_bench.scale_of(args)
    assert (scale.mixed_clients, scale.idle_connections, scale.appenders) == ((3, 7), 42, 2)
    assert scale.push_rounds == hallway_bench.FULL.push_rounds
    with pytest.raises(SystemExit):
        hallway_bench.parse_args(["--parts", "mixed,bogus"])


def test_idle_count_shrinks_to_the_open_files_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hallway_bench, "raise_fd_limit", lambda wanted: 4096)
    count, note = hallway_bench.idle_count(10_000)
    assert count == 3596 and note is not None and "3,596 connections instead of 10,000" in note
    monkeypatch.setattr(hallway_bench, "raise_fd_limit", lambda wanted: wanted)
    assert hallway_bench.idle_count(10_000) == (10_000, None)


def test_idle_figures_take_max_and_count_from_the_push_note(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_measure(peer: Peer, count: int, pushes: int, row: PeerFigures, profile: object) -> None:
        row.values.update(connections=float(count), push_p50_ms=5.0)
        row.notes.append("push max 1,234 ms over 60000 notifications")

    monkeypatch.setattr(idle, "_measure", fake_measure)
    monkeypatch.setattr(idle, "OPEN_BUDGET", idle.OPEN_BUDGET)  # restored after the test
    peer: Any = type("P", (), {"name": "after"})()
    figures = asyncio.run(hallway_bench.idle_and_push(peer, hallway_bench.QUICK, 3000))
    assert figures["push_max_ms"] == 1234.0 and figures["notifications"] == 60000.0
    assert figures["connections"] == 3000.0 and figures["errors"] == 0
    assert not any(note.startswith("push max") for note in figures["notes"])

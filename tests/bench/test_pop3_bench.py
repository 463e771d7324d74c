"""The POP3 benchmark (issue 16): its report without servers, then one tiny
real run against ``imapd serve --pop3`` (Dovecot is the full run's business)."""

from __future__ import annotations

from typing import Any

from bench import pop3_bench
from bench.pop3_bench import BEGIN_MARK, END_MARK, SECTION, Scale, make_message, markdown, update_doc

FIGURES = {"mb_per_s": 20.0, "messages_per_s": 400.0, "cpu_ms_per_mb": 50.0, "dele_quit_ms": 30.0, "login_stat_p50_ms": 6.0,
           "list_p50_ms": 2.0, "uidl_p50_ms": 3.0, "login_stat_p90_ms": 7.0, "list_p90_ms": 2.5,
           "uidl_p90_ms": 4.0, "notes": ["SQLite"], "load_before": "1.00", "load_after": "1.50"}
RESULTS: dict[str, Any] = {
    "header": {"date": "2026-12-06 19:00 UTC", "machine": {"cores": "2", "cpu": "AMD EPYC", "memory": "23.5 GiB"},
               "versions": {"imapd": "git abc1234", "dovecot": "2.3.19"}, "load_before": "1.00 1.00 1.00",
               "load_after": "2.00 2.00 2.00"},
    "scale": {"retr_messages": 200, "size": 50_000, "rounds": 3, "maildrop": 1000, "iterations": 15},
    "servers": {"imapd": FIGURES,
                "dovecot": {**FIGURES, "mb_per_s": 40.0, "messages_per_s": 800.0, "list_p50_ms": 1.0}},
}


def test_messages_are_the_same_for_every_run_and_have_dot_lines() -> None:
    first = make_message(3, 50_000)
    assert first == make_message(3, 50_000) != make_message(4, 50_000)
    assert 50_000 <= len(first) < 50_100 and b"\r\n." in first and first.endswith(b"\r\n")


def test_markdown_has_both_tables_and_the_ratios() -> None:
    text = markdown(RESULTS)
    assert "| imapd | 20.0 | 400 | 50.0 | 30.0 |" in text
    assert "| imapd/Dovecot | 0.500× | 0.500× | 1.00× | 1.00× |" in text  # throughput: half of Dovecot's
    assert "| imapd/Dovecot | 1.00× | 2.00× |" in text  # LIST twice as slow
    assert "load 1.00 1.00 1.00 before" in text


def test_a_skipped_or_failed_server_has_no_figures_and_says_why() -> None:
    results = {**RESULTS, "servers": {"imapd": FIGURES, "dovecot": {"skipped": "dovecot not installed"}}}
    text = markdown(results)
    assert "| dovecot | – | – | – | – |" in text and "dovecot skipped: dovecot not installed" in text
    assert "| imapd/Dovecot | – | – | – |" in text


def test_update_doc_appends_the_section_once_then_replaces_the_block() -> None:
    once = update_doc("# Benchmarks\n", "first\n")
    assert once.count(SECTION) == 1 and f"{BEGIN_MARK}\nfirst\n{END_MARK}" in once
    twice = update_doc(once + "\n## Later\n", "second\n")
    assert "first" not in twice and f"{BEGIN_MARK}\nsecond\n{END_MARK}" in twice and twice.endswith("## Later\n")


def test_a_tiny_real_run_against_imapd() -> None:
    """Fills, RETRs (bytes checked), DELEs and times a small maildrop on a real server."""
    scale = Scale(retr_messages=3, size=5_000, rounds=1, maildrop=5, iterations=1)
    figures = pop3_bench.measure(("imapd",), scale)["imapd"]
    assert "error" not in figures, figures
    assert figures["messages"] == 3 and figures["mb_per_s"] > 0 and figures["dele_quit_ms"] > 0
    assert figures["cpu_ms_per_mb"] >= 0
    assert figures["uidl_p50_ms"] > 0 and figures["maildrop"] == 5

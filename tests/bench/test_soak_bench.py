"""The soak benchmark (issue 13, item 9): the verdict, the figures and the
Markdown without a server, then one short real run against ``python -m
imapd serve`` (the WAL it watches must be the store's real file)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from bench import soak_bench
from bench.hallway_bench import Tree, imapd_server
from bench.peers import REPO_ROOT, Peer
from bench.soak_bench import MIB, Sample, SoakConfig, judge, markdown, probe
from imapd.storage.sqlite.schema import DB_FILENAME


def run_of(rss_mib: list[float], fds: list[int] | None = None, wal_mib: float = 4.0) -> list[Sample]:
    """boot, start, one sample per minute with ``rss_mib``, after."""
    fds = fds or [30] * (len(rss_mib) + 3)
    samples = [Sample("boot", 0, 50 * 1024, 0, fds[0]), Sample("start", 0, 60 * 1024, int(wal_mib * MIB), fds[1])]
    for k, rss in enumerate(rss_mib):
        samples.append(Sample(f"{k + 1}:00", 60.0 * (k + 1), int(rss * 1024), int(wal_mib * MIB), fds[k + 2]))
    samples.append(Sample("after", 60.0 * len(rss_mib) + 2, int(rss_mib[-1] * 1024), int(wal_mib * MIB), fds[-1]))
    return samples


def test_flat_after_warm_up_is_flat_even_if_the_cold_start_was_lower() -> None:
    verdict = judge(run_of([80, 81, 80.5, 82, 81]), SoakConfig(), errors=0)
    assert verdict.ok, verdict.line
    assert verdict.line.startswith("verdict: FLAT")
    assert verdict.rss_growth_kib == 21 * 1024 and verdict.rss_growth_warm_kib == 1024


def test_steady_growth_is_not_flat() -> None:
    verdict = judge(run_of([80, 83, 86, 89, 92]), SoakConfig(), errors=0)
    assert not verdict.ok
    assert "RSS grew 12.0 MiB after warm-up" in verdict.line
    assert abs(verdict.rss_slope_kib_per_min - 3 * 1024) < 1


def test_descriptor_leak_wal_growth_and_errors_each_fail_the_verdict() -> None:
    leak = judge(run_of([80] * 4, fds=[20, 30, 30, 31, 35, 50, 28]), SoakConfig(), errors=0)
    assert not leak.ok and "descriptors 30 → 50" in leak.line
    kept = judge(run_of([80] * 4, fds=[20, 30, 30, 30, 30, 30, 31]), SoakConfig(), errors=0)
    assert not kept.ok and "31 after the clients left" in kept.line
    wal = judge(run_of([80] * 4, wal_mib=40), SoakConfig(), errors=0)
    assert not wal.ok and "WAL 40.0 MiB at the end (limit 32 MiB)" in wal.line
    errors = judge(run_of([80] * 4), SoakConfig(), errors=3)
    assert not errors.ok and "3 load errors" in errors.line
    short = judge(run_of([80, 80]), SoakConfig(), errors=0)
    assert "too short to judge" in short.line


def test_interval_figures_and_markdown() -> None:
    sample = soak_bench.interval_figures(Sample("0:10", 10, 1024, 0, 9), {"NOOP": [0.001] * 120 + [0.5, 0.9],
                                                                           "STORE": [0.002] * 78},
                                         window=10.0, errors=2, cpu_s=5.0, pushes=7)
    assert (sample.commands, sample.commands_per_s, sample.errors, sample.pushes) == (200, 20.0, 2, 7)
    assert (sample.p50_ms, sample.cpu_pct) == (1.0, 50.0)
    assert sample.p99_ms == 2.0  # rank 198 of 200: the slowest two are above p99
    samples = run_of([80, 81, 80])
    header = {"date": "2026-12-06 17:00 UTC", "commit": "abc1234", "load_before": "1.00 1.00 1.00",
              "load_after": "2.00 2.00 2.00", "config": asdict(SoakConfig()),
              "machine": {"cores": "2", "cpu": "AMD EPYC", "memory": "23.5 GiB", "kernel": "6.1"}}
    text = markdown(header, samples, judge(samples, SoakConfig(), 0))
    assert "Soak of `abc1234` on 2026-12-06 17:00 UTC, 10 min: 10 mixed-load clients" in text
    assert "2 cores (AMD EPYC), 23.5 GiB, Linux 6.1; load average 1.00 1.00 1.00" in text
    assert "| time | RSS MiB | WAL MiB | fds | commands/s |" in text
    assert "| boot | 50.0 | 0.00 | 30 | – |" in text and "| 2:00 | 81.0 | 4.00 | 30 |" in text
    assert text.rstrip().endswith("**") and "**verdict: " in text


def test_options() -> None:
    cfg = soak_bench.config_of(soak_bench.parse_args([]))
    assert (cfg.seconds, cfg.interval, cfg.clients) == (600.0, 60.0, 10)
    cfg = soak_bench.config_of(soak_bench.parse_args(["--minutes", "1", "--clients", "8", "--interval", "15"]))
    assert (cfg.seconds, cfg.interval, cfg.clients) == (60.0, 15.0, 8)


def test_probe_reads_rss_descriptors_and_the_wal_of_a_process(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        peer = Peer("p", "127.0.0.1", 0, "u", "p", "v", tmp_path, process)
        assert probe(peer, tmp_path, "x", 0).wal_bytes == 0
        (tmp_path / f"{DB_FILENAME}-wal").write_bytes(b"w" * 12345)
        sample = probe(peer, tmp_path, "x", 0)
        assert sample.wal_bytes == 12345 and sample.rss_kib > 1000 and sample.fds >= 3
    finally:
        process.kill()
        process.wait()


def test_a_short_real_soak_measures_the_server_and_its_wal() -> None:
    """Two clients, one idler, one large fetcher for 3 s: every kind of
    client worked (no errors, pushes seen, large bodies compared) and the
    WAL watched is the one the store writes (non-empty after the fill)."""
    cfg = SoakConfig(seconds=3.0, interval=1.5, clients=2, messages=12, idlers=1, large_messages=2,
                     large_size=300_000)
    with imapd_server(Tree("soak-test", REPO_ROOT)) as peer:
        result = asyncio.run(asyncio.wait_for(soak_bench.soak(peer, cfg), 120))
    assert result.errors == 0, result.error_samples
    labels = [s.label for s in result.samples]
    assert labels == ["boot", "start", "0:02", "0:03", "after"]
    start = result.samples[1]
    assert start.wal_bytes > 0 and start.rss_kib > 10_000 and start.fds > result.samples[0].fds
    assert sum(s.pushes for s in result.samples) > 0
    assert {"FETCH LARGE", "IDLE DONE", "APPEND", "EXPUNGE", "SEARCH", "FETCH BODY"} <= set(result.totals)

"""Long runs of the multi-session stress checker (issue 11).

    .venv/bin/python bench/stress_bench.py                       # 10 and 50 clients, 30 s, plain and QRESYNC
    .venv/bin/python bench/stress_bench.py --clients 10 --seconds 5 --modes qresync --seed 3
    .venv/bin/python bench/stress_bench.py --peer dovecot --max-new-keywords 2

N clients of ``tests/support/stress.py`` (the checker's own IMAP client)
select one INBOX on a fresh server (``bench.peers``: imapd, or a private
Dovecot when it can run here) and run random pipelined commands from a
fixed seed; every ``--checkpoint-every`` seconds all of them stop and
their pictures are compared with each other and with a fresh EXAMINE.
Prints, per run: commands per second, inconsistencies by kind (with a few
examples), commands refused (NO/BAD; stale sequence numbers under
concurrency are expected) and p50/p99 latency per command, with the load
average before and after. The exit status is 1 if any run found an
inconsistency.

The client costs CPU too: the checker (one Python process) competes with
the server for the same cores, so ops/s is the pair's throughput; the CPU
seconds of each are printed to tell which one was the limit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.peers import PeerOptions, running_peer, unavailable, versions  # noqa: E402
from bench.report import machine  # noqa: E402
from tests.support.stress import Report, run_stress  # noqa: E402
from tests.support.stress_ops import StressConfig  # noqa: E402


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_one(peer_name: str, config: StressConfig) -> tuple[Report, dict[str, object]]:
    """One run on a fresh server; the report and the conditions: load
    before/after, CPU seconds of the server and of this (checker) process."""
    options = PeerOptions(hash_cost="cheap")
    with running_peer(peer_name, options) as peer:
        before, server_cpu, checker_cpu = load(), peer.cpu_seconds(), time.process_time()
        config = StressConfig(**{**config.__dict__, "user": peer.user, "password": peer.password})
        report = run_stress(peer.host, peer.port, config)
        if report.failed_clients:  # why did the server drop them?
            serious = [line for line in peer.log_tail(100_000).splitlines()
                       if any(word in line for word in ("Fatal", "Panic", "Error", "Traceback"))]
            print(f"{peer_name} log, serious lines ({len(serious)}):\n" + "\n".join(serious[:20]))
        return report, {"load_before": before, "load_after": load(),
                        "server_cpu_s": round(peer.cpu_seconds() - server_cpu, 1),
                        "checker_cpu_s": round(time.process_time() - checker_cpu, 1)}


def as_row(peer: str, report: Report, conditions: dict[str, object]) -> dict[str, object]:
    config = report.config
    return {
        "peer": peer, "clients": config.clients, "seconds": config.seconds, "qresync": config.qresync,
        "seed": config.seed, **conditions,
        "commands": report.operations, "ops_per_second": round(report.ops_per_second(), 1),
        "checkpoints": report.checkpoints, "inconsistencies": report.total_inconsistencies,
        "kinds": dict(report.kinds), "rejected": dict(report.stats.rejected),
        "latency_ms": {name: [round(p50 * 1000, 2), round(p99 * 1000, 2)]
                       for name, (p50, p99) in report.percentiles().items()},
        "failed_clients": report.failed_clients,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", default="10,50", help="comma-separated client counts (default 10,50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run (default 30)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default="plain,qresync", help="plain, qresync or both (default)")
    parser.add_argument("--checkpoint-every", type=float, default=2.0, help="seconds between checkpoints")
    parser.add_argument("--max-new-keywords", type=int, default=8, help="new keywords per client")
    parser.add_argument("--peer", default="imapd", help="imapd or dovecot")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = unavailable(args.peer)
    if reason:
        print(f"{args.peer} cannot run here: {reason}")
        return 2
    print(f"stress benchmark {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
    print(f"machine: {machine()}\nversions: {versions()}")
    rows: list[dict[str, object]] = []
    for clients in (int(n) for n in args.clients.split(",")):
        for mode in args.modes.split(","):
            config = StressConfig(clients=clients, seconds=args.seconds, seed=args.seed,
                                  qresync=mode == "qresync", checkpoint_every=args.checkpoint_every,
                                  max_new_keywords=args.max_new_keywords)
            report, conditions = run_one(args.peer, config)
            rows.append(as_row(args.peer, report, conditions))
            print(f"\n== {args.peer}, {clients} clients, {mode}: "
                  + ", ".join(f"{key} {value}" for key, value in conditions.items()))
            print(report.summary(), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if any(row["inconsistencies"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

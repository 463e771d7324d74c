"""Run the benchmark scenarios of issue 8 against imapd and its peers.

    python -m bench.run                       # every scenario, every peer, full size
    python -m bench.run --quick               # small and short, to try things out
    python -m bench.run --scenario mixed --peers imapd,dovecot --profile /tmp/prof

Prints each scenario's figures with the ratio imapd/peer for every peer
measured, and which peers were skipped and why; ``--json FILE`` keeps the
results. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from pathlib import Path

from bench import idle, large, scenarios
from bench.peers import PEER_NAMES, unavailable, versions
from bench.report import ScenarioReport, format_report, machine, save_json

SCENARIOS = ("mixed", "append", "large", "idle", "login")


async def run_scenario(name: str, peers: list[str], scale: scenarios.Scale, profile: Path | None) -> list[ScenarioReport]:
    if name == "mixed":
        return await scenarios.scenario_mixed(peers, scale, profile)
    if name == "append":
        return await scenarios.scenario_append(peers, scale)
    if name == "large":
        return await large.scenario_large(peers, scale.large_messages, scale.large_populate_budget, profile)
    if name == "idle":
        return await idle.scenario_idle(peers, scale.idle_connections,
                                        scale.idle_connections_per_process_servers, scale.idle_pushes, profile)
    return await scenarios.scenario_login(peers, scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenario", default="all", help=f"comma-separated: {','.join(SCENARIOS)} (default all)")
    parser.add_argument("--peers", default=",".join(PEER_NAMES), help="comma-separated peer names")
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs")
    parser.add_argument("--profile", type=Path, help="py-spy imapd (mixed load, large mailbox, pushes); output directory")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    chosen = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    requested = args.peers.split(",")
    if "imapd" not in requested:
        requested.insert(0, "imapd")  # the reference of every ratio
    skipped = {name: reason for name in requested if (reason := unavailable(name))}
    peers = [name for name in requested if name not in skipped]
    scale = scenarios.QUICK if args.quick else scenarios.FULL
    header = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "versions": versions(), "quick": args.quick,
    }
    print(f"benchmark {header['date']}: {header['machine']}")
    print(f"versions: {header['versions']}")
    print(f"peers: {', '.join(peers)}" + "".join(f"\nskipped {n}: {r}" for n, r in skipped.items()))
    reports: list[ScenarioReport] = []
    for name in chosen:
        for report in asyncio.run(run_scenario(name, peers, scale, args.profile)):
            report.skipped.update(skipped)
            reports.append(report)
            print()
            print(format_report(report), flush=True)
    header["load_after"] = machine()["load"]
    if args.json:
        save_json(args.json, reports, header)
    failed = [r.title for r in reports for row in r.rows if row.peer == "imapd" and row.errors]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

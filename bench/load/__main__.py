"""``python -m bench.load``: run the load generator against any server.

Example (a server on port 1143 with user bench/secret)::

    python -m bench.load --port 1143 --user bench --password secret \\
        --clients 10 --seconds 30 --mode mixed --prepare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from bench.load.runner import MODES, LoadConfig, format_result, prepare_mailboxes, run_load
from bench.load.workload import Target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description="IMAP load generator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--mode", choices=MODES, default="mixed")
    parser.add_argument("--messages", type=int, default=100, help="messages per client mailbox")
    parser.add_argument("--prefix", default="bench", help="mailbox name prefix")
    parser.add_argument("--prepare", action="store_true", help="(re)create and fill the mailboxes first")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    target = Target(args.host, args.port, args.user, args.password)
    config = LoadConfig(target, clients=args.clients, seconds=args.seconds, mode=args.mode,
                        mailbox_prefix=args.prefix, messages=args.messages)

    async def go() -> int:
        if args.prepare:
            await prepare_mailboxes(target, args.prefix, args.clients, args.messages)
        result = await run_load(config)
        print(json.dumps(asdict(result), indent=1) if args.json else format_result(result))
        return 1 if result.errors else 0

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())

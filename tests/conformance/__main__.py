"""Command line: run imaptest-format scripts against any IMAP server.

    python -m tests.conformance --host H --port P [--user U --user2 U2 --password P] DIR|FILE...

Prints one result per script (with every failure in detail) and imaptest-style
totals. Exit status: 0 when nothing failed, 1 when a script failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imapd.conformance.executor import RunnerConfig, default_trace, run_script_file
from imapd.conformance.report import Outcome, Totals
from imapd.conformance.script import list_script_files


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="DIR|FILE", help="script files or directories of scripts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=143)
    parser.add_argument("--user", default="testuser", help="main user (default: testuser)")
    parser.add_argument("--user2", default=None, help="second user, for scripts with 'user N: $user2'")
    parser.add_argument("--password", default="pass", help="password of all users (default: pass)")
    parser.add_argument("--mailbox", default="imaptest", help="test mailbox (default: imaptest)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait per response")
    parser.add_argument("--trace", action="store_true", help="print every line sent and received to stderr")
    return parser


def expand_paths(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(list_script_files(path) if path.is_dir() else [path])
    return files


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = RunnerConfig(
        host=args.host,
        port=args.port,
        user=args.user,
        user2=args.user2,
        password=args.password,
        mailbox=args.mailbox,
        timeout=args.timeout,
        trace=default_trace if args.trace else None,
    )
    try:
        files = expand_paths(args.paths)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    totals = Totals()
    for path in files:
        result = run_script_file(path, config)
        totals.add(result)
        print(result.format(), flush=True)
        for line in result.outputs:
            print(f"  output: {line}")
        if result.outcome is Outcome.FAILED:
            print()
    print()
    print(totals.format())
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main())

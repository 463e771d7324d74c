"""SEARCH string keys over a 10k-message mailbox (issue 11: i;unicode-casemap).

    .venv/bin/python bench/search_i18n_bench.py [--messages 10000] [--runs 5]

Fills a mailbox with ``bench.message_bench``'s messages (a third of them
with an RFC 2047 UTF-8 subject and a quoted-printable UTF-8 body), starts
the real server and times, over a loopback socket, SEARCH TEXT and SEARCH
SUBJECT with an ASCII word and with non-ASCII words (NFC and NFD
spellings). Prints the median and the spread of ``--runs`` runs, the match
count, and the load average before and after: the figures move with load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.message_bench import PASSWORD, RARE_WORD, USER, Client, Server, fill  # noqa: E402


def literal(text: str) -> str:
    """A SEARCH string as a non-synchronizing literal (LITERAL+, RFC 7888)."""
    data = text.encode("utf-8")
    return "{" + str(len(data)) + "+}\r\n" + data.decode("utf-8")


def timed(client: Client, command: str, runs: int) -> tuple[list[float], int]:
    times: list[float] = []
    matches = 0
    for _ in range(runs):
        start = time.perf_counter()
        _, _, last = client.command(command)
        times.append(time.perf_counter() - start)
        matches = len(last.split()) - 2 if last.startswith(b"* SEARCH") else -1
    return times, matches


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    nfd = unicodedata.normalize("NFD", "GRÜSSE AUS MÜNCHEN")
    searches = [
        ("SEARCH TEXT (ASCII, rare)", f"SEARCH TEXT {RARE_WORD}"),
        ("SEARCH SUBJECT (ASCII)", "SEARCH SUBJECT plain"),
        ("SEARCH SUBJECT münchen (NFC)", "SEARCH CHARSET UTF-8 SUBJECT " + literal("münchen")),
        ("SEARCH SUBJECT MÜNCHEN (NFD)", "SEARCH CHARSET UTF-8 SUBJECT " + literal(nfd[-7:])),
        ("SEARCH TEXT grüße (NFC)", "SEARCH CHARSET UTF-8 TEXT " + literal("grüße")),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        fill(data_dir, args.messages, 1024)
        server = Server(data_dir)
        try:
            client = Client(server)
            client.command(f"LOGIN {USER} {PASSWORD}")
            client.command("SELECT INBOX")
            client.command(f"SEARCH TEXT {RARE_WORD}")  # warm SQLite's page cache
            print(f"load before: {os.getloadavg()}")
            for label, command in searches:
                times, matches = timed(client, command, args.runs)
                print(f"{label:<32} median {statistics.median(times) * 1000:7.0f} ms  "
                      f"min {min(times) * 1000:6.0f}  max {max(times) * 1000:6.0f}  "
                      f"({matches} matches, {args.messages} msgs)", flush=True)
            print(f"load after: {os.getloadavg()}")
            client.command("LOGOUT")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

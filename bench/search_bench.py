"""SEARCH string keys with the SQLite full-text index (issue 18).

    .venv/bin/python bench/search_bench.py [--messages 100000] [--runs 5]
        [--append 2000] [--scan]

Fills a mailbox with ``bench.corpus.small_message`` mail (1 % carry the
rare body word ``zebracorn``; one message in 5,000 gets a rare sender,
``okapi@zoo.example``; every subject ends in ``#<index>``), starts the real
server and times, over a loopback socket, SEARCH TEXT / BODY for the rare
word, SUBJECT for one ``#index``, TEXT for one Message-ID, FROM for the rare
sender and TEXT for a common word (median of ``--runs``). ``--scan`` also times SEARCH TEXT once with every body marked
unindexed (what a store without the index does: every message evaluated).
Then: the index's size on disk per message (SQLite's ``dbstat``), and APPEND
throughput (one message per delivery, each a durable commit) with indexing
on and off. Prints the load average before and after: figures move with it.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.corpus import RARE_WORD, small_message  # noqa: E402
from bench.message_bench import PASSWORD, USER, Client, Server, run  # noqa: E402
from imapd.accounts.users import UserDatabase  # noqa: E402
from imapd.core.model import Secret  # noqa: E402
from imapd.mail.records import AppendItem  # noqa: E402
from imapd.mail.service import MailService  # noqa: E402
from imapd.message import analyze  # noqa: E402
from imapd.storage.sqlite import fts, open_backend  # noqa: E402
from imapd.storage.sqlite.schema import DB_FILENAME  # noqa: E402

RARE_SENDER = "okapi@zoo.example"
RARE_SENDER_EVERY = 5000


def mail(index: int) -> bytes:
    raw = small_message(index)
    if index % RARE_SENDER_EVERY == 77:
        raw = raw.replace(b"\r\nFrom: ", f"\r\nFrom: Okapi Keeper <{RARE_SENDER}>, ".encode(), 1)
    return raw


def fill(data_dir: Path, count: int) -> float:
    """The mailbox, delivered 1,000 at a time; seconds taken."""
    UserDatabase.in_data_dir(data_dir).add(USER, Secret(PASSWORD.encode()))
    service = MailService(open_backend(data_dir))
    start = time.perf_counter()
    for first in range(0, count, 1000):
        items = []
        for index in range(first, min(count, first + 1000)):
            raw = mail(index)
            items.append(AppendItem(raw, ("\\Seen",), None, analyze(raw).to_bytes()))
        run(service.deliver(USER, "INBOX", items))
    elapsed = time.perf_counter() - start
    run(service.close())
    return elapsed


def index_size(data_dir: Path) -> tuple[int, int]:
    """(bytes of the index's tables, bytes of the whole database)."""
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        (index,) = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'body_fts%' "
                                "OR name LIKE 'head_fts%' OR name = 'body_unindexed'").fetchone()
        (total,) = conn.execute("SELECT sum(pgsize) FROM dbstat").fetchone()
        return int(index or 0), int(total)
    finally:
        conn.close()


def appends_per_second(data_dir: Path, count: int, indexed: bool) -> float:
    """Single-message deliveries, each its own durable commit."""
    UserDatabase.in_data_dir(data_dir).add(USER, Secret(PASSWORD.encode()))
    service = MailService(open_backend(data_dir))
    raws = [mail(index) for index in range(count)]
    metas = [analyze(raw).to_bytes() for raw in raws]
    off = mock.patch.object(fts, "index_body", lambda *args: None)
    with (mock.MagicMock() if indexed else off):
        start = time.perf_counter()
        for raw, meta in zip(raws, metas):
            run(service.deliver(USER, "INBOX", [AppendItem(raw, (), None, meta)]))
        elapsed = time.perf_counter() - start
    run(service.close())
    return count / elapsed


def timed(client: Client, command: str, runs: int) -> tuple[list[float], int]:
    times: list[float] = []
    matches = 0
    for _ in range(runs):
        start = time.perf_counter()
        _, _, last = client.command(command)
        times.append(time.perf_counter() - start)
        matches = len(last.split()) - 2 if last.startswith(b"* SEARCH") else -1
    return times, matches


def searches(data_dir: Path, count: int, runs: int, scan: bool) -> None:
    subject = f"#{count // 2 + 1}"
    commands = [
        (f"SEARCH TEXT {RARE_WORD}", f"SEARCH TEXT {RARE_WORD}"),
        (f"SEARCH BODY {RARE_WORD}", f"SEARCH BODY {RARE_WORD}"),
        (f"SEARCH SUBJECT {subject}", f'SEARCH SUBJECT "{subject}"'),
        ("SEARCH TEXT <one Message-ID>", f"SEARCH TEXT bench.{count // 2 + 1}@example.org"),
        (f"SEARCH FROM {RARE_SENDER}", f"SEARCH FROM {RARE_SENDER}"),
        ("SEARCH TEXT the (a common word)", "SEARCH TEXT the"),
    ]
    server = Server(data_dir)
    try:
        client = Client(server)
        client.command(f"LOGIN {USER} {PASSWORD}")
        client.command("SELECT INBOX")
        client.command(f"SEARCH TEXT {RARE_WORD}")  # warm SQLite's page cache
        for label, command in commands:
            times, matches = timed(client, command, runs)
            print(f"{label:<44} median {statistics.median(times) * 1000:8.1f} ms  "
                  f"min {min(times) * 1000:7.1f}  max {max(times) * 1000:7.1f}  "
                  f"({matches} matches)", flush=True)
        if scan:
            conn = sqlite3.connect(data_dir / DB_FILENAME, isolation_level=None)
            conn.execute("INSERT OR IGNORE INTO body_unindexed(body_id) SELECT id FROM bodies")
            conn.close()
            times, matches = timed(client, f"SEARCH TEXT {RARE_WORD}", 1)
            print(f"{'SEARCH TEXT, every message evaluated':<44} {times[0] * 1000:8.1f} ms  "
                  f"({matches} matches)", flush=True)
        client.command("LOGOUT")
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--append", type=int, default=2000)
    parser.add_argument("--scan", action="store_true")
    args = parser.parse_args(argv)
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().nodename,
          os.uname().machine)
    print(f"load before: {os.getloadavg()}  cpus: {os.cpu_count()}  python {sys.version.split()[0]}"
          f"  sqlite {sqlite3.sqlite_version}", flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        data_dir = Path(tmp) / "data"
        seconds = fill(data_dir, args.messages)
        print(f"filled {args.messages} messages in {seconds:.1f} s (index built at delivery)")
        index, total = index_size(data_dir)
        print(f"index on disk: {index / args.messages:.0f} bytes/message "
              f"({index / 2**20:.1f} MiB of {total / 2**20:.1f} MiB)", flush=True)
        searches(data_dir, args.messages, args.runs, args.scan)
    for indexed in (True, False):
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            rate = appends_per_second(Path(tmp) / "data", args.append, indexed)
            print(f"APPEND, one message per commit, indexing {'on ' if indexed else 'off'}: "
                  f"{rate:7.1f} messages/s", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

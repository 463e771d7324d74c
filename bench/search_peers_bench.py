"""SEARCH, SORT and THREAD on one 100,000-message mailbox: imapd against a
private Dovecot in the same run (issue 18).

    BENCH_TMP=/var/tmp .venv/bin/python bench/search_peers_bench.py \\
        [--messages 100000] [--runs 3]

The same messages (``bench.search_bench.mail``: ``bench.corpus.small_message``,
1 % holding the body word ``zebracorn``, one in 5,000 the sender
``okapi@zoo.example``) go into imapd's SQLite store (delivered 1,000 at a
time, the full-text index built at delivery) and into a Maildir that
Dovecot (``bench.peers``, Debian's package, default settings: no FTS
plugin) reads; Dovecot's first SELECT builds its index files and is timed
on its own. Then, over loopback, each server answers the same commands
(median of ``--runs``, after one warm-up run of the first); the ratio is
imapd's median over Dovecot's. Prints the load average before and after:
figures move with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.corpus import RARE_WORD  # noqa: E402
from bench.message_bench import PASSWORD, USER, Client, Server  # noqa: E402
from bench.peers import PeerOptions, running_peer  # noqa: E402
from bench.search_bench import RARE_SENDER, fill, mail  # noqa: E402


@dataclass
class Address:
    """What ``message_bench.Client`` needs of a server."""

    host: str
    port: int


def commands(count: int) -> list[str]:
    return [
        f"SEARCH TEXT {RARE_WORD}",
        f"SEARCH BODY {RARE_WORD}",
        f'SEARCH SUBJECT "#{count // 2 + 1}"',
        f"SEARCH FROM {RARE_SENDER}",
        "SORT (DATE) UTF-8 ALL",
        "THREAD REFERENCES UTF-8 ALL",
    ]


def maildir(home: Path, count: int) -> float:
    """The messages as Dovecot's Maildir (owned by the mail user); seconds."""
    start = time.perf_counter()
    cur = home / "Maildir" / "cur"
    for sub in ("cur", "new", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    base = 1_700_000_000
    for index in range(count):
        path = cur / f"{base + index}.M{index}P1.bench:2,S"
        path.write_bytes(mail(index).replace(b"\r\n", b"\n"))
        os.utime(path, (base + index, base + index))
    for path in [home, *home.rglob("*")]:
        shutil.chown(path, "nobody", "nogroup")
    return time.perf_counter() - start


def timed(address: Address, user: str, password: str, texts: list[str], runs: int,
          first: str) -> dict[str, tuple[float, int]]:
    """Median ms and match count per command; ``first``: what to time once
    before (SELECT, which builds Dovecot's index)."""
    client = Client(address)  # type: ignore[arg-type]
    client.command(f"LOGIN {user} {password}")
    start = time.perf_counter()
    client.command(first)
    results = {first: ((time.perf_counter() - start) * 1000, 0)}
    client.command(texts[0])  # warm caches
    for text in texts:
        times: list[float] = []
        matches = 0
        for _ in range(runs):
            start = time.perf_counter()
            _, _, last = client.command(text)
            times.append((time.perf_counter() - start) * 1000)
            matches = len(last.split()) - 2 if last.startswith((b"* SEARCH", b"* SORT")) else 0
        results[text] = (statistics.median(times), matches)
        print(f"  {text:<36} {results[text][0]:10.1f} ms  ({matches} matches)", flush=True)
    client.command("LOGOUT")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().nodename,
          f"cpus {os.cpu_count()}  load before: {os.getloadavg()}", flush=True)
    texts = commands(args.messages)
    results: dict[str, dict[str, tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        data_dir = Path(tmp) / "data"
        print(f"imapd: filled in {fill(data_dir, args.messages):.1f} s", flush=True)
        server = Server(data_dir)
        try:
            results["imapd"] = timed(Address(server.host, server.port), USER, PASSWORD,
                                     texts, args.runs, "SELECT INBOX")
        finally:
            server.stop()
    print(f"load between: {os.getloadavg()}", flush=True)
    options = PeerOptions()
    with running_peer("dovecot", options) as peer:
        home = peer.workdir / "home" / options.user
        print(f"dovecot {peer.version}: Maildir written in {maildir(home, args.messages):.1f} s",
              flush=True)
        results["dovecot"] = timed(Address(peer.host, peer.port), options.user,
                                   options.password, texts, args.runs, "SELECT INBOX")
    print(f"load after: {os.getloadavg()}")
    print(f"\n| command | imapd ms | Dovecot ms | imapd / Dovecot | matches |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for text in ["SELECT INBOX", *texts]:
        ours, theirs = results["imapd"][text], results["dovecot"][text]
        print(f"| `{text}` | {ours[0]:,.1f} | {theirs[0]:,.1f} | {ours[0] / theirs[0]:.2f} | "
              f"{ours[1]} / {theirs[1]} |")


if __name__ == "__main__":
    main()

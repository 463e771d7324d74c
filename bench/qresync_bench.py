"""QRESYNC benchmark (issue 7): resynchronising a 100,000-message mailbox
after 100 changes, versus the full rescan a client without QRESYNC does.

    .venv/bin/python bench/qresync_bench.py [--messages 100000] [--changes 100] [--dir PATH]

The mailbox is filled through the store's bulk path before the server
starts (``imap_bench.fill``). A "device" then selects INBOX with QRESYNC
enabled and keeps UIDVALIDITY, HIGHESTMODSEQ and every UID's flags. Another
connection makes ``--changes`` changes: 70 % flag changes (one UID STORE
each, scattered), 20 % expunges (UID EXPUNGE), 10 % APPENDs. The device
then comes back, on a fresh connection each time, in three ways:

* **QRESYNC**: ``SELECT INBOX (QRESYNC (uidvalidity modseq))``, one round
  trip that returns VANISHED (EARLIER) and a FETCH per changed message;
* **QRESYNC, known UIDs**: the same with the client's UID list (as real
  clients send it, compressed to ranges) and ``UID FETCH n:* (FLAGS)`` for
  the new messages above it;
* **full**: ``SELECT INBOX`` then ``UID FETCH 1:* (FLAGS)`` and a diff of
  the UID lists (what a client must do without CONDSTORE/QRESYNC).

For each: bytes the server sent for those commands, wall time (median of
``--runs``), and a check that the device's updated cache equals the full
rescan. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.imap_bench import PASSWORD, USER, Server, fill, message  # noqa: E402

FETCH = re.compile(rb"^\* \d+ FETCH \((.*)\)$")
UID_ITEM = re.compile(rb"UID (\d+)")
FLAGS_ITEM = re.compile(rb"FLAGS \(([^)]*)\)")
Cache = dict[int, frozenset[bytes]]


class Client:
    """Raw socket client that counts every byte the server sends."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((server.host, server.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.received = 0
        self.tags = 0
        self.line()
        self.command(f"LOGIN {USER} {PASSWORD}")

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.received += len(chunk)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def command(self, text: str, payload: bytes | None = None) -> list[bytes]:
        """Send a command (with a LITERAL+ payload if given); its lines."""
        self.tags += 1
        tag = b"q%d" % self.tags
        data = tag + b" " + text.encode()
        if payload is not None:
            data += b" {%d+}\r\n" % len(payload) + payload
        self.sock.sendall(data + b"\r\n")
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        if not lines[-1].startswith(tag + b" OK"):
            raise RuntimeError(lines[-1].decode("utf-8", "replace"))
        return lines

    def close(self) -> None:
        self.sock.close()


def code_value(lines: list[bytes], code: bytes) -> int:
    prefix = b"* OK [" + code + b" "
    line = next(line for line in lines if line.startswith(prefix))
    return int(line[len(prefix):].split(b"]")[0])


def uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids


def compress(uids: list[int]) -> str:
    """Ascending UIDs as a sequence set (``1:99,101:200``)."""
    parts: list[str] = []
    start = previous = uids[0]
    for uid in uids[1:] + [-1]:
        if uid != previous + 1:
            parts.append(str(start) if start == previous else f"{start}:{previous}")
            start = uid
        previous = uid
    return ",".join(parts)


def apply(cache: Cache, lines: list[bytes]) -> int:
    """Apply VANISHED and FETCH (UID FLAGS) lines to a cache; the MODSEQ
    the client stores next (from HIGHESTMODSEQ, 0 if absent)."""
    for line in lines:
        if line.startswith(b"* VANISHED "):
            for gone in uid_set(line.rsplit(b" ", 1)[1]):
                cache.pop(gone, None)
        elif (found := FETCH.match(line)) is not None:
            uid, flags = UID_ITEM.search(found.group(1)), FLAGS_ITEM.search(found.group(1))
            assert uid is not None and flags is not None, line
            cache[int(uid.group(1))] = frozenset(flags.group(1).split()) - {b"\\Recent"}
    announced = any(b"[HIGHESTMODSEQ" in line for line in lines)
    return code_value(lines, b"HIGHESTMODSEQ") if announced else 0


def full_rescan(server: Server) -> tuple[Cache, int, float]:
    """SELECT + UID FETCH 1:* (FLAGS): (cache, bytes received, seconds)."""
    client = Client(server)
    before, start = client.received, time.perf_counter()
    lines = client.command("SELECT INBOX")
    lines += client.command("UID FETCH 1:* (FLAGS)")
    seconds = time.perf_counter() - start
    cache: Cache = {}
    apply(cache, lines)
    received = client.received - before
    client.close()
    return cache, received, seconds


def make_changes(server: Server, uids: list[int], count: int) -> None:
    """70 % flag changes, 20 % expunges, 10 % appends, on scattered UIDs."""
    writer = Client(server)
    writer.command("SELECT INBOX")
    step = max(1, len(uids) // (count + 1))
    targets = uids[step::step][:count]
    flags = int(count * 0.7)
    expunges = int(count * 0.2)
    for uid in targets[:flags]:
        writer.command(f"UID STORE {uid} +FLAGS.SILENT ($Synced)")
    doomed = targets[flags:flags + expunges]
    if doomed:
        writer.command(f"UID STORE {','.join(map(str, doomed))} +FLAGS.SILENT (\\Deleted)")
        writer.command(f"UID EXPUNGE {','.join(map(str, doomed))}")
    for n in range(count - flags - len(doomed)):
        writer.command("APPEND INBOX (\\Seen)", message(9_000_000 + n, 2048))
    writer.close()


def qresync(server: Server, cache: Cache, uidvalidity: int, modseq: int, known: bool) -> tuple[Cache, int, float]:
    """The device's resync: (updated cache copy, bytes received, seconds)."""
    client = Client(server)
    client.command("ENABLE QRESYNC")
    mine = dict(cache)
    before, start = client.received, time.perf_counter()
    if known:
        uids = sorted(mine)
        lines = client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} {compress(uids)}))")
        lines += client.command(f"UID FETCH {uids[-1] + 1}:* (FLAGS)")
    else:
        lines = client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    seconds = time.perf_counter() - start
    apply(mine, lines)
    received = client.received - before
    client.close()
    return mine, received, seconds


def median_run(runs: int, action: Callable[[], tuple[Cache, int, float]]) -> tuple[Cache, int, float]:
    results = [action() for _ in range(runs)]
    return results[-1][0], results[-1][1], statistics.median(r[2] for r in results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="data directory parent")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data_dir = Path(tmp) / "data"
        start = time.perf_counter()
        fill(data_dir, args.messages)
        print(f"filled {args.messages} messages in {time.perf_counter() - start:.1f} s", flush=True)
        server = Server(data_dir)
        try:
            device = Client(server)
            device.command("ENABLE QRESYNC")
            lines = device.command("SELECT INBOX")
            uidvalidity, modseq = code_value(lines, b"UIDVALIDITY"), code_value(lines, b"HIGHESTMODSEQ")
            cache: Cache = {}
            apply(cache, device.command("UID FETCH 1:* (FLAGS)"))
            device.close()
            make_changes(server, sorted(cache), args.changes)
            print(f"{args.changes} changes made by another connection "
                  f"(70% flags, 20% expunges, 10% appends)", flush=True)
            truth, full_bytes, full_time = median_run(args.runs, lambda: full_rescan(server))
            for label, known in (("QRESYNC (uidvalidity modseq)", False),
                                 ("QRESYNC + known UIDs, UID FETCH new", True)):
                result, sent, seconds = median_run(
                    args.runs, lambda: qresync(server, cache, uidvalidity, modseq, known))
                verdict = "cache == full rescan" if result == truth else "CACHE MISMATCH"
                print(f"{label:<38} {sent:>10,} bytes {seconds * 1000:9.1f} ms  {verdict}", flush=True)
            print(f"{'full: SELECT + UID FETCH 1:* (FLAGS)':<38} {full_bytes:>10,} bytes "
                  f"{full_time * 1000:9.1f} ms  ({len(truth):,} messages)", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

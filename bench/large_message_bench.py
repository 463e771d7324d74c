"""Large-message benchmark (issues 4 and 6): the server's memory while a
client APPENDs a 20 MB message and while it FETCHes one, with a fast and
with a slow peer, against the real server process over a loopback socket.

    .venv/bin/python bench/large_message_bench.py [--mb 20] [--dir PATH]

For each case the server's resident memory is sampled every few
milliseconds (``/proc/PID/status``), and reported above its level just
before the command:

* ``peak``: VmHWM (peak resident set, reset through ``clear_refs``), which
  also counts pages of files the server has mapped (a spooled literal);
* ``anon``: the largest RssAnon sample (private heap memory: what a
  client can really make the server hold).

Cases: APPEND sent as fast as the socket takes it; APPEND sent in 256 KiB
pieces 10 ms apart, measured *during* the upload (before its last piece)
too; the same after a first APPEND (SQLite's page cache, a fixed 32 MiB
per process, is then already grown: what one more APPEND costs);
``FETCH 1 BODY.PEEK[]`` read as fast as possible; and read by a slow
reader (a small receive buffer, 64 KiB every 5 ms). Each case runs in a
fresh server process. FETCH reads the message the APPEND cases stored.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.message_bench import PASSWORD, USER, Client, Server, big_message  # noqa: E402
from imapd.core.model import Secret  # noqa: E402
from imapd.accounts.users import UserDatabase  # noqa: E402

PIECE = 256 * 1024
# (VmRSS, RssAnon) of the server just before the case being measured.
BASELINE = {"rss": 0, "anon": 0}


class Sampler:
    """Polls the server's RssAnon in a thread; ``stop()`` gives the peak."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = server.status("RssAnon")
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            try:
                self.peak = max(self.peak, self.server.status("RssAnon"))
            except (OSError, KeyError):
                return
            time.sleep(0.002)

    def stop(self) -> int:
        self._running = False
        self._thread.join()
        return self.peak


def measure(server: Server, label: str, action: Callable[[], str]) -> None:
    server.reset_peak()
    rss, anon = server.status("VmRSS"), server.status("RssAnon")
    BASELINE.update(rss=rss, anon=anon)
    sampler = Sampler(server)
    started = time.perf_counter()
    note = action()
    elapsed = time.perf_counter() - started
    anon_peak = sampler.stop()
    peak = server.status("VmHWM")
    print(f"{label:<44} {elapsed * 1000:7.0f} ms   server peak +{(peak - rss) / 1024:5.1f} MiB, "
          f"anon +{(anon_peak - anon) / 1024:5.1f} MiB   {note}", flush=True)


def tagged(client: Client, tag: bytes) -> bytes:
    while True:
        line = client.line()
        if line.startswith(tag + b" "):
            return line


def append(client: Client, message: bytes, server: Server | None = None) -> str:
    """APPEND with a synchronizing literal; with ``server``, slowly, and
    returns the anon/peak figures seen before the last piece."""
    client.sock.sendall(b"A1 APPEND INBOX {%d}\r\n" % len(message))
    if not client.line().startswith(b"+"):
        raise RuntimeError("no continuation")
    note = ""
    if server is None:
        client.sock.sendall(message)
    else:
        pieces = [message[start:start + PIECE] for start in range(0, len(message), PIECE)]
        for piece in pieces[:-1]:
            client.sock.sendall(piece)
            time.sleep(0.01)
        time.sleep(0.2)  # let the server take in everything sent so far
        peak = server.status("VmHWM") - BASELINE["rss"]
        anon = server.status("RssAnon") - BASELINE["anon"]
        note = f"(upload before its last piece: peak +{peak / 1024:.1f} MiB, anon now +{anon / 1024:.1f} MiB)"
        client.sock.sendall(pieces[-1])
    client.sock.sendall(b"\r\n")
    reply = tagged(client, b"A1")
    if b" OK " not in reply:
        raise RuntimeError(reply.decode())
    return note


def fetch(client: Client, expected: int, slow: bool) -> str:
    client.sock.sendall(b"F1 FETCH 1 BODY.PEEK[]\r\n")
    head = client.line()
    size = int(head[head.rindex(b"{") + 1:-1])
    if size != expected:
        raise RuntimeError(f"literal of {size} octets, expected {expected}")
    remaining = size
    while remaining > 0:
        if not client.buffer:
            client.buffer = client.sock.recv(64 * 1024)
            if not client.buffer:
                raise EOFError
            if slow:
                time.sleep(0.005)
        taken = min(remaining, len(client.buffer))
        client.buffer = client.buffer[taken:]
        remaining -= taken
    tagged(client, b"F1")
    return "(slow reader)" if slow else ""


def session(server: Server, small_receive_buffer: bool = False) -> Client:
    client = Client(server)
    if small_receive_buffer:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.command(f"LOGIN {USER} {PASSWORD}")
    client.command("SELECT INBOX")
    return client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="data directory parent (default: a temp dir)")
    args = parser.parse_args(argv)
    message = big_message(args.mb * 1024 * 1024)
    # (label, slow reader, warm-up APPEND first, action)
    cases: list[tuple[str, bool, bool, Callable[[Server, Client], str]]] = [
        (f"APPEND {args.mb} MB, fast upload", False, False, lambda s, c: append(c, message)),
        (f"APPEND {args.mb} MB, 256 KiB per 10 ms", False, False,
         lambda s, c: append(c, message, s)),
        (f"APPEND {args.mb} MB, slow, after a first one", False, True,
         lambda s, c: append(c, message, s)),
        (f"FETCH 1 BODY.PEEK[] of {args.mb} MB, fast reader", False, False,
         lambda s, c: fetch(c, len(message), slow=False)),
        (f"FETCH 1 BODY.PEEK[] of {args.mb} MB, slow reader", True, False,
         lambda s, c: fetch(c, len(message), slow=True)),
    ]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data_dir = Path(tmp) / "data"
        UserDatabase.in_data_dir(data_dir).add(USER, Secret(PASSWORD.encode()))
        for label, slow_reader, warm_up, action in cases:
            server = Server(data_dir)  # a fresh process per case: heaps do not shrink
            try:
                client = session(server, slow_reader)
                if warm_up:  # fills SQLite's page cache (a fixed 32 MiB per process)
                    append(client, message)
                measure(server, label, lambda: action(server, client))
                client.command("LOGOUT")
            finally:
                server.stop()


if __name__ == "__main__":
    main()

"""IMAP-level benchmark (issue 3): a 100,000-message mailbox served by the
real server process, driven over a loopback socket.

    .venv/bin/python bench/imap_bench.py [--messages 100000] [--appends 1000]
                                         [--no-fetch] [--dir PATH]

The mailbox is filled through ``MailService.deliver`` on an inline SQLite
backend (5,000 messages per transaction, each with its analysis as APPEND
stores it) before the server starts, so
the figures are about the commands. Then, with a raw-socket client that
reads every byte of every answer, it times:

* ``SELECT INBOX`` (first, which also claims \\Recent and warms SQLite's
  cache, and the median of later ones); target < 100 ms;
* ``UID FETCH 1:* (UID FLAGS)`` (skipped with ``--no-fetch``); target < 1 s;
* ``UID STORE <uid> +FLAGS (\\Flagged)`` on one message (median);
* APPEND of 10 KB messages (each durable before its OK): on one connection
  with LITERAL+ and with synchronizing literals, and on 10 parallel
  connections (LITERAL+); target >= 500 messages/s;

and the server's resident memory (``/proc/PID/status`` VmRSS, and VmHWM as
the peak) after each step. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Coroutine, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imapd.mail.records import AppendItem  # noqa: E402
from imapd.mail.service import MailService  # noqa: E402
from imapd.storage.sqlite import open_backend  # noqa: E402
from imapd.message import analyze  # noqa: E402
from imapd.core.model import Secret  # noqa: E402
from imapd.accounts.users import UserDatabase  # noqa: E402

T = TypeVar("T")
USER, PASSWORD = "bench", "bench-password"
LISTENING = re.compile(r"listening on IMAP (\S+):(\d+)")
LITERAL = re.compile(rb"\{(\d+)\}$")
FILL_BATCH = 5000
WORDS = ("the quarterly report meeting agenda budget project deadline review draft please "
         "find attached thanks regards update schedule customer invoice server release").split()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a mail coroutine (an inline SQLite backend never really awaits)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("store coroutine awaited something")


def message(index: int, size: int) -> bytes:
    """A deterministic plain-text message of about ``size`` octets."""
    head = (f"From: Sender {index % 37} <sender{index % 37}@example.org>\r\n"
            f"To: {USER}@example.net\r\nSubject: message {index}\r\n"
            f"Message-ID: <{index}.{size}@bench.example>\r\n"
            f"Date: Mon, {1 + index % 28} Feb 2024 10:{index % 60:02d}:00 +0100\r\n\r\n")
    words: list[str] = []
    length = len(head)
    i = index
    while length < size - 2:
        word = WORDS[i % len(WORDS)]
        words.append(word)
        length += len(word) + 1
        i += 7
    body = " ".join(words)[: max(0, size - 2 - len(head))]
    return (head + body + "\r\n").encode()


def fill(data_dir: Path, count: int) -> None:
    """``count`` ~2 KB messages in INBOX: a quarter unseen, some flagged."""
    users = UserDatabase.in_data_dir(data_dir)
    users.add(USER, Secret(PASSWORD.encode()))
    mail = MailService(open_backend(data_dir))
    try:
        for start in range(0, count, FILL_BATCH):
            items = []
            for index in range(start, min(count, start + FILL_BATCH)):
                raw = message(index, 2048)
                flags: tuple[str, ...] = ("\\Seen",) if index % 4 else ()
                if index % 50 == 0:
                    flags += ("\\Flagged",)
                items.append(AppendItem(raw, flags, None, analyze(raw).to_bytes()))
            run(mail.deliver(USER, "INBOX", items))
    finally:
        run(mail.close())


class Server:
    """``python -m imapd serve`` on a loopback ephemeral port."""

    def __init__(self, data_dir: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), IMAPD_ALLOW_ROOT="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imapd", "serve", "--data", str(data_dir),
             "--imap", "tcp:0:interface=127.0.0.1", "--max-connections", "100"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        )
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            found = LISTENING.search(raw.decode("utf-8", "replace"))
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                break
        else:
            raise RuntimeError("server did not start")
        # Keep reading its output so a chatty log can never block it.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def memory(self, field: str) -> float:
        """A ``/proc/PID/status`` figure (VmRSS, VmHWM) in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


class Client:
    """A raw IMAP client that reads (and counts) every byte of the answers.

    Lines are cut out of the receive buffer by position: re-slicing the
    buffer for each line would copy the rest of it every time, quadratic
    in the size of a large answer (100k FETCH lines arrive in chunks of up
    to 1 MiB), and the client, not the server, would be measured."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((server.host, server.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.position = 0  # start of the unread part of ``buffer``
        self.tag_number = 0
        self.line()

    def _receive(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buffer = self.buffer[self.position:] + chunk
        self.position = 0

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n", self.position)) < 0:
            self._receive()
        line = self.buffer[self.position:end]
        self.position = end + 2
        return line

    def _skip(self, count: int) -> None:
        while len(self.buffer) - self.position < count:
            count -= len(self.buffer) - self.position
            self.position = len(self.buffer)
            self._receive()
        self.position += count

    def _tag(self) -> bytes:
        self.tag_number += 1
        return b"b%d" % self.tag_number

    def _finish(self, tag: bytes) -> int:
        """Read to the tagged reply (which must be OK); untagged count."""
        untagged = 0
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode("utf-8", "replace"))
                return untagged
            untagged += 1
            while line.endswith(b"}") and (found := LITERAL.search(line)) is not None:
                self._skip(int(found.group(1)))
                line = self.line()

    def command(self, text: str) -> int:
        tag = self._tag()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        return self._finish(tag)

    def append(self, mailbox: str, raw: bytes, literal_plus: bool) -> None:
        tag = self._tag()
        head = tag + b" APPEND " + mailbox.encode() + b" (\\Seen)"
        if literal_plus:
            self.sock.sendall(head + b" {%d+}\r\n" % len(raw) + raw + b"\r\n")
        else:
            self.sock.sendall(head + b" {%d}\r\n" % len(raw))
            if not self.line().startswith(b"+"):
                raise RuntimeError("no continuation request")
            self.sock.sendall(raw + b"\r\n")
        self._finish(tag)

    def close(self) -> None:
        self.command("LOGOUT")
        self.sock.close()


def logged_in(server: Server) -> Client:
    client = Client(server)
    client.command(f"LOGIN {USER} {PASSWORD}")
    return client


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def report(label: str, seconds: float, extra: str = "") -> None:
    print(f"{label:<52} {seconds * 1000:9.1f} ms  {extra}", flush=True)


def bench_select_fetch_store(server: Server, count: int, fetch: bool) -> None:
    client = logged_in(server)
    first = timed(lambda: client.command("SELECT INBOX"))
    report(f"SELECT INBOX ({count} msgs), first", first)
    later = [timed(lambda: client.command("SELECT INBOX")) for _ in range(5)]
    report(f"SELECT INBOX ({count} msgs), median of 5", statistics.median(later),
           "(target < 100 ms)")
    print(f"server RSS after SELECT: {server.memory('VmRSS'):.1f} MiB", flush=True)
    if fetch:
        counts: list[int] = []
        runs = [timed(lambda: counts.append(client.command("UID FETCH 1:* (UID FLAGS)")))
                for _ in range(3)]
        report("UID FETCH 1:* (UID FLAGS), median of 3", statistics.median(runs),
               f"({counts[0]} FETCH responses; target < 1 s)")
        print(f"server RSS after FETCH: {server.memory('VmRSS'):.1f} MiB", flush=True)
    else:
        print("UID FETCH 1:* (UID FLAGS): skipped (--no-fetch)", flush=True)
    # Alternate + and - so that every STORE really changes the flag (a
    # STORE that changes nothing commits nothing).
    stores = [timed(lambda: client.command(f"UID STORE {count // 2} {sign}FLAGS (\\Draft)"))
              for sign in "+-+-+-"]
    report("UID STORE <one uid> +/-FLAGS (\\Draft), median of 6", statistics.median(stores))
    client.close()


def append_load(server: Server, connections: int, total: int, size: int, literal_plus: bool) -> float:
    """Messages per second for ``total`` APPENDs spread over ``connections``."""
    clients = [logged_in(server) for _ in range(connections)]
    per_client = total // connections
    payloads = [[message(1_000_000 + c * per_client + i, size) for i in range(per_client)]
                for c in range(connections)]
    errors: list[BaseException] = []

    def work(client: Client, messages: list[bytes]) -> None:
        try:
            for raw in messages:
                client.append("INBOX", raw, literal_plus)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(c, p)) for c, p in zip(clients, payloads)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    for client in clients:
        client.close()
    return per_client * connections / seconds


def bench_appends(server: Server, total: int) -> None:
    for connections, literal_plus in ((1, True), (1, False), (10, True)):
        rate = append_load(server, connections, total, 10 * 1024, literal_plus)
        how = "LITERAL+" if literal_plus else "sync literal"
        print(f"APPEND {total} x 10 KB, {connections:2d} connection(s), {how:<12} "
              f"{rate:9.0f} msg/s  (target >= 500)", flush=True)
    print(f"server RSS after APPENDs: {server.memory('VmRSS'):.1f} MiB, "
          f"peak {server.memory('VmHWM'):.1f} MiB", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--no-fetch", action="store_true", help="skip UID FETCH 1:* (UID FLAGS)")
    parser.add_argument("--dir", type=Path, default=None, help="data directory parent")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data_dir = Path(tmp) / "data"
        seconds = timed(lambda: fill(data_dir, args.messages))
        print(f"filled {args.messages} messages through the store in {seconds:.1f} s", flush=True)
        server = Server(data_dir)
        try:
            print(f"server RSS at start: {server.memory('VmRSS'):.1f} MiB", flush=True)
            bench_select_fetch_store(server, args.messages, not args.no_fetch)
            bench_appends(server, args.appends)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

"""Message command benchmark (issue 4): FETCH, SEARCH and a large BODY[]
against the real server process over a loopback socket.

    .venv/bin/python bench/message_bench.py [--messages 10000] [--big-mb 20] [--dir PATH]

Measures, with a raw-socket client that reads every byte of the answer:

* ``FETCH 1:* (ENVELOPE BODYSTRUCTURE)`` over N messages (a mix of plain,
  multipart/alternative and RFC 2047 / quoted-printable messages);
* ``SEARCH TEXT <rare word>`` over the same N messages (the word is in 1 %
  of them, in a quoted-printable body or a header), and ``SEARCH UNSEEN
  FLAGGED`` (answered from the records alone) for comparison;
* ``FETCH 1 BODY[]`` of a 20 MB message.

For each: wall time (median of 3 runs), and the server's peak resident
memory during the command above its resident memory before it (Linux:
``clear_refs`` resets VmHWM), for the first run (which also warms SQLite's
page cache) and the worst later run. The mailboxes are filled through
``MailService.deliver`` on an inline backend (with the message analysis, as APPEND stores it) before the server
starts, so the figures are about the commands, not the set-up.
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
import time
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

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
RARE_WORD = "zebracorn"
LISTENING = re.compile(r"listening on IMAP (\S+):(\d+)")
WORDS = ("the quarterly report meeting agenda budget project deadline review draft please "
         "find attached thanks regards update schedule customer invoice server release").split()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a mail coroutine (an inline SQLite backend never really awaits)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("store coroutine awaited something")


def text(index: int, words: int) -> str:
    return " ".join(WORDS[(index * 7 + i * 13) % len(WORDS)] for i in range(words))


def message(index: int) -> bytes:
    """Deterministic message ``index``: plain, alternative or non-ASCII."""
    rare = f" {RARE_WORD}" if index % 100 == 50 else ""
    head = (f"From: Sender {index % 37} <sender{index % 37}@example.org>\r\n"
            f"To: rcpt{index % 11}@example.net\r\nMessage-ID: <{index}@bench.example>\r\n"
            f"Date: Mon, {1 + index % 28} Feb 2024 10:{index % 60:02d}:00 +0100\r\n")
    kind = index % 3
    if kind == 0:
        return (head + f"Subject: plain {index}\r\n\r\n" + text(index, 300) + rare + "\r\n").encode()
    if kind == 1:
        body = text(index, 200)
        return (head + f"Subject: alt {index}{rare}\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
                f"--b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
                f"--b\r\nContent-Type: text/html\r\n\r\n<p>{body}</p>\r\n--b--\r\n").encode()
    qp_rare = "zebra=\r\ncorn" if rare else ""
    return (head + "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
            "\r\n" + text(index, 250) + " Gr=C3=BC=C3=9Fe " + qp_rare + "\r\n").encode()


def big_message(size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/\r\n"
    head = b"From: big@example.org\r\nSubject: big\r\n\r\n"
    return head + (line * (size // len(line) + 1))[: size - len(head)]


def fill(data_dir: Path, count: int, big_size: int) -> None:
    users = UserDatabase.in_data_dir(data_dir)
    users.add(USER, Secret(PASSWORD.encode()))
    mail = MailService(open_backend(data_dir))
    run(mail.create_mailbox(USER, "Big"))
    for start in range(0, count, 1000):
        items = []
        for index in range(start, min(count, start + 1000)):
            raw = message(index)
            flags = ("\\Seen",) if index % 4 else ("\\Flagged",)
            items.append(AppendItem(raw, flags, None, analyze(raw).to_bytes()))
        run(mail.deliver(USER, "INBOX", items))
    raw = big_message(big_size)
    run(mail.deliver(USER, "Big", [AppendItem(raw, (), None, analyze(raw).to_bytes())]))
    run(mail.close())


class Server:
    """``python -m imapd serve`` on a loopback ephemeral port."""

    def __init__(self, data_dir: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), IMAPD_ALLOW_ROOT="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imapd", "serve", "--data", str(data_dir),
             "--imap", "tcp:0:interface=127.0.0.1"],
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

    def status(self, field: str) -> int:
        """A ``/proc/PID/status`` figure in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class Client:
    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((server.host, server.port))
        self.buffer = b""
        self.tags = (f"t{n}" for n in range(1, 1 << 30))
        self.line()

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def skip(self, count: int) -> None:
        """Consume a literal's bytes without keeping them."""
        while len(self.buffer) < count:
            count -= len(self.buffer)
            self.buffer = self.sock.recv(1 << 20)
            if not self.buffer:
                raise EOFError
        self.buffer = self.buffer[count:]

    def command(self, text: str) -> tuple[int, int, bytes]:
        """Run a command; (untagged responses, literal octets, last untagged line)."""
        tag = next(self.tags)
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = octets = 0
        last = b""
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(line.decode())
                return lines, octets, last
            lines += 1
            last = line
            while (found := re.search(rb"\{(\d+)\}$", line)) is not None:
                size = int(found.group(1))
                octets += size
                self.skip(size)
                line = self.line()


def measure(server: Server, label: str, action: Callable[[], tuple[int, int, bytes]]) -> None:
    times: list[float] = []
    peaks: list[int] = []
    summary = ""
    for _ in range(3):
        before = server.status("VmRSS")
        server.reset_peak()
        start = time.perf_counter()
        lines, octets, last = action()
        times.append(time.perf_counter() - start)
        peaks.append(server.status("VmHWM") - before)
        if last.startswith(b"* SEARCH"):
            summary = f"{len(last.split()) - 2} matches"
        else:
            summary = f"{lines} responses, {octets / 1e6:.1f} MB of literals"
    # The first run also grows SQLite's page cache (up to 32 MiB); later
    # runs show what the command itself holds.
    print(f"{label:<46} {statistics.median(times) * 1000:7.0f} ms   server peak "
          f"+{peaks[0] / 1024:5.1f} MiB first, +{max(peaks[1:]) / 1024:5.1f} MiB later   ({summary})",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--big-mb", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="data directory parent (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        fill(data_dir, args.messages, args.big_mb * 1024 * 1024)
        print(f"filled {args.messages} messages + one of {args.big_mb} MB "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
        server = Server(data_dir)
        try:
            client = Client(server)
            client.command(f"LOGIN {USER} {PASSWORD}")
            client.command("SELECT INBOX")
            print(f"server resident after SELECT: {server.status('VmRSS') / 1024:.1f} MiB")
            n = args.messages
            measure(server, f"FETCH 1:* (ENVELOPE BODYSTRUCTURE), {n} msgs",
                    lambda: client.command("FETCH 1:* (ENVELOPE BODYSTRUCTURE)"))
            measure(server, f"SEARCH TEXT {RARE_WORD}, {n} msgs",
                    lambda: client.command(f"SEARCH TEXT {RARE_WORD}"))
            measure(server, f"SEARCH UNSEEN FLAGGED, {n} msgs",
                    lambda: client.command("SEARCH UNSEEN FLAGGED"))
            client.command("SELECT Big")
            measure(server, f"FETCH 1 BODY.PEEK[] of {args.big_mb} MB",
                    lambda: client.command("FETCH 1 BODY.PEEK[]"))
            client.command("LOGOUT")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

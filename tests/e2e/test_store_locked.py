"""Another process holding the SQLite write lock (issue 13, item 2).

A real ``imapd serve`` while a separate Python process sits in ``BEGIN
IMMEDIATE`` (as a backup script, a second server or a stuck admin shell
would). The server must not freeze: reads keep working (WAL readers take
no lock the writer holds) and stay fast for every session; a write fails
after the engine's bounded wait (``lock_timeout``, 5 s by default) with NO
[UNAVAILABLE] or NO [INUSE] (RFC 5530 §3), never SERVERBUG; a SELECT, whose
``\\Recent`` claim is a write, still opens the mailbox; and once the lock
goes, writes work again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

MESSAGE = b"From: a@example.org\r\nSubject: locked\r\n\r\nbody\r\n"
LOCK_WAIT = 5.0  # the backend's default lock_timeout
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin (or kills us)
conn.rollback()
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path) as running:
        yield running


class LockHolder:
    """A child process that takes the store's write lock when ``take`` is
    called and holds it until ``release``."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.child: subprocess.Popen[str] | None = None

    def take(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(self.database)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.child.stdout is not None
        assert self.child.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.child is not None and self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(30)

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()  # our own child, by its handle
            self.child.wait(30)


@pytest.fixture
def lock_holder(server: RunningServer) -> Iterator[LockHolder]:
    holder = LockHolder(server.data_dir / "mail.sqlite3")
    try:
        yield holder
    finally:
        holder.stop()


def login(server: RunningServer, select: bytes | None = b"INBOX") -> RawClient:
    client = RawClient.for_server(server)
    client.line()  # greeting
    assert command(client, b"l", b"LOGIN alice wonderland").startswith(b"l OK")
    if select is not None:
        assert command(client, b"s", b"SELECT " + select).startswith(b"s OK")
    return client


def command(client: RawClient, tag: bytes, text: bytes) -> bytes:
    client.send(tag + b" " + text + b"\r\n")
    return client.until_tagged(tag)[-1]


def timed(client: RawClient, tag: bytes, text: bytes) -> tuple[bytes, float]:
    started = time.monotonic()
    reply = command(client, tag, text)
    return reply, time.monotonic() - started


def test_a_foreign_write_lock_freezes_nothing_and_writes_fail_bounded(
    server: RunningServer, lock_holder: LockHolder
) -> None:
    writer, reader = login(server), login(server)
    for tag in (b"a1", b"a2"):
        writer.send(tag + b" APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
        assert writer.until_tagged(tag)[-1].startswith(tag + b" OK")
    lock_holder.take()
    late = login(server, select=None)  # logged in; SELECTs while the lock is held
    started = time.monotonic()
    writer.send(b"t STORE 1 +FLAGS (\\Flagged)\r\n")  # waits on the writer thread
    # Meanwhile every read of another session is answered at once, and so
    # is a SELECT, whose \\Recent claim (a write) gives up early.
    slowest = 0.0
    for tag, text in ((b"n1", b"NOOP"), (b"f1", b"FETCH 1:2 (FLAGS BODY.PEEK[])"),
                      (b"x1", b"STATUS INBOX (MESSAGES UIDNEXT)"), (b"n2", b"NOOP"),
                      (b"e1", b"EXAMINE INBOX"), (b"f2", b"FETCH 2 (ENVELOPE)")):
        reply, took = timed(reader, tag, text)
        assert reply.startswith(tag + b" OK"), reply
        slowest = max(slowest, took)
    reply, select_took = timed(late, b"s", b"SELECT INBOX")
    assert reply.startswith(b"s OK"), reply
    assert time.monotonic() - started < LOCK_WAIT - 1, "reads or SELECT waited out the lock"
    reply = writer.until_tagged(b"t")[-1]
    waited = time.monotonic() - started
    assert reply.startswith((b"t NO [UNAVAILABLE]", b"t NO [INUSE]")), reply
    assert LOCK_WAIT - 1 < waited < 3 * LOCK_WAIT  # the bounded wait, not SQLite's 30 s
    lock_holder.release()
    assert command(writer, b"u", b"STORE 1 +FLAGS (\\Flagged)").startswith(b"u OK")
    log = server.log()
    assert "SERVERBUG" not in log and "Traceback" not in log, log[-3000:]
    print(f"slowest read while locked: {slowest * 1000:.0f} ms; write refused after "
          f"{waited:.1f} s; SELECT under the lock {select_took:.1f} s")

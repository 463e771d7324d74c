"""A commit that cannot proceed stalls only the session that made it
(issue 12: no call on the reactor thread waits on a lock).

A real ``imapd serve`` (the SQLite engine on its writer thread) while a
foreign connection holds the database's write lock, as another process's
long transaction would: session A's STORE waits on the writer thread;
session B's NOOP, SELECT and FETCH are answered meanwhile. When the lock is
released A's STORE completes; when it is held past the engine's bounded
wait A gets ``NO [UNAVAILABLE]`` (RFC 5530), never a BAD or SERVERBUG, and
the connection goes on.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

MESSAGE = b"From: a@example.org\r\nSubject: stuck\r\n\r\nbody\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path) as running:
        yield running


def session(server: RunningServer) -> RawClient:
    client = RawClient.for_server(server)
    client.line()  # greeting
    client.send(b"l LOGIN alice wonderland\r\n")
    assert client.until_tagged(b"l")[-1].startswith(b"l OK")
    client.send(b"s SELECT INBOX\r\n")
    assert client.until_tagged(b"s")[-1].startswith(b"s OK")
    return client


def append_one(client: RawClient) -> None:
    client.send(b"a APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert client.until_tagged(b"a")[-1].startswith(b"a OK")


def hold_write_lock(server: RunningServer) -> sqlite3.Connection:
    conn = sqlite3.connect(server.data_dir / "mail.sqlite3", isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def no_reply_yet(client: RawClient, seconds: float) -> bool:
    """True when the server sends nothing to ``client`` for ``seconds``."""
    client.sock.settimeout(seconds)
    try:
        data = client.sock.recv(1, socket.MSG_PEEK)
    except socket.timeout:
        return True
    finally:
        client.sock.settimeout(10)
    return not data


def test_noop_is_answered_while_another_sessions_commit_is_stuck(server: RunningServer) -> None:
    a, b = session(server), session(server)
    append_one(a)
    lock = hold_write_lock(server)
    try:
        a.send(b"t STORE 1 +FLAGS (\\Flagged)\r\n")
        assert no_reply_yet(a, 0.5), "STORE answered while the write lock was held"
        started = time.monotonic()
        for tag in (b"n1", b"n2", b"n3"):
            b.send(tag + b" NOOP\r\n")
            assert b.until_tagged(tag)[-1] == tag + b" OK NOOP completed\r\n"
        b.send(b"f FETCH 1 (FLAGS)\r\n")
        assert b.until_tagged(b"f")[-1].startswith(b"f OK")
        # Answered while A's commit still waits; generous bound for a loaded
        # CI machine, far below the engine's lock wait.
        assert time.monotonic() - started < 3.0
        assert no_reply_yet(a, 0.1), "STORE answered before the lock was released"
    finally:
        lock.rollback()
        lock.close()
    lines = a.until_tagged(b"t")
    assert lines[-1].startswith(b"t OK"), lines
    assert any(b"\\Flagged" in line for line in lines)


def test_a_lock_held_past_the_bounded_wait_is_unavailable(server: RunningServer) -> None:
    a = session(server)
    append_one(a)
    lock = hold_write_lock(server)
    try:
        a.send(b"t STORE 1 +FLAGS (\\Flagged)\r\n")
        reply = a.until_tagged(b"t")[-1]
    finally:
        lock.rollback()
        lock.close()
    assert reply.startswith(b"t NO [UNAVAILABLE] "), reply
    a.send(b"u STORE 1 +FLAGS (\\Flagged)\r\n")
    assert a.until_tagged(b"u")[-1].startswith(b"u OK")

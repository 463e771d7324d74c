"""The write-ahead log stays small (issue 13, item 6).

A client stalling in the middle of a large FETCH used to keep a read
transaction open (the body was streamed from its own snapshot), which pins
every WAL frame written after it: the log grew to 49 MB and, since SQLite
never makes the file smaller by itself, stayed that size. Now a large body
is copied to an anonymous spool file on the reader thread before it is
streamed, and the writer checkpoints and truncates the log when idle.
The streamed bytes stay exact when the message is expunged meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from imapd.mail.records import AppendItem
from imapd.storage.sqlite import SqliteBackend
from imapd.storage.sqlite.reads import STREAM_CHUNK, STREAM_THRESHOLD
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import WAIT, call, inbox, threaded

SMALL_WAL = 1024 * 1024  # "returned under a small bound"
BURST = 40  # messages of 256 KiB: a ~10 MiB burst of WAL frames
PIECE = 256 * 1024


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SqliteBackend]:
    opened = threaded(tmp_path / "data", lock_timeout=30.0)
    yield opened
    call(opened.close)


def wal_size(backend: SqliteBackend) -> int:
    try:
        return os.stat(backend.path + "-wal").st_size
    except FileNotFoundError:
        return 0


def eventually(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """``condition`` became true within ``timeout`` (generous: the writer
    checkpoints after about a second of idleness)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def burst(backend: SqliteBackend) -> None:
    ref = inbox(backend)
    for n in range(BURST):
        call(lambda n=n: backend.append(ref, [AppendItem(bytes([n % 256]) * PIECE)]))


def test_a_paused_large_stream_does_not_pin_the_wal(backend: SqliteBackend) -> None:
    ref = inbox(backend)
    big = bytes(range(256)) * ((STREAM_THRESHOLD + 3 * STREAM_CHUNK) // 256 + 1)
    call(lambda: backend.append(ref, [AppendItem(big, ("\\Deleted",))]))
    body = call(lambda: backend.open_message(ref, 1))
    assert body is not None and body.size == len(big)
    chunks = body.chunks()
    first = next(chunks)  # the client read a little, then stalled
    assert call(lambda: backend.expunge(ref)) == [1]
    burst(backend)
    assert eventually(lambda: wal_size(backend) <= SMALL_WAL), (
        f"the WAL stayed at {wal_size(backend)} bytes while a stream was paused")
    rest = b"".join(chunks)  # the client reads on: exact bytes, not cut short
    assert first + rest == big


def test_the_wal_shrinks_back_after_a_burst(backend: SqliteBackend) -> None:
    burst(backend)
    assert eventually(lambda: wal_size(backend) <= SMALL_WAL), (
        f"the WAL kept {wal_size(backend)} bytes after the burst")


def test_a_reader_of_another_process_delays_no_write(
    backend: SqliteBackend, tmp_path: Path
) -> None:
    """The writer's checkpoints never wait for a reader: with a foreign
    read transaction open throughout (lock_timeout 30 s), a burst of
    commits goes through and the log shrinks once the reader is gone."""
    reader = sqlite3.connect(tmp_path / "data" / DB_FILENAME, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchone()
    started = time.monotonic()
    try:
        burst(backend)
        time.sleep(1.5)  # idle long enough for a checkpoint attempt (none may block)
        ref = inbox(backend)
        call(lambda: backend.append(ref, [AppendItem(b"after\r\n")]))
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert time.monotonic() - started < WAIT / 4  # far below one 30 s busy wait
    assert eventually(lambda: wal_size(backend) <= SMALL_WAL)


def test_a_large_body_is_read_from_a_spool_file_not_a_snapshot(backend: SqliteBackend) -> None:
    """No read transaction of the store stays open while the body is
    streamed: a checkpoint can complete (busy=0) in the middle of it."""
    ref = inbox(backend)
    big = os.urandom(STREAM_THRESHOLD + 1)
    call(lambda: backend.append(ref, [AppendItem(big)]))
    body = call(lambda: backend.open_message(ref, 1))
    assert body is not None
    chunks = body.chunks()
    first = next(chunks)
    probe = sqlite3.connect(backend.path, isolation_level=None)
    try:
        busy, _, _ = probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        probe.close()
    assert busy == 0
    assert first + b"".join(chunks) == big
    assert list((backend.data_dir / "spool").iterdir()) == []  # anonymous: nothing left


def test_the_reader_thread_reopens_its_connection_after_many_spool_copies(
    backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spool copies open blobs on the reader thread's connection: it is
    recycled like the others (issue 13, item 1: cpython#144424)."""
    from imapd.storage.sqlite import schema

    monkeypatch.setattr(schema, "RECYCLE_AFTER_BLOBS", 2)
    ref = inbox(backend)
    big = os.urandom(STREAM_THRESHOLD + 1)
    call(lambda: backend.append(ref, [AppendItem(big)]))
    assert backend.reader is not None
    first = backend.reader._conn
    for _ in range(3):
        body = call(lambda: backend.open_message(ref, 1))
        assert body is not None and b"".join(body.chunks()) == big
    assert backend.reader._conn is not first

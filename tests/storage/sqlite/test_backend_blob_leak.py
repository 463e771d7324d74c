"""Body reads and large APPENDs do not grow memory (issue 13, item 1).

CPython's sqlite3 keeps a dead weak reference for every blob ever opened on a
connection (python/cpython#144424, ~90 bytes each); the engine reopens its
connections after ``RECYCLE_AFTER_BLOBS`` blob opens (``schema.Connection``).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Iterator

import pytest

from imapd.mail.records import AppendItem
from imapd.storage.sqlite import SqliteBackend, schema
from tests.storage.sqlite.backend_helpers import USER, call, inbox, inline, run, threaded, writer_of

READS = 6000  # without the fix: ~6000 x 90 bytes = ~530 KB that never go away


def test_many_body_reads_leave_memory_flat(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user(USER))
        entry = run(backend.lookup(USER, "INBOX"))
        assert entry is not None
        ref = entry.ref
        run(backend.append(ref, [AppendItem(b"Subject: x\r\n\r\nbody\r\n")]))
        for _ in range(200):  # warm up caches and statement cache
            run(backend.read_message(ref, 1))
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for n in range(READS):
                assert run(backend.read_message(ref, 1, n % 4, 4)) is not None
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        # At most one recycling period of dead references (~90 KB) remains.
        assert grown < 150_000, f"{grown} bytes kept after {READS} body reads"
        assert backend.conn.blobs_opened < schema.RECYCLE_AFTER_BLOBS
    finally:
        run(backend.close())


@pytest.fixture
def few_blobs(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(schema, "RECYCLE_AFTER_BLOBS", 3)
    yield 3


def test_the_writer_reopens_its_connection_after_many_blob_writes(
    tmp_path: Path, few_blobs: int
) -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * (300 * 1024)  # above BLOB_PIECES_ABOVE
    backend: SqliteBackend = threaded(tmp_path)
    try:
        ref = inbox(backend)
        first = writer_of(backend).conn
        for _ in range(few_blobs * 3):
            call(lambda: backend.append(ref, [AppendItem(big)]))
        # The reopened connection works and what came before is there (the
        # writer reopens after answering a batch: this write follows it).
        call(lambda: backend.append(ref, [AppendItem(b"Subject: small\r\n\r\n.\r\n")]))
        writer = writer_of(backend)
        assert writer.conn is not first
        assert isinstance(writer.conn, schema.Connection)
        assert writer.conn.blobs_opened < few_blobs
        status = call(lambda: backend.status(ref))
        assert status.messages == few_blobs * 3 + 1
        assert call(lambda: backend.read_message(ref, 1)) == big
    finally:
        call(backend.close)

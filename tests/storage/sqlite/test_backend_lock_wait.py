"""A ``\\Recent`` claim does not wait out the whole lock timeout (issue 13,
item 2).

Claims are the only writes of SELECT and of a catch-up (NOOP, IDLE), which
users see as reads. While another process holds the write lock, a claim
gives up after ``OPTIONAL_WAIT`` (the mail core then opens the mailbox
without claiming), also when it is queued behind a write that waits for the
lock. Other writes keep the full ``lock_timeout``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterator

import pytest

from imapd.mail.errors import Unavailable
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.storage.sqlite import SqliteBackend
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import call, inbox, start, threaded

LOCK_TIMEOUT = 30.0  # so that waiting it out is unmistakable


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SqliteBackend]:
    opened = threaded(tmp_path / "data", lock_timeout=LOCK_TIMEOUT)
    yield opened
    call(opened.close)


def hold_write_lock(backend: SqliteBackend) -> sqlite3.Connection:
    conn = sqlite3.connect(backend.data_dir / DB_FILENAME, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_claim_behind_a_foreign_lock_gives_up_soon(backend: SqliteBackend) -> None:
    ref = inbox(backend)
    call(lambda: backend.append(ref, [AppendItem(b"x\r\n")]))
    lock = hold_write_lock(backend)
    try:
        started = time.monotonic()
        (claim,) = start(lambda: backend.claim_recent(ref, 2))
        with pytest.raises(Unavailable):
            claim.result()
        assert time.monotonic() - started < LOCK_TIMEOUT / 3
    finally:
        lock.rollback()
        lock.close()
    assert call(lambda: backend.claim_recent(ref, 2)) == (1, 1)  # unclaimed, claimable now


def test_a_claim_queued_behind_a_stuck_write_gives_up_first(backend: SqliteBackend) -> None:
    ref = inbox(backend)
    call(lambda: backend.append(ref, [AppendItem(b"x\r\n")]))
    lock = hold_write_lock(backend)
    try:
        (store,) = start(lambda: backend.store_flags(ref, [1], FlagOp.ADD, ["\\Seen"]))
        (claim,) = start(lambda: backend.claim_recent(ref, 2))  # queued behind the STORE
        with pytest.raises(Unavailable):
            claim.result()
        assert not store.done.is_set()  # the STORE still waits, with its full timeout
    finally:
        lock.rollback()
        lock.close()
    assert len(store.result().changed) == 1

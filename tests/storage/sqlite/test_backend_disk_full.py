"""Disk full on a real (small tmpfs) disk (issue 13, item 7).

SQLite answers "database or disk is full" (SQLITE_FULL) for every write
alike. The engine: reports it as ``StorageFull`` (IMAP NO [OVERQUOTA]) in
one log line; refuses APPENDs below a free-space floor; keeps flag changes,
expunges and ``\\Recent`` claims working by releasing its reserve file;
opens on a full disk; and takes new messages again by itself once space
returns (the reserve re-created, no restart).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import pytest

from imapd.mail.backend import MailboxRef
from imapd.mail.errors import MailError, StorageFull
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.storage.sqlite import SqliteBackend
from imapd.storage.sqlite.space import RESERVE_NAME
from tests.storage.sqlite.backend_helpers import call, inbox, inline, run, threaded
from tests.storage.sqlite.tmpfs import PINS, fill, free_bytes, small_tmpfs

PINNED_SKIPS = PINS
DISK_MIB = 24
PIECE = 256 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "mnt", DISK_MIB) as mounted:
        yield mounted


def append_until_refused(backend: SqliteBackend, ref: MailboxRef) -> tuple[int, MailError]:
    """APPEND 256 KiB messages until one fails; (how many went in, the error)."""
    for count in range(4 * DISK_MIB * 1024 * 1024 // PIECE):
        try:
            call(lambda: backend.append(ref, [AppendItem(os.urandom(PIECE))]))
        except MailError as error:
            return count, error
    raise AssertionError("the disk never filled up")


def test_appends_are_refused_with_storage_full_in_one_log_line(
    disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = threaded(disk / "data")
    try:
        ref = inbox(backend)
        with caplog.at_level(logging.INFO):
            count, error = append_until_refused(backend, ref)
            assert count > 0
            assert isinstance(error, StorageFull), repr(error)
            with pytest.raises(StorageFull):  # and again, without another log line
                call(lambda: backend.append(ref, [AppendItem(os.urandom(PIECE))]))
        assert not any(record.exc_info for record in caplog.records)
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    finally:
        call(backend.close)


def test_flags_expunge_and_claims_work_on_a_disk_full_to_the_last_block(disk: Path) -> None:
    backend = threaded(disk / "data")
    try:
        ref = inbox(backend)
        call(lambda: backend.append(ref, [AppendItem(os.urandom(PIECE)) for _ in range(8)]))
        fill(disk)
        assert free_bytes(disk) == 0
        stored = call(lambda: backend.store_flags(ref, range(1, 9), FlagOp.ADD, ["\\Deleted"]))
        assert len(stored.changed) == 8
        assert call(lambda: backend.claim_recent(ref, 9)) == (1, 8)
        assert call(lambda: backend.expunge(ref, [1, 2])) == [1, 2]
    finally:
        call(backend.close)


def test_the_store_opens_and_selects_on_a_full_disk(disk: Path) -> None:
    backend = threaded(disk / "data")
    ref = inbox(backend)
    call(lambda: backend.append(ref, [AppendItem(b"Subject: x\r\n\r\nx\r\n")]))
    call(backend.close)
    fill(disk)
    assert free_bytes(disk) == 0
    backend = threaded(disk / "data")  # a restart on the full disk
    try:
        snapshot, _ = call(lambda: backend.snapshot(ref))
        assert snapshot.uids == (1,) or list(snapshot.uids) == [1]
        assert call(lambda: backend.claim_recent(ref, snapshot.uidnext)) == (1, 1)
        call(lambda: backend.store_flags(ref, [1], FlagOp.ADD, ["\\Seen"]))
    finally:
        call(backend.close)


def test_appends_are_accepted_again_once_space_returns(disk: Path) -> None:
    backend = threaded(disk / "data")
    try:
        ref = inbox(backend)
        call(lambda: backend.append(ref, [AppendItem(os.urandom(PIECE))]))
        filler = fill(disk)
        call(lambda: backend.store_flags(ref, [1], FlagOp.ADD, ["\\Flagged"]))  # uses the reserve
        with pytest.raises(StorageFull):
            call(lambda: backend.append(ref, [AppendItem(os.urandom(PIECE))]))
        filler.unlink()  # the operator frees space; no restart
        result = call(lambda: backend.append(ref, [AppendItem(os.urandom(PIECE))]))
        assert result.uids == (2,)
        assert (disk / "data" / RESERVE_NAME).exists()
    finally:
        call(backend.close)


def test_inline_mode_refuses_appends_and_keeps_flags_working(disk: Path) -> None:
    """The same rules without the writer thread (unit transcripts, tools)."""
    backend = inline(disk / "data")
    try:
        run(backend.ensure_user("alice"))
        entry = run(backend.lookup("alice", "INBOX"))
        assert entry is not None
        ref = entry.ref
        with pytest.raises(StorageFull):
            for _ in range(4 * DISK_MIB * 1024 * 1024 // PIECE):
                run(backend.append(ref, [AppendItem(os.urandom(PIECE))]))
        fill(disk)
        stored = run(backend.store_flags(ref, [1, 2], FlagOp.ADD, ["\\Deleted"]))
        assert len(stored.changed) == 2
        assert run(backend.expunge(ref)) == [1, 2]
    finally:
        run(backend.close())

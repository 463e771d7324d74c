"""Threaded mode of ``SqliteBackend`` on a real reactor (issue 12): every
write and its fsync happen on the one writer thread, concurrent writes share
one COMMIT (group commit), a write stuck behind another process's lock
blocks nobody on the reactor and answers ``Unavailable`` after the bounded
wait, and one op failing in a shared transaction fails alone."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from imapd.mail.backend import AddMailbox, RemoveMailbox
from imapd.mail.errors import NoSuchMailbox, OverLimit, StorageFull, Unavailable
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.storage.sqlite import SqliteBackend
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import (
    USER, WAIT, call, inbox, start, threaded, writer_of,
)
from tests.support.reactor_thread import reactor_thread


class Trace:
    """Every statement a connection runs, with the thread that ran it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.lock = threading.Lock()
        self.statements: list[tuple[str, str]] = []
        conn.set_trace_callback(self._record)

    def _record(self, statement: str) -> None:
        with self.lock:
            self.statements.append((threading.current_thread().name, statement.strip().upper()))

    def commits(self) -> list[str]:
        """The threads of the COMMITs of client writes: not those of the
        writer's own deferred upkeep (``fts.purge_gone``, run when idle)."""
        out: list[str] = []
        upkeep = False
        with self.lock:
            for thread, s in self.statements:
                if s.startswith("BEGIN"):
                    upkeep = False
                elif "FROM FTS_GONE ORDER BY" in s:
                    upkeep = True
                elif s == "COMMIT" and not upkeep:
                    out.append(thread)
        return out


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SqliteBackend]:
    opened = threaded(tmp_path / "data", lock_timeout=30.0)
    yield opened
    call(opened.close)


class HeldWriter:
    """Keeps the writer thread busy inside an op until ``release``, so that
    every call started meanwhile is queued for its next batch."""

    def __init__(self, backend: SqliteBackend) -> None:
        self.running, self.gate = threading.Event(), threading.Event()
        writer = writer_of(backend)
        (self.pending,) = start(lambda: writer.run(self._hold))
        assert self.running.wait(WAIT)

    def _hold(self, conn: sqlite3.Connection) -> tuple[None, list[tuple[int, int]]]:
        self.running.set()
        self.gate.wait(WAIT)
        return None, []

    def release(self) -> None:
        self.gate.set()
        self.pending.result()


def hold_write_lock(data_dir: Path) -> sqlite3.Connection:
    """Another process's writer in the middle of a transaction."""
    other = sqlite3.connect(data_dir / DB_FILENAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_no_commit_or_write_runs_on_the_reactor_thread(backend: SqliteBackend) -> None:
    ref = inbox(backend)
    writes = Trace(writer_of(backend).conn)
    reads = Trace(backend.conn)
    # Creating the schema at open (FTS5's shadow tables) counts changes.
    changes_at_open = backend.conn.total_changes

    async def work() -> None:
        result = await backend.append(ref, [AppendItem(b"a\r\n"), AppendItem(b"b\r\n")])
        await backend.store_flags(ref, list(result.uids), FlagOp.ADD, ["\\Deleted"])
        await backend.claim_recent(ref, 10)
        await backend.edit_tree(USER, lambda rows: [AddMailbox("Work")])
        await backend.set_subscribed(USER, "Work", True)
        work_box = await backend.lookup(USER, "Work")
        assert work_box is not None
        await backend.copy(ref, list(result.uids), work_box.ref, move=True)
        await backend.expunge(work_box.ref)
        await backend.fetch_flags(ref)
        await backend.changes_since(ref, 0, 1)

    call(work)
    # The expunge's bodies are purged from the search index by the writer
    # when idle, in transactions of its own: wait for it so they are traced.
    watcher = sqlite3.connect(backend.path)
    deadline = time.monotonic() + WAIT
    while (watcher.execute("SELECT count(*) FROM fts_gone").fetchone()[0]
           and time.monotonic() < deadline):
        time.sleep(0.02)
    watcher.close()
    reactor_name = reactor_thread().name
    assert len(writes.commits()) == 7  # the seven awaited writes, one commit each
    assert {thread for thread, _ in writes.statements} == {"sqlite-writer"}
    # The reactor's connection only reads: it changed no row and never
    # took the write lock (its COMMITs end read transactions: no fsync).
    assert {thread for thread, _ in reads.statements} == {reactor_name}
    assert backend.conn.total_changes == changes_at_open
    assert not [s for _, s in reads.statements
                if s.startswith(("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE", "SAVEPOINT"))]


def test_concurrent_appends_share_one_commit(backend: SqliteBackend) -> None:
    ref = inbox(backend)
    held = HeldWriter(backend)
    commits = Trace(writer_of(backend).conn)
    count = 10
    pendings = start(*[
        (lambda n=n: backend.append(ref, [AppendItem(b"m%d\r\n" % n)])) for n in range(count)
    ])
    held.release()
    uids = sorted(p.result().uid for p in pendings)
    assert uids == list(range(1, count + 1))
    # The held batch's COMMIT, then ONE for the ten appends (one fsync).
    assert len(commits.commits()) == 2


def test_concurrent_appends_behind_another_process_share_commits(
    backend: SqliteBackend, tmp_path: Path
) -> None:
    ref = inbox(backend)
    commits = Trace(writer_of(backend).conn)
    other = hold_write_lock(tmp_path / "data")
    count = 10
    pendings = start(*[
        (lambda n=n: backend.append(ref, [AppendItem(b"m%d\r\n" % n)])) for n in range(count)
    ])
    other.execute("ROLLBACK")  # every append is queued: let the writer go
    other.close()
    assert sorted(p.result().uid for p in pendings) == list(range(1, count + 1))
    # The writer took the first append (maybe more), waited for the lock,
    # then took the rest as one batch: at most two COMMITs, not ten.
    assert len(commits.commits()) <= 2


def test_a_failing_op_rolls_back_alone_inside_a_shared_commit(backend: SqliteBackend) -> None:
    ref = inbox(backend)
    call(lambda: backend.edit_tree(USER, lambda rows: [AddMailbox("Gone")]))
    gone = call(lambda: backend.lookup(USER, "Gone"))
    assert gone is not None
    call(lambda: backend.edit_tree(USER, lambda rows: [RemoveMailbox("Gone")]))
    # 999 keywords: the next append defines one more (the limit, 1000) and
    # fails on the second, after it has written a UID, a body and a keyword.
    many = tuple(f"k{n}" for n in range(999))
    call(lambda: backend.append(ref, [AppendItem(b"seed\r\n", many)]))
    held = HeldWriter(backend)
    commits = Trace(writer_of(backend).conn)
    good1, bad_limit, bad_ref, good2 = start(
        lambda: backend.append(ref, [AppendItem(b"one\r\n")]),
        lambda: backend.append(ref, [AppendItem(b"x\r\n", ("new1", "new2"))]),
        lambda: backend.append(gone.ref, [AppendItem(b"y\r\n")]),
        lambda: backend.append(ref, [AppendItem(b"two\r\n")]),
    )
    held.release()
    with pytest.raises(OverLimit):
        bad_limit.result()
    with pytest.raises(NoSuchMailbox):
        bad_ref.result()
    # The failed op's UID and keyword were rolled back with its savepoint:
    # the good appends got consecutive UIDs, and "new1" does not exist.
    assert (good1.result().uid, good2.result().uid) == (2, 3)
    assert len(commits.commits()) == 2  # the held batch's, and the four ops' one
    snapshot, _ = call(lambda: backend.snapshot(ref))
    assert list(snapshot.uids) == [1, 2, 3] and snapshot.uidnext == 4
    assert "new1" not in snapshot.keywords and len(snapshot.keywords) == 999


def test_a_stuck_writer_blocks_no_read_and_answers_unavailable(tmp_path: Path) -> None:
    backend = threaded(tmp_path / "data", lock_timeout=1.0)
    try:
        ref = inbox(backend)
        call(lambda: backend.append(ref, [AppendItem(b"before\r\n")]))
        other = hold_write_lock(tmp_path / "data")
        try:
            (stuck,) = start(lambda: backend.append(ref, [AppendItem(b"stuck\r\n")]))
            # While the writer waits for the lock, the reactor serves reads:
            # each returns although the lock is still held (no timing).
            status = call(lambda: backend.status(ref))
            flags = call(lambda: backend.fetch_flags(ref))
            changes = call(lambda: backend.changes_since(ref, 0, 1))
            body = call(lambda: backend.read_message(ref, 1))
            assert status.messages == 1 and [f.uid for f in flags] == [1]
            assert [a.uid for a in changes.added] == [1] and body == b"before\r\n"
            with pytest.raises(Unavailable):
                stuck.result()  # the bounded wait (1 s) ran out
        finally:
            other.execute("ROLLBACK")
            other.close()
        # Nothing of the failed append remains; the next one works.
        result = call(lambda: backend.append(ref, [AppendItem(b"after\r\n")]))
        assert result.uid == 2
    finally:
        call(backend.close)


def test_own_changes_ring_on_the_reactor_before_the_call_returns(
    backend: SqliteBackend,
) -> None:
    ref = inbox(backend)
    rung: list[tuple[str, int]] = []

    async def go() -> tuple[list[tuple[str, int]], int]:
        backend.feed.subscribe(ref.id, lambda box, modseq: rung.append(
            (threading.current_thread().name, modseq)))
        await backend.append(ref, [AppendItem(b"a\r\n")])
        seen = list(rung)  # what had rung when the call returned
        return seen, (await backend.status(ref)).highestmodseq

    seen, modseq = call(go)
    assert seen == [(reactor_thread().name, modseq)]


def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    backend = threaded(tmp_path / "data")
    ref = inbox(backend)
    pendings = start(*[
        (lambda n=n: backend.append(ref, [AppendItem(b"%d\r\n" % n)])) for n in range(5)
    ])
    call(backend.close)
    assert sorted(p.result().uid for p in pendings) == [1, 2, 3, 4, 5]
    with pytest.raises(Unavailable):
        call(lambda: backend.status(ref))
    assert WAIT > 0


def test_a_transaction_lost_mid_batch_fails_every_op_of_it(backend: SqliteBackend) -> None:
    """When SQLite rolls back the whole transaction (disk full, I/O error),
    the ops that already ran in it are lost too: none may report success
    (disk full: ``StorageFull``, IMAP NO [OVERQUOTA])."""
    ref = inbox(backend)
    writer = writer_of(backend)

    def subscribe(conn: sqlite3.Connection) -> tuple[None, list[tuple[int, int]]]:
        conn.execute("INSERT INTO subscriptions(user_id, name) VALUES(1, 'Lost')")
        return None, []

    def lose_transaction(conn: sqlite3.Connection) -> tuple[None, list[tuple[int, int]]]:
        conn.execute("ROLLBACK")  # what SQLite does by itself on SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")

    held = HeldWriter(backend)
    first, second = start(lambda: writer.run(subscribe), lambda: writer.run(lose_transaction))
    held.release()
    for pending in (first, second):
        with pytest.raises(StorageFull):  # retried once after the reserve's release: same
            pending.result()
    assert call(lambda: backend.subscriptions(USER)) == []
    result = call(lambda: backend.append(ref, [AppendItem(b"x\r\n")]))
    assert result.uid == 1  # the writer carries on


def test_reads_that_grow_with_the_mailbox_leave_the_reactor(backend: SqliteBackend) -> None:
    """Whole-mailbox FETCH FLAGS / records and STATUS cost O(messages)
    (hundreds of ms at 100,000): the reader thread runs them; reads of a
    few UIDs stay inline."""
    ref = inbox(backend)
    call(lambda: backend.append(ref, [AppendItem(b"%d\r\n" % n) for n in range(3)]))
    assert backend.reader is not None
    on_reader = Trace(backend.reader._conn)
    inline_reads = Trace(backend.conn)
    assert [s.uid for s in call(lambda: backend.fetch_flags(ref))] == [1, 2, 3]
    assert len(call(lambda: backend.fetch_records(ref))) == 3
    assert call(lambda: backend.status(ref)).messages == 3
    big = {thread for thread, _ in on_reader.statements}
    assert big == {"sqlite-reader"} and len(on_reader.statements) >= 9
    assert inline_reads.statements == []
    assert [s.uid for s in call(lambda: backend.fetch_flags(ref, [2]))] == [2]
    assert {thread for thread, _ in inline_reads.statements} == {reactor_thread().name}


def test_a_large_message_streams_from_its_own_snapshot(backend: SqliteBackend) -> None:
    """open_message above STREAM_THRESHOLD: chunks from a connection of its
    own, so an expunge committed meanwhile does not cut the stream short."""
    from imapd.storage.sqlite.reads import STREAM_CHUNK, STREAM_THRESHOLD

    ref = inbox(backend)
    big = bytes(range(256)) * ((STREAM_THRESHOLD + 3 * STREAM_CHUNK) // 256 + 1)
    call(lambda: backend.append(ref, [AppendItem(big, ("\\Deleted",))]))
    body = call(lambda: backend.open_message(ref, 1))
    assert body is not None and body.size == len(big)
    chunks = body.chunks()
    first = next(chunks)
    assert call(lambda: backend.expunge(ref)) == [1]
    assert call(lambda: backend.open_message(ref, 1)) is None
    rest = b"".join(chunks)
    assert len(first) < len(big) and first + rest == big

"""The SQLite engine's single writer: group commit on one thread.

Every change of the engine is a *write op*: a function of the write
connection, run inside the engine's transaction, returning its result and
the doorbells it wants rung (``(mailbox id, modseq or 0)``). Two ways to run
them:

* ``InlineWriter`` (``open_backend(hop=None)``): the op runs on the
  caller's thread in its own ``BEGIN IMMEDIATE`` ... ``COMMIT``; the rings
  are rung synchronously before the call returns. For byte-exact unit
  transcripts that drive coroutines without a reactor.
* ``ThreadedWriter`` (``hop`` given, production): ONE writer thread owns the
  write connection. It takes every queued op, runs each inside its own
  ``SAVEPOINT`` within one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (WAL,
  ``synchronous=FULL``: the COMMIT is the fsync), so concurrent callers
  share one commit and one fsync. An op that raises rolls back only its
  savepoint and gets its own error. After the COMMIT the outcomes go back
  through ``hop`` (reactor.callFromThread): on the reactor thread the feed
  rings every changed mailbox first, then each caller's waiter resolves, so
  a caller's own changes have rung before its call returns (the
  ``MailBackend`` doorbell rule).

Lock waits happen only on the writer thread, bounded by ``lock_timeout``
(SQLite's busy handler); past it the whole batch fails with ``Unavailable``.
*Optional* ops (the ``\\Recent`` claims of SELECT and of catch-ups, which
users see as reads) wait less: the writer waits for the lock in slices of
``LOCK_SLICE`` and between them fails every optional op, in its batch or
still queued, that has waited more than ``optional_wait`` since it was
queued (the mail core then goes on without the claim).

Disk full (``space``): SQLite's ``SQLITE_FULL`` is ``StorageFull`` (IMAP NO
[OVERQUOTA]), logged in one line. When a batch hits it, the engine's reserve
file is released and the batch run once more, so that flag changes,
expunges and ``\\Recent`` claims still commit while APPENDs stay refused.
Between batches and when idle the writer checkpoints the WAL (``wal``).

Waiters: storage may not import ``twisted.internet`` (tests/test_layering.py),
and Twisted's coroutine driver only suspends on a yielded ``Deferred``
(``_inlineCallbacks`` sends any other yielded value straight back). So the
composition root injects ``make_waiter``: a zero-argument factory of objects
that are awaitable and have ``callback(value)`` / ``errback(exception)`` —
``twisted.internet.defer.Deferred`` itself is one.
"""

from __future__ import annotations

import collections
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

from imapd.core import telemetry
from imapd.core.errors import ImapError
from imapd.mail.errors import Unavailable
from imapd.storage.sqlite.schema import Connection
from imapd.storage.sqlite.feed import RowState, row_states
from imapd.storage.rows import legacy_mail_error
from imapd.storage.hops import Hop, MakeWaiter, Waiter
from imapd.storage.sqlite.space import SpaceGuard, full_error, is_disk_full
from imapd.storage.sqlite.wal import Checkpointer

log = logging.getLogger(__name__)

T = TypeVar("T")

Rings = list[tuple[int, int]]
# A write op: runs inside the transaction; returns (result, rings).
WriteOp = Callable[[sqlite3.Connection], tuple[T, Rings]]
RingAll = Callable[[Sequence[tuple[int, int]]], None]
# How long an optional op (a \Recent claim) may wait for the write lock.
OPTIONAL_WAIT = 1.0
# The writer waits for the lock in slices this long (seconds).
LOCK_SLICE = 0.1
SQLITE_BUSY = 5




def mail_error(error: BaseException) -> BaseException:
    """The ``imapd.mail.errors`` form of an error raised inside an op: the
    old helpers (messages.py) still raise ``ImapError``; a full disk is
    ``StorageFull``; SQLite's other operational errors (locked, I/O) mean
    the store is unavailable."""
    if is_disk_full(error):
        return full_error()
    if isinstance(error, ImapError):
        return legacy_mail_error(error)
    if isinstance(error, sqlite3.OperationalError):
        return Unavailable(f"mail store unavailable: {error}")
    return error


class InlineWriter:
    """Each op in its own durable transaction on the caller's thread."""

    def __init__(
        self, conn: sqlite3.Connection, ring_all: RingAll, space: SpaceGuard | None = None
    ) -> None:
        self.conn = conn
        self._ring_all = ring_all
        self.space = space

    async def run(self, op: WriteOp[T], optional: bool = False,
                  prepare: Callable[[], None] | None = None) -> T:
        """``optional`` and ``prepare`` are for the threaded writer; here
        every op waits the connection's busy timeout."""
        return self.run_sync(op)

    def run_sync(self, op: WriteOp[T]) -> T:
        """The op in its own transaction; once more after releasing the
        disk reserve if it hit disk full (see the module docstring)."""
        try:
            return self._run_once(op)
        except _DiskFull as full:
            if self.space is None or not self.space.release():
                log.warning("write refused: %s", full.error)
                raise full_error() from None
        try:
            return self._run_once(op)
        except _DiskFull as full:
            log.warning("write refused: %s", full.error)
            raise full_error() from None

    def _run_once(self, op: WriteOp[T]) -> T:
        conn = self.conn
        started = time.monotonic()
        if self.space is not None:
            self.space.start_batch()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise mail_error(error) from None
        try:
            result, rings = op(conn)
            conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if is_disk_full(error):
                raise _DiskFull(error) from None
            converted = mail_error(error)
            if converted is error:
                raise
            raise converted from None
        telemetry.sink().committed("sqlite", time.monotonic() - started, 1)
        self._ring_all(rings)
        return result

    async def close(self) -> None:
        """Nothing to stop (the backend closes the connection)."""
        return None


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY (another connection holds the lock)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == SQLITE_BUSY
    return "database is locked" in str(error)


class _DiskFull(Exception):
    """A write hit disk full (SQLite's or the OS's error in ``error``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(eq=False)
class _Job(Generic[T]):
    op: WriteOp[T]
    waiter: Waiter[T]
    ok: bool = False
    result: Any = None
    rings: Rings = field(default_factory=list)
    full: bool = False  # not done because the disk was full: may be retried
    optional: bool = False  # may give up on the lock early (see the module docstring)
    # Called on the writer thread before BEGIN (outside the lock): waits for
    # work the op needs that other threads are doing. Must not raise.
    prepare: Callable[[], None] | None = None
    queued_at: float = field(default_factory=time.monotonic)
    delivered: bool = False  # its waiter was resolved (on the reactor thread)


@dataclass(eq=False)
class _Stop:
    job: _Job[None]


class ThreadedWriter:
    """The writer thread and its queue (see the module docstring)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        ring_all: RingAll,
        hop: Hop,
        make_waiter: MakeWaiter,
        max_batch: int = 256,
        reconnect: Callable[[], Connection] | None = None,
        space: SpaceGuard | None = None,
        checkpointer: Checkpointer | None = None,
        purge: Callable[[sqlite3.Connection], int] | None = None,
    ) -> None:
        # Told the committed state of the rung mailboxes (the poller's
        # detector), so the poller does not ring this process's own
        # changes a second time.
        self.note: Callable[[dict[int, RowState]], None] | None = None
        self.conn = conn
        self._reconnect = reconnect
        self.space = space
        self.checkpointer = checkpointer
        # Deferred upkeep in transactions of its own, one step per empty
        # queue (``fts.purge_gone``: the index rows of deleted bodies); due
        # at start (a crash's leftovers) and after every commit.
        self._purge = purge
        self._purge_due = purge is not None
        self._ring_all = ring_all
        self._hop = hop
        self._make_waiter = make_waiter
        self._max_batch = max_batch
        self.optional_wait = OPTIONAL_WAIT
        # Taken off the queue while waiting for the lock, not yet run.
        self._backlog: collections.deque[Any] = collections.deque()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        # Observability for tests: the thread that ran each COMMIT, and
        # how many ops each COMMIT carried.
        self.commit_threads: list[str] = []
        self.batch_sizes: list[int] = []
        self._thread = threading.Thread(target=self._loop, name="sqlite-writer", daemon=True)
        self._thread.start()

    def run(self, op: WriteOp[T], optional: bool = False,
            prepare: Callable[[], None] | None = None) -> Awaitable[T]:
        waiter: Waiter[T] = self._make_waiter()
        if self._closed:
            waiter.errback(Unavailable("mail store is closed"))
            return waiter
        self._queue.put(_Job(op, waiter, optional=optional, prepare=prepare))
        return waiter

    def _next(self, timeout: float | None) -> Any:
        """The next queued item (the backlog first); queue.Empty on timeout
        (``timeout`` 0: do not wait)."""
        if self._backlog:
            return self._backlog.popleft()
        if timeout == 0:
            return self._queue.get_nowait()
        return self._queue.get(timeout=timeout)

    def _loop(self) -> None:
        stopped: _Job[Any] | None = None
        while stopped is None:
            try:
                first = self._next(self._idle_wait())
            except queue.Empty:
                self._idle()
                continue
            if isinstance(first, _Stop):
                stopped = first.job
                break
            batch: list[_Job[Any]] = [first]
            while len(batch) < self._max_batch:
                try:
                    more = self._next(0)
                except queue.Empty:
                    break
                if isinstance(more, _Stop):
                    stopped = more.job
                    break
                batch.append(more)
            committed = self._commit_safely(batch)
            self._hop(self._deliverer(batch))
            if committed and self.checkpointer is not None:
                self._maintain(self.checkpointer.after_commit)
            self._purge_due = self._purge is not None
            self._recycle_if_due()
        # Closed here, on this thread, after every other connection of the
        # backend: the last close checkpoints the WAL (writes and fsyncs),
        # which must not happen on the reactor thread.
        self.conn.close()
        if self.space is not None:  # the WAL's space back: headroom for the next start
            self.space.ensure_reserve(at_rest=True)
        stopped.ok = True
        self._hop(self._deliverer([stopped]))

    def _idle_wait(self) -> float | None:
        """How long to wait for work before idle upkeep: the checkpoint of
        a changed WAL, or a look whether space returned for the reserve."""
        if self._purge_due:
            return 0
        waits = [1.0] if self.space is not None and self.space.short else []
        if self.checkpointer is not None and (wait := self.checkpointer.wait()) is not None:
            waits.append(wait)
        return min(waits, default=None)

    def _idle(self) -> None:
        if self._purge_due and self._purge is not None:
            self._purge_step(self._purge)
            return
        if self.space is not None and self.space.short:
            self.space.ensure_reserve()
        if self.checkpointer is not None:
            self._maintain(self.checkpointer.idle)

    def _purge_step(self, purge: Callable[[sqlite3.Connection], int]) -> None:
        """One bounded purge transaction; the queue is looked at again before
        the next, so client writes wait at most one step. A failure (e.g.
        disk full) is logged and retried after the next commit."""
        try:
            self._purge_due = purge(self.conn) > 0
        except Exception:
            self._purge_due = False
            log.exception("purging deleted bodies' search index rows failed")
        if self._purge_due and self.checkpointer is not None:
            self.checkpointer.dirty = True  # committed: the WAL grew

    def _maintain(self, step: Callable[[sqlite3.Connection], None]) -> None:
        """Upkeep between batches; a failure is logged, never kills the thread."""
        try:
            step(self.conn)
        except Exception:
            log.exception("WAL upkeep failed")

    def _recycle_if_due(self) -> None:
        """Reopen the connection after many blob writes (``schema.Connection``:
        CPython keeps a dead reference per blob ever opened on one)."""
        conn = self.conn
        if self._reconnect is None or not isinstance(conn, Connection) or not conn.due_for_recycling:
            return
        try:
            fresh = self._reconnect()
        except sqlite3.Error:
            log.exception("reopening the write connection failed; keeping the old one")
            return
        self.conn = fresh
        conn.close()

    def _commit_safely(self, batch: list[_Job[Any]]) -> bool:
        """``_commit`` (again once the disk reserve is released, if it hit
        disk full), and whatever goes wrong fails the batch, never the
        thread (every later write would wait forever). True if committed."""
        try:
            full = self._commit(batch)
            retry = [job for job in batch if job.full]
            if retry and self.space is not None and self.space.release():
                full = self._commit(retry)
            if full is not None:
                log.warning("write refused: %s", full)
            return any(job.ok for job in batch)
        except Exception as error:
            if is_disk_full(error):
                log.warning("write batch failed: %s", error)  # expected: no traceback
            else:
                log.exception("write batch failed")
            try:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback failed")
            converted = mail_error(error)
            if converted is error:  # a bug, not a mail error: the caller sees UNAVAILABLE
                converted = Unavailable(f"mail store unavailable: {error}")
            self._fail_all(batch, converted)
            return False

    def _commit(self, batch: list[_Job[Any]]) -> BaseException | None:
        """One transaction for the batch, one savepoint per op. Returns the
        disk-full error it hit (the ops that hit it failed), else None.
        Each COMMIT's latency (lock wait included: the callers wait it too)
        and batch size go to the installed telemetry."""
        conn = self.conn
        started = time.monotonic()
        full: BaseException | None = None
        for job in batch:
            job.full = False
        if self.space is not None:
            self.space.start_batch()
        for job in batch:  # outside the lock: e.g. SEARCH index texts being decoded
            if job.prepare is not None:
                job.prepare()
        try:
            if not self._begin(conn, batch):
                return None  # every op of the batch gave up on the lock
        except sqlite3.OperationalError as error:
            self._fail_all(batch, mail_error(error), is_disk_full(error))
            return error if is_disk_full(error) else None
        for job in batch:
            conn.execute("SAVEPOINT op")
            try:
                job.result, job.rings = job.op(conn)
                job.ok = True
                conn.execute("RELEASE op")
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                job.ok = False
                job.result = mail_error(error)
                if is_disk_full(error):
                    job.full = True
                    full = error
                if not conn.in_transaction:
                    # Some errors (disk full, I/O) make SQLite roll back the
                    # whole transaction: the ops before this one are lost
                    # too, so none of the batch may report success.
                    self._fail_all(batch, mail_error(error), full is not None)
                    return full
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
        rung = sorted({i for job in batch if job.ok for i, _ in job.rings})
        states = row_states(conn, rung) if self.note is not None and rung else {}
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._fail_all(batch, mail_error(error), is_disk_full(error))
            return error if is_disk_full(error) else None
        if self.note is not None and states:
            self.note(states)
        telemetry.sink().committed("sqlite", time.monotonic() - started, len(batch))
        self.commit_threads.append(threading.current_thread().name)
        self.batch_sizes.append(len(batch))
        return full

    def _begin(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> bool:
        """BEGIN IMMEDIATE within the connection's busy timeout, waiting in
        ``LOCK_SLICE`` slices; between them, optional ops past their wait
        fail (``_expire_optional``) and leave ``batch``. False when none of
        the batch is left (no transaction was begun)."""
        limit = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
        started = time.monotonic()
        conn.execute(f"PRAGMA busy_timeout={min(limit, int(LOCK_SLICE * 1000))}")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return True
                except sqlite3.OperationalError as error:
                    if not _is_busy(error) or (time.monotonic() - started) * 1000 >= limit:
                        raise
                self._expire_optional(batch)
                if not batch:
                    return False
        finally:
            conn.execute(f"PRAGMA busy_timeout={limit}")

    def _expire_optional(self, batch: list[_Job[Any]]) -> None:
        """While the lock is held elsewhere: fail the optional ops (in
        ``batch`` or queued meanwhile) that waited past ``optional_wait``."""
        while True:
            try:
                self._backlog.append(self._queue.get_nowait())
            except queue.Empty:
                break
        now = time.monotonic()

        def expired(item: Any) -> bool:
            return (isinstance(item, _Job) and item.optional
                    and now - item.queued_at > self.optional_wait)

        gone = [job for job in [*batch, *self._backlog] if expired(job)]
        if not gone:
            return
        batch[:] = [job for job in batch if not expired(job)]
        self._backlog = collections.deque(item for item in self._backlog if not expired(item))
        self._fail_all(gone, Unavailable("mail store busy: another process holds the write lock"))
        self._hop(self._deliverer(gone))

    @staticmethod
    def _fail_all(batch: list[_Job[Any]], error: BaseException, full: bool = False) -> None:
        for job in batch:
            job.ok = False
            job.result = error
            job.rings = []
            job.full = full

    def _deliverer(self, batch: list[_Job[Any]]) -> Callable[[], None]:
        return lambda: self._deliver(batch)

    def _deliver(self, batch: list[_Job[Any]]) -> None:
        """On the reactor thread: ring first, then resolve the callers."""
        rings = [ring for job in batch if job.ok for ring in job.rings]
        try:
            self._ring_all(rings)
        finally:
            for job in batch:
                if job.delivered:  # gave up on the lock, answered before
                    continue
                job.delivered = True
                if job.ok:
                    job.waiter.callback(job.result)
                else:
                    job.waiter.errback(job.result)

    async def close(self) -> None:
        """Finish the queued writes, close the connection (on the writer
        thread), then stop the thread."""
        if self._closed:
            return
        self._closed = True
        done: Waiter[None] = self._make_waiter()
        self._queue.put(_Stop(_Job(lambda conn: (None, []), done)))
        await done
        self._thread.join()

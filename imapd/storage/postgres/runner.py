"""Running the PostgreSQL engine's work: a connection pool and its threads.

psycopg's blocking API on a thread pool (``concurrent.futures``) as wide as
the connection pool (``psycopg_pool.ConnectionPool``): every call of the
backend is one *job*, a function of a pooled connection run inside one
transaction on a worker thread; its outcome goes back to the reactor thread
through ``hop`` (``reactor.callFromThread``) into a waiter from
``make_waiter`` (a ``Deferred``; storage may not import
``twisted.internet``, see ``imapd.storage.sqlite.writer``). Nothing that
blocks runs on the caller's thread. (Why threads and not psycopg's asyncio
API under Twisted's asyncio reactor: docs/storage.md.)

* Writes run at READ COMMITTED and take the rows they change with
  ``SELECT ... FOR UPDATE`` first (mailbox rows in id order, a user's row
  for tree edits): concurrent writers of one mailbox queue on its row lock,
  so their commits are in UID order. A deadlock or serialization failure is
  retried (the job is a pure function of the connection; nothing of a
  rolled back attempt is kept). After the job, in the same transaction,
  ``pg_notify('imapd', '<mailbox id>:<modseq>')`` for every mailbox it
  changed: NOTIFY is delivered at COMMIT, only if it commits (``feed``).
  On the reactor thread the feed rings first, then the waiter resolves
  (own changes ring before the call returns).
* Reads run at REPEATABLE READ, READ ONLY: one consistent snapshot for the
  several queries of a SELECT or a catch-up.

Failures: a lost connection, a server shutting down or restarting, a pool
that cannot hand out a connection within ``POOL_WAIT`` (server down), a
lock wait past ``LOCK_TIMEOUT``: ``Unavailable`` (IMAP NO [UNAVAILABLE]);
the pool replaces broken connections by itself and checks each connection
before handing it out, so service resumes when the server is back. The
server's disk full (SQLSTATE 53100): ``StorageFull``. A job that raised
rolled back: it made no change. (A connection lost during COMMIT itself
is the one ambiguous case of any client/server database: reported
``Unavailable``, the change may or may not have committed.)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from imapd.core import telemetry
from imapd.core.errors import ImapError
from imapd.mail.errors import MailError, StorageFull, Unavailable
from imapd.storage.postgres.schema import NOTIFY_CHANNEL
from imapd.storage.rows import legacy_mail_error
from imapd.storage.hops import Hop, MakeWaiter, Waiter

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.Connection[Any]
Rings = list[tuple[int, int]]
# A job: runs inside the transaction; returns (result, rings).
Job = Callable[[Conn], tuple[T, Rings]]
RingAll = Callable[[Sequence[tuple[int, int]]], None]

POOL_WAIT = 5.0          # seconds a job waits for a connection before Unavailable
LOCK_TIMEOUT = "10s"     # a row lock held longer than this: Unavailable
CONNECT_TIMEOUT = 5
RETRIES = 8              # deadlock / serialization failure retries
# The pool retries a failed connect with exponential backoff (1 s, 2 s, 4 s
# ...) until it gives up after this long; the next job that needs a
# connection starts a fresh attempt. Without a bound the backoff grows for
# as long as the server is down, and service would resume only at the next
# (by then distant) attempt after the server is back.
RECONNECT_GIVE_UP = 2.0


def mail_error(error: BaseException) -> BaseException:
    """The ``imapd.mail.errors`` form of an error raised inside a job."""
    if isinstance(error, MailError):
        return error
    if isinstance(error, pgerrors.DiskFull):
        log.warning("write refused: %s", " ".join(str(error).split()))
        return StorageFull("mail store is full")
    if isinstance(error, ImapError):
        return legacy_mail_error(error)
    if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout,
                          PoolClosed)):
        _log_unavailable(error)
        # The client sees a fixed text: the server's message names hosts and
        # ports and spans lines (it would break the IMAP response line).
        return Unavailable("mail store temporarily unavailable, try again later")
    return error


_last_logged = 0.0
UNAVAILABLE_LOG_EVERY = 5.0  # seconds: an outage logs a line now and then, not per call


def _log_unavailable(error: BaseException) -> None:
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= UNAVAILABLE_LOG_EVERY:
        _last_logged = now
        detail = " ".join(str(error).split()) or type(error).__name__
        log.warning("mail store unavailable: %s", detail)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, (pgerrors.DeadlockDetected, pgerrors.SerializationFailure))


def _configure(conn: Conn) -> None:
    """Every pooled connection: bounded lock waits (a stuck writer elsewhere
    must not hold a worker for ever)."""
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")


class Runner:
    """The pool, its worker threads, and delivery of outcomes (see above)."""

    def __init__(
        self, dsn: str, hop: Hop, make_waiter: MakeWaiter, ring_all: RingAll, pool_size: int
    ) -> None:
        self._hop = hop
        self._make_waiter = make_waiter
        self._ring_all = ring_all
        self.closed = False
        self.pool = ConnectionPool(
            dsn, min_size=1, max_size=pool_size, open=False, name="imapd-store",
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            configure=_configure, check=ConnectionPool.check_connection, timeout=POOL_WAIT,
            reconnect_timeout=RECONNECT_GIVE_UP,
        )
        self.pool.open(wait=False)  # connects in the background
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="pg-store")
        self._lock = threading.Lock()
        self.commits = 0  # observability for tests

    def write(self, job: Job[T], durable: bool = True) -> Awaitable[T]:
        """Run a writing job; ``durable`` False: the commit does not wait for
        the WAL flush (``\\Recent`` claims, which the contract lets go)."""
        return self._submit(job, write=True, durable=durable)

    def read(self, fn: Callable[[Conn], T]) -> Awaitable[T]:
        """Run a read in one REPEATABLE READ, READ ONLY transaction."""
        return self._submit(lambda conn: (fn(conn), []), write=False, durable=True)

    def _submit(self, job: Job[T], write: bool, durable: bool) -> Awaitable[T]:
        waiter: Waiter[T] = self._make_waiter()
        if self.closed:
            waiter.errback(Unavailable("mail store is closed"))
            return waiter
        try:
            self._executor.submit(self._work, job, write, durable, waiter)
        except RuntimeError:  # shut down meanwhile
            waiter.errback(Unavailable("mail store is closed"))
        return waiter

    def _work(self, job: Job[Any], write: bool, durable: bool, waiter: Waiter[Any]) -> None:
        """On a worker thread: the job (retried on deadlock), then the hop."""
        try:
            result, rings = self._attempts(job, write, durable)
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            failure = mail_error(error)
            if failure is error and not isinstance(error, MailError):
                log.exception("store job failed")
            self._hop(lambda: waiter.errback(failure))
            return
        self._hop(lambda: self._deliver(rings, waiter, result))

    def _deliver(self, rings: Rings, waiter: Waiter[Any], result: Any) -> None:
        """On the reactor thread: ring first, then resolve the caller."""
        try:
            self._ring_all(rings)
        finally:
            waiter.callback(result)

    def _attempts(self, job: Job[T], write: bool, durable: bool) -> tuple[T, Rings]:
        for attempt in range(RETRIES):
            try:
                return self._once(job, write, durable)
            except Exception as error:
                if not _retryable(error) or attempt == RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, job: Job[T], write: bool, durable: bool) -> tuple[T, Rings]:
        started = time.monotonic()
        with self.pool.connection() as conn:
            # Sent with the BEGIN itself (no round trip of its own).
            conn.isolation_level = (psycopg.IsolationLevel.READ_COMMITTED if write
                                    else psycopg.IsolationLevel.REPEATABLE_READ)
            conn.read_only = not write
            with conn.transaction():
                if not durable:
                    conn.execute("SET LOCAL synchronous_commit = off")
                result, rings = job(conn)
                for mailbox_id, modseq in rings:
                    conn.execute("SELECT pg_notify(%s, %s)",
                                 (NOTIFY_CHANNEL, f"{mailbox_id}:{modseq}"))
            if write:
                with self._lock:
                    self.commits += 1
                # One write transaction: its latency (the pool wait included:
                # the caller waits it too) and one change.
                telemetry.sink().committed("postgres", time.monotonic() - started, 1)
            return result, rings

    def run_blocking(self, fn: Callable[[], T]) -> Awaitable[T]:
        """``fn()`` on a worker thread (no connection), e.g. a thread join."""
        waiter: Waiter[T] = self._make_waiter()

        def work() -> None:
            try:
                value = fn()
            except BaseException as error:  # noqa: BLE001
                # Bound now: Python unbinds ``error`` when the except block ends.
                self._hop(lambda failure=error: waiter.errback(failure))  # type: ignore[misc]
            else:
                self._hop(lambda: waiter.callback(value))

        threading.Thread(target=work, name="pg-store-close", daemon=True).start()
        return waiter

    def shutdown(self) -> None:
        """Wait for the queued jobs, close the pool (blocking: call it
        through ``run_blocking``)."""
        self._executor.shutdown(wait=True)
        self.pool.close(timeout=5.0)

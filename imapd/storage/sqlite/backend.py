"""``SqliteBackend``: the SQLite engine behind ``imapd.mail.backend.MailBackend``.

Same database file and schema as the old store (``schema``): existing data
directories keep working. Two modes (``open_backend``):

* inline (``hop=None``): every call runs synchronously on the caller's
  thread, each write in its own durable transaction, rings before return.
  For unit transcripts that drive coroutines without a reactor. No poller:
  other processes' changes are not rung (backends over the same file in
  this process are, see ``feed.Siblings``) unless ``poll_now`` is called.
* threaded (``hop`` = ``reactor.callFromThread``, ``make_waiter`` =
  ``twisted.internet.defer.Deferred``; both from the composition root,
  since storage may not import ``twisted.internet``, see ``writer``):
  writes and their fsyncs on one writer thread with group commit
  (``writer``); small reads inline on the caller's thread, reads that grow
  with the mailbox on a reader thread (``reads``, ``reader``: measured
  costs); a poller thread rings for other processes' commits (``feed``).

Lock waits happen only on the writer thread: a write that cannot take the
lock within ``lock_timeout`` seconds fails with ``Unavailable``. A full disk
is ``StorageFull``; the reserve file and the APPEND floor (``space``) keep
flag changes, expunges and ``\\Recent`` claims working meanwhile. The
writer checkpoints and truncates the WAL (``wal``); a large message is
copied out of its snapshot before it is streamed (``reads.spool_body``), so
no client holds a read transaction open. Opening the
backend (schema creation on a fresh directory) runs on the opening thread:
open it before the reactor serves clients. ``close`` checkpoints the WAL on
the writer thread (the last connection to close does it).

UIDVALIDITY comes from the store-wide counter in ``settings`` (never reused
in this data directory, RFC 3501 §2.3.1.1); mailbox ids are AUTOINCREMENT,
so a ref to a removed mailbox can never reach a new one.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

from imapd.mail import names
from imapd.mail.backend import (
    ChangeFeed, Changes, MailboxEntry, MailboxRef, QuotaInfo, TreePlan,
)
from imapd.mail.errors import NoSuchMailbox, Unavailable
from imapd.mail.flags import FlagOp, split_flags
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MailboxSnapshot, MailboxStatus,
    MessageBody, MessageRecord, StoreResult,
)
from imapd.storage.sqlite import mailboxes as boxes
from imapd.storage.sqlite import messages as msgs
from imapd.message.sortfacts import facts_for
from imapd.storage.sqlite import accounts, fts, quota, reads, sortfacts, tree
from imapd.storage.sqlite.feed import Detector, Poller, Siblings, SqliteFeed
from imapd.storage.sqlite.reader import ReadThread
from imapd.storage.sqlite.schema import DB_FILENAME, Connection, connect, read_transaction
from imapd.storage.sqlite.space import SpaceGuard, is_disk_full
from imapd.storage.sqlite.wal import Checkpointer
from imapd.storage.sqlite.uidcache import UidCache
from imapd.storage.hops import Hop, MakeWaiter
from imapd.storage.sqlite.writer import (
    InlineWriter, Rings, ThreadedWriter, WriteOp, mail_error,
)

T = TypeVar("T")
# SEARCH's index texts and SORT/THREAD's facts of the items of one APPEND.
Prepared = tuple[list[fts.Texts | None], list[bytes | None]]

DEFAULT_LOCK_TIMEOUT = 5.0
# fetch_flags / fetch_records of more UIDs than this (or of all) go to the
# reader thread in threaded mode (costs measured: see ``reader``).
LARGE_READ_UIDS = 1000
READ_BUSY_TIMEOUT_MS = 250


def open_backend(
    data_dir: Path,
    hop: Hop | None = None,
    poll_interval: float = 0.05,
    make_waiter: MakeWaiter | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> SqliteBackend:
    """Open (creating if needed) the store in ``data_dir``. ``hop`` given:
    threaded mode, and ``make_waiter`` must be given too (see ``writer``)."""
    return SqliteBackend(data_dir, hop, poll_interval, make_waiter, lock_timeout)


def _claim(conn: sqlite3.Connection, mailbox_id: int, uidnext: int) -> tuple[int, int] | None:
    """Compare-and-set of ``recent_from`` (RFC 3501 §2.3.2) inside the
    caller's transaction: claim every unclaimed UID below ``uidnext``."""
    row = conn.execute(
        "SELECT recent_from, uidnext FROM mailboxes WHERE id=?", (mailbox_id,)
    ).fetchone()
    if row is None:
        return None
    upto = min(uidnext, int(row[1]))
    low = int(row[0])
    if low >= upto:
        return None
    conn.execute("UPDATE mailboxes SET recent_from=? WHERE id=?", (upto, mailbox_id))
    return low, upto - 1


class SqliteBackend:
    """See the module docstring and ``imapd.mail.backend.MailBackend``."""

    def __init__(
        self,
        data_dir: Path,
        hop: Hop | None,
        poll_interval: float,
        make_waiter: MakeWaiter | None,
        lock_timeout: float,
    ) -> None:
        self.data_dir = data_dir
        self.sqlite_feed = SqliteFeed()
        self.feed: ChangeFeed = self.sqlite_feed
        self.uid_cache = UidCache()
        self._closed = False
        self.space = SpaceGuard(data_dir)
        self.spool_dir = data_dir / "spool"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.space.ensure_reserve()
        self.conn = self._connect()  # reads (and inline writes)
        self.path = str((data_dir / DB_FILENAME).resolve())
        self.poller: Poller | None = None
        self.reader: ReadThread | None = None
        self._indexer: ThreadPoolExecutor | None = None  # decodes SEARCH index texts
        self._detector = Detector(self.sqlite_feed)  # inline mode's poll_now
        self.writer: InlineWriter | ThreadedWriter
        self._read_busy_ms = int(lock_timeout * 1000) if hop is None else READ_BUSY_TIMEOUT_MS
        self.conn.execute(f"PRAGMA busy_timeout={self._read_busy_ms}")
        if hop is None:
            self.writer = InlineWriter(self.conn, self._ring_all, self.space)
        else:
            if make_waiter is None:
                raise ValueError("threaded mode needs make_waiter (e.g. Deferred)")
            # (The reads' busy timeout, READ_BUSY_TIMEOUT_MS: WAL readers
            # take no lock a writer holds; the only waits left, WAL-index
            # recovery after a crash or a WAL restart, are short: bounded so
            # the reactor can never stall for the default 30 s.)
            def write_connection() -> Connection:
                conn = self._connect()
                conn.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
                return conn

            checkpointer = Checkpointer(self.path + "-wal", int(lock_timeout * 1000))
            self.writer = ThreadedWriter(write_connection(), self._ring_all, hop, make_waiter,
                                         reconnect=write_connection, space=self.space,
                                         checkpointer=checkpointer, purge=fts.purge_gone)
            self.reader = ReadThread(self._connect(), hop, make_waiter, reconnect=self._connect)
            self._indexer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-index")
            self.poller = Poller(self._connect, self.sqlite_feed, hop, poll_interval)
            self.writer.note = self.poller.detector.note
        Siblings.join(self.path, self.sqlite_feed)

    # --- plumbing ----------------------------------------------------------

    def _connect(self) -> Connection:
        """A store connection; on a full disk (SQLite's ``-shm`` file needs
        a few pages) once more after releasing the reserve (``space``)."""
        try:
            return connect(self.data_dir, check_same_thread=False)
        except sqlite3.Error as error:
            if not is_disk_full(error) or not self.space.release_for_open():
                raise mail_error(error) from None
        try:
            return connect(self.data_dir, check_same_thread=False)
        except sqlite3.Error as error:
            raise mail_error(error) from None

    def _ring_all(self, rings: Sequence[tuple[int, int]]) -> None:
        """Ring this backend's feed and those of the other backends over
        the same file in this process (called on the reactor thread)."""
        Siblings.ring_all(self.path, rings)

    def _write(self, op: WriteOp[T], optional: bool = False,
               prepare: Callable[[], None] | None = None) -> Awaitable[T]:
        if self._closed:
            raise Unavailable("mail store is closed")
        return self.writer.run(op, optional, prepare)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One read transaction on the caller's thread."""
        if self._closed:
            raise Unavailable("mail store is closed")
        if self.conn.due_for_recycling:
            self._reopen_read_connection()
        try:
            with read_transaction(self.conn):
                return fn(self.conn)
        except sqlite3.OperationalError as error:
            raise mail_error(error) from None

    def _reopen_read_connection(self) -> None:
        """A fresh connection for the inline reads (``schema.Connection``:
        CPython keeps a dead reference per blob ever opened on one)."""
        old, self.conn = self.conn, self._connect()
        self.conn.execute(f"PRAGMA busy_timeout={self._read_busy_ms}")
        if isinstance(self.writer, InlineWriter):
            self.writer.conn = self.conn
        old.close()

    def poll_now(self) -> None:
        """Inline mode (no poller thread): ring, now, the subscribers of
        mailboxes other processes changed since the last look. Threaded
        mode: nothing (the poller does it every ``poll_interval``)."""
        if self.poller is not None or self._closed:
            return
        try:
            changed = self._detector.poll(self.conn)
        except sqlite3.OperationalError as error:
            raise mail_error(error) from None
        for mailbox_id, modseq in changed:
            self.sqlite_feed.ring(mailbox_id, modseq)

    async def _read_large(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read whose cost grows with the mailbox: on the reader thread
        when there is one, else inline."""
        if self.reader is None:
            return self._read(fn)
        if self._closed:
            raise Unavailable("mail store is closed")
        return await self.reader.run(fn)

    # --- users and trees ---------------------------------------------------

    async def ensure_user(
        self, user: str, defaults: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        def exists(conn: sqlite3.Connection) -> bool:
            uid = tree.user_id(conn, user)
            return (
                uid is not None and boxes.find(conn, uid, names.INBOX) is not None
                and not boxes.needs_provisioning(conn, uid, defaults)
            )

        if self._read(exists):
            return
        await self._write(lambda conn: (tree.ensure_user(conn, user, defaults) and None, []))

    async def mailboxes(self, user: str) -> list[MailboxEntry]:
        def read(conn: sqlite3.Connection) -> list[MailboxEntry]:
            uid = tree.user_id(conn, user)
            return [] if uid is None else tree.entries(conn, uid)

        return self._read(read)

    async def lookup(self, user: str, name: str) -> MailboxEntry | None:
        def read(conn: sqlite3.Connection) -> MailboxEntry | None:
            uid = tree.user_id(conn, user)
            row = None if uid is None else boxes.find(conn, uid, name)
            if row is None:
                return None
            return MailboxEntry(row.id, row.name, row.selectable, row.uidvalidity,
                                row.special_use)

        return self._read(read)

    async def edit_tree(self, user: str, plan: TreePlan) -> None:
        await self._write(lambda conn: (None, tree.edit(conn, user, plan)))

    async def subscriptions(self, user: str) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            uid = tree.user_id(conn, user)
            return [] if uid is None else boxes.subscribed_names(conn, uid)

        return self._read(read)

    async def set_subscribed(self, user: str, name: str, subscribed: bool) -> None:
        def op(conn: sqlite3.Connection) -> tuple[None, Rings]:
            uid = tree.user_id(conn, user)
            if uid is None:
                uid = tree.ensure_user(conn, user, ())
            if subscribed:
                conn.execute(
                    "INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES(?, ?)", (uid, name)
                )
            else:
                conn.execute("DELETE FROM subscriptions WHERE user_id=? AND name=?", (uid, name))
            return None, []

        await self._write(op)

    # --- whole accounts (``imapd.storage.sqlite.accounts``) --------------------

    async def delete_account(self, user: str) -> bool:
        return await self._write(lambda conn: accounts.delete(conn, user))

    async def rename_account(self, old: str, new: str) -> bool:
        return await self._write(lambda conn: accounts.rename(conn, old, new))

    # --- quota (RFC 9208) -----------------------------------------------------

    async def quota(self, user: str) -> QuotaInfo:
        return await self._read_large(lambda conn: quota.read(conn, user))

    async def set_quota(self, user: str, storage: int | None, messages: int | None) -> None:
        def op(conn: sqlite3.Connection) -> tuple[None, Rings]:
            uid = tree.user_id(conn, user)
            if uid is None:
                uid = tree.ensure_user(conn, user, ())
            quota.store(conn, uid, storage, messages)
            return None, []

        await self._write(op)

    # --- one mailbox: reads --------------------------------------------------

    async def status(self, ref: MailboxRef) -> MailboxStatus:
        return await self._read_large(lambda conn: boxes.status(conn, reads.mailbox(conn, ref)))

    async def snapshot(self, ref: MailboxRef) -> tuple[MailboxSnapshot, int]:
        return self._read(lambda conn: reads.snapshot(conn, ref, self.uid_cache))

    async def fetch_records(
        self, ref: MailboxRef, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        def read(conn: sqlite3.Connection) -> list[MessageRecord]:
            reads.check(conn, ref)
            return msgs.records(conn, ref.id, uids, with_meta)

        if uids is None or len(uids) > LARGE_READ_UIDS:
            return await self._read_large(read)
        return self._read(read)

    async def sort_facts(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        def read(conn: sqlite3.Connection) -> dict[int, bytes]:
            reads.check(conn, ref)
            return sortfacts.read(conn, ref.id, uids)

        if len(uids) > LARGE_READ_UIDS:
            return await self._read_large(read)
        return self._read(read)

    async def fetch_flags(
        self, ref: MailboxRef, uids: Sequence[int] | None = None
    ) -> list[FlagState]:
        def read(conn: sqlite3.Connection) -> list[FlagState]:
            return reads.flag_states(conn, ref, uids)

        if uids is None or len(uids) > LARGE_READ_UIDS:
            return await self._read_large(read)
        return self._read(read)

    async def read_message(
        self, ref: MailboxRef, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        return self._read(lambda conn: reads.read_message(conn, ref, uid, offset, length))

    async def read_messages(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        return self._read(lambda conn: reads.read_messages(conn, ref, uids))

    async def open_message(self, ref: MailboxRef, uid: int) -> MessageBody | None:
        """Small bodies are read inline; a large one is copied to an
        anonymous spool file on the reader thread and streamed from there
        (``reads.spool_body``: no snapshot held while a client reads)."""
        body, stream = self._read(lambda conn: reads.small_body(conn, ref, uid))
        if not stream:
            return body
        return await self._read_large(lambda conn: reads.spool_body(conn, ref, uid, self.spool_dir))

    async def text_candidates(
        self, ref: MailboxRef, scope: str, folded: str
    ) -> frozenset[int] | None:
        if not fts.usable(scope, folded):
            return None

        def read(conn: sqlite3.Connection) -> frozenset[int] | None:
            reads.check(conn, ref)
            return fts.candidates(conn, ref.id, scope, folded)

        return await self._read_large(read)

    async def text_matches(
        self, ref: MailboxRef, scope: str, folded: str
    ) -> tuple[frozenset[int], frozenset[int]] | None:
        """``(sure, maybe)`` (``fts.matches``; optional, ``MailboxWatch.
        text_matches``): TEXT matches confirmed in SQL, never read."""
        if not fts.usable(scope, folded):
            return None

        def read(conn: sqlite3.Connection) -> tuple[frozenset[int], frozenset[int]] | None:
            reads.check(conn, ref)
            return fts.matches(conn, ref.id, scope, folded)

        return await self._read_large(read)

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        return self._read(lambda conn: reads.changes_since(conn, ref, modseq, uidnext))

    # --- one mailbox: writes -------------------------------------------------

    async def claim_recent(self, ref: MailboxRef, uidnext: int) -> tuple[int, int] | None:
        def op(conn: sqlite3.Connection) -> tuple[tuple[int, int] | None, Rings]:
            reads.mailbox(conn, ref)
            return _claim(conn, ref.id, uidnext), []

        # Optional: SELECT and catch-ups (read-like to users) must not wait
        # out lock_timeout behind another process's lock (``writer``).
        return await self._write(op, optional=True)

    async def append(
        self, ref: MailboxRef, items: Sequence[AppendItem], claim: bool = False
    ) -> AppendResult:
        for item in items:  # validated on the caller's thread, before queueing
            try:
                split_flags(item.flags)
            except Exception as error:
                raise mail_error(error) from None

        prepared, decoded = self._index_texts(items)

        def op(conn: sqlite3.Connection) -> tuple[AppendResult, Rings]:
            row = reads.mailbox(conn, ref)
            if not items:
                return AppendResult(row.uidvalidity, ()), []
            quota.check(conn, row.id, sum(len(item.message) for item in items), len(items))
            self.space.claim_append(sum(len(item.message) for item in items))
            texts, facts = prepared()
            result = msgs.append(conn, row, items, texts, facts)
            claimed = _claim(conn, row.id, result.uids[-1] + 1) if claim else None
            modseq = row.highestmodseq + 1
            return AppendResult(result.uidvalidity, result.uids, claimed), [(row.id, modseq)]

        return await self._write(op, prepare=decoded)

    def _index_texts(self, items: Sequence[AppendItem]) -> tuple[
            Callable[[], Prepared], Callable[[], None] | None]:
        """SEARCH's index texts of ``items`` (``fts.texts_for``) with their
        SORT/THREAD facts (``sortfacts.facts_for``, schema v5), and what
        the writer waits on before BEGIN: decoding starts now on the
        indexing thread, while the write waits in the writer's queue and
        earlier commits fsync, and is awaited outside the write lock (inline
        mode: computed here). Decoded under the lock, it halved single-
        message APPEND throughput. The write itself is queued at once, so
        group commit and close() keep their order."""
        def decode() -> Prepared:
            return ([fts.texts_for(item.message, item.meta) for item in items],
                    [facts_for(item.message, item.meta) for item in items])

        if self._indexer is None or not items:
            done = decode()
            return (lambda: done), None
        future = self._indexer.submit(decode)

        def decoded() -> None:
            wait([future])

        return future.result, decoded

    async def store_flags(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        op: FlagOp,
        flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        try:
            given = split_flags(flags)
        except Exception as error:
            raise mail_error(error) from None

        def write(conn: sqlite3.Connection) -> tuple[StoreResult, Rings]:
            row = reads.mailbox(conn, ref)
            result, _ = msgs.store_flags(conn, row, uids, op, given, unchangedsince)
            if not result.changed:
                return result, []
            return result, [(row.id, row.highestmodseq + 1)]

        return await self._write(write)

    async def expunge(self, ref: MailboxRef, uids: Sequence[int] | None = None) -> list[int]:
        def write(conn: sqlite3.Connection) -> tuple[list[int], Rings]:
            row = reads.mailbox(conn, ref)
            gone = msgs.expunge(conn, row, uids)
            return gone, ([(row.id, row.highestmodseq + 1)] if gone else [])

        return await self._write(write)

    async def store_and_expunge(
        self, ref: MailboxRef, uids: Sequence[int], flags: Sequence[str],
        expunge: Sequence[int],
    ) -> list[int]:
        """POP3's UPDATE (RFC 1939 §6) as one write job: one commit."""
        try:
            given = split_flags(flags)
        except Exception as error:
            raise mail_error(error) from None

        def write(conn: sqlite3.Connection) -> tuple[list[int], Rings]:
            row = reads.mailbox(conn, ref)
            gone, modseq = msgs.store_and_expunge(conn, row, uids, given, expunge)
            return gone, ([(row.id, modseq)] if modseq else [])

        return await self._write(write)

    async def copy(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        target: MailboxRef,
        move: bool = False,
        claim: bool = False,
    ) -> CopyResult:
        def write(conn: sqlite3.Connection) -> tuple[CopyResult, Rings]:
            source = reads.mailbox(conn, ref)
            destination = reads.mailbox(conn, target)
            result, rows = msgs.copy(conn, source.id, uids, destination)
            if not rows:
                return result, []
            if not (move and quota.owner(conn, source.id) == quota.owner(conn, destination.id)):
                # Checked after the insert, in its transaction: raising rolls
                # it back. A MOVE within one account changes no usage.
                quota.check(conn, destination.id, 0, 0)
            rings: Rings = [(destination.id, boxes_modseq(conn, destination.id))]
            if move:
                modseq = msgs.remove_messages(conn, source.id, rows)
                rings.append((source.id, modseq or 0))
            claimed = _claim(conn, destination.id, result.pairs[-1][1] + 1) if claim else None
            return CopyResult(result.uidvalidity, result.pairs, claimed), rings

        return await self._write(write)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        Siblings.leave(self.path, self.sqlite_feed)
        if self.poller is not None:
            self.poller.stop()
        if isinstance(self.writer, ThreadedWriter):
            # The writer's connection closes last, on its own thread: the
            # last close checkpoints the WAL (see ThreadedWriter.close).
            self.conn.close()
            if self.reader is not None:
                self.reader.close()
            await self.writer.close()
            if self._indexer is not None:
                self._indexer.shutdown(wait=False)
        else:
            await self.writer.close()
            self.conn.close()
            self.space.ensure_reserve(at_rest=True)
        self.sqlite_feed.close()


def boxes_modseq(conn: sqlite3.Connection, mailbox_id: int) -> int:
    row = conn.execute("SELECT highestmodseq FROM mailboxes WHERE id=?", (mailbox_id,)).fetchone()
    if row is None:
        raise NoSuchMailbox("Mailbox does not exist")
    return int(row[0])


def _conforms(backend: SqliteBackend) -> object:
    from imapd.mail.backend import MailBackend

    checked: MailBackend = backend  # mypy checks SqliteBackend implements the protocol
    return checked

"""``PostgresBackend``: the PostgreSQL engine behind ``imapd.mail.backend.MailBackend``.

For N frontends (processes or machines) over one database. Every call runs
on a worker thread of ``runner`` with a pooled connection, in one
transaction, and its outcome hops back to the reactor thread; one
``feed.Listener`` thread per backend hears the other frontends' changes.
``open_backend`` checks the schema version on the opening thread (one
short connection; open the backend before the reactor serves clients):
a database without the imapd schema, or with another version, raises
``SchemaMismatch`` (``imapd db init`` / ``imapd db migrate``).

The rules (``imapd.mail.backend``) and how they hold here:

* UIDs/MODSEQs: ``messages.allocate`` under the mailbox's row lock, in the
  inserting transaction (commit order = UID order). UIDVALIDITY: the
  store-wide counter (``tree.new_uidvalidity``). Mailbox ids: a sequence.
* Durability: ``synchronous_commit`` as the server has it (on by default:
  COMMIT returns after the WAL flush), except ``\\Recent`` claims, which
  the contract lets go (``SET LOCAL synchronous_commit = off``).
* ``claim_recent``: compare-and-set of ``recent_from`` under the row lock,
  so across all frontends each UID is claimed at most once.
* Failures: ``runner`` (Unavailable, StorageFull; nothing half-applied).
"""

from __future__ import annotations

from typing import Sequence

import psycopg

from imapd.mail.backend import (
    ChangeFeed, Changes, MailboxEntry, MailboxRef, QuotaInfo, TreePlan,
)
from imapd.mail.errors import Unavailable
from imapd.mail.flags import FlagOp, split_flags
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MailboxSnapshot, MailboxStatus,
    MessageBody, MessageRecord, StoreResult,
)
from imapd.storage.postgres import messages as msgs
from imapd.storage.postgres import accounts, fts, quota, reads, schema, sortfacts, tree
from imapd.storage.postgres.feed import Listener, PgFeed, Siblings
from imapd.storage.postgres.runner import Conn, Rings, Runner, mail_error
from imapd.storage.hops import Hop, MakeWaiter


def open_backend(
    dsn: str,
    hop: Hop,
    make_waiter: MakeWaiter,
    poll_interval: float = 1.0,
    pool_size: int = 8,
) -> PostgresBackend:
    """Open the store in the database ``dsn`` (a libpq connection string or
    ``postgresql://`` URI). Raises ``SchemaMismatch`` when the schema is
    missing or of another version, ``Unavailable`` when the server cannot
    be reached. Blocks the calling thread for one connection."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            schema.check(conn)
    except psycopg.Error as error:
        raise mail_error(error) from None
    return PostgresBackend(dsn, hop, make_waiter, poll_interval, pool_size)


def _claim(conn: Conn, mailbox_id: int, uidnext: int) -> tuple[int, int] | None:
    """Compare-and-set of ``recent_from`` (RFC 3501 §2.3.2) on the locked
    row: claim every unclaimed UID below ``uidnext``."""
    found = conn.execute("SELECT recent_from, uidnext FROM mailboxes WHERE id=%s FOR UPDATE",
                         (mailbox_id,)).fetchone()
    if found is None:
        return None
    low, upto = int(found[0]), min(uidnext, int(found[1]))
    if low >= upto:
        return None
    conn.execute("UPDATE mailboxes SET recent_from=%s WHERE id=%s", (upto, mailbox_id))
    return low, upto - 1


class PostgresBackend:
    """See the module docstring and ``imapd.mail.backend.MailBackend``."""

    def __init__(
        self, dsn: str, hop: Hop, make_waiter: MakeWaiter, poll_interval: float, pool_size: int
    ) -> None:
        self.dsn = dsn
        self.pg_feed = PgFeed()
        self.feed: ChangeFeed = self.pg_feed
        self.runner = Runner(dsn, hop, make_waiter, self._ring_all, pool_size)
        self.listener = Listener(dsn, self.pg_feed, hop, poll_interval)
        self._closed = False
        Siblings.join(dsn, self.pg_feed)

    def _ring_all(self, rings: Sequence[tuple[int, int]]) -> None:
        """Ring this backend's feed and, at the same moment, those of the
        other backends on the same database in this process (they would
        hear the NOTIFY a moment later; as the SQLite engine does)."""
        Siblings.ring_all(self.dsn, rings)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("mail store is closed")

    # --- users and trees ---------------------------------------------------

    async def ensure_user(
        self, user: str, defaults: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        self._check_open()

        def done(conn: Conn) -> bool:
            uid = tree.user_id(conn, user)
            return (uid is not None and tree.find(conn, uid, "INBOX") is not None
                    and not tree.needs_provisioning(conn, uid, defaults))

        if await self.runner.read(done):
            return
        def provision(conn: Conn) -> tuple[None, Rings]:
            tree.ensure_user(conn, user, defaults)
            return None, []

        await self.runner.write(provision)

    async def mailboxes(self, user: str) -> list[MailboxEntry]:
        self._check_open()

        def read(conn: Conn) -> list[MailboxEntry]:
            uid = tree.user_id(conn, user)
            return [] if uid is None else tree.entries(conn, uid)

        return await self.runner.read(read)

    async def lookup(self, user: str, name: str) -> MailboxEntry | None:
        self._check_open()

        def read(conn: Conn) -> MailboxEntry | None:
            uid = tree.user_id(conn, user)
            row = None if uid is None else tree.find(conn, uid, name)
            if row is None:
                return None
            return MailboxEntry(row.id, row.name, row.selectable, row.uidvalidity,
                                row.special_use)

        return await self.runner.read(read)

    async def edit_tree(self, user: str, plan: TreePlan) -> None:
        self._check_open()
        await self.runner.write(lambda conn: (None, tree.edit(conn, user, plan)))

    async def subscriptions(self, user: str) -> list[str]:
        self._check_open()

        def read(conn: Conn) -> list[str]:
            return [str(r[0]) for r in conn.execute(
                "SELECT s.name FROM subscriptions s JOIN mail_users u ON u.id=s.user_id "
                "WHERE u.name=%s ORDER BY s.name", (user,)).fetchall()]

        return await self.runner.read(read)

    async def set_subscribed(self, user: str, name: str, subscribed: bool) -> None:
        self._check_open()

        def op(conn: Conn) -> tuple[None, Rings]:
            uid = tree.user_id(conn, user)
            if uid is None:
                uid = tree.lock_user(conn, user)
            if subscribed:
                conn.execute("INSERT INTO subscriptions(user_id, name) VALUES(%s, %s) "
                             "ON CONFLICT DO NOTHING", (uid, name))
            else:
                conn.execute("DELETE FROM subscriptions WHERE user_id=%s AND name=%s",
                             (uid, name))
            return None, []

        await self.runner.write(op)

    # --- whole accounts (``imapd.storage.postgres.accounts``) -----------------

    async def delete_account(self, user: str) -> bool:
        self._check_open()
        return await self.runner.write(lambda conn: accounts.delete(conn, user))

    async def rename_account(self, old: str, new: str) -> bool:
        self._check_open()
        return await self.runner.write(lambda conn: accounts.rename(conn, old, new))

    # --- quota (RFC 9208) -----------------------------------------------------

    async def quota(self, user: str) -> QuotaInfo:
        self._check_open()
        return await self.runner.read(lambda conn: quota.read(conn, user))

    async def set_quota(self, user: str, storage: int | None, messages: int | None) -> None:
        self._check_open()

        def op(conn: Conn) -> tuple[None, Rings]:
            uid = tree.user_id(conn, user)
            if uid is None:
                uid = tree.lock_user(conn, user)
            quota.store(conn, uid, storage, messages)
            return None, []

        await self.runner.write(op)

    # --- one mailbox: reads ------------------------------------------------

    async def status(self, ref: MailboxRef) -> MailboxStatus:
        self._check_open()
        return await self.runner.read(lambda conn: tree.status(conn, tree.mailbox(conn, ref)))

    async def snapshot(self, ref: MailboxRef) -> tuple[MailboxSnapshot, int]:
        self._check_open()
        return await self.runner.read(lambda conn: reads.snapshot(conn, ref))

    async def fetch_records(
        self, ref: MailboxRef, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        self._check_open()

        def read(conn: Conn) -> list[MessageRecord]:
            reads.check(conn, ref)
            return msgs.records(conn, ref.id, uids, with_meta)

        return await self.runner.read(read)

    async def sort_facts(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        self._check_open()

        def read(conn: Conn) -> dict[int, bytes]:
            reads.check(conn, ref)
            return sortfacts.read(conn, ref.id, uids)

        return await self.runner.read(read)

    async def fetch_flags(
        self, ref: MailboxRef, uids: Sequence[int] | None = None
    ) -> list[FlagState]:
        self._check_open()

        def read(conn: Conn) -> list[FlagState]:
            reads.check(conn, ref)
            return msgs.flag_states(conn, ref.id, uids)

        return await self.runner.read(read)

    async def read_message(
        self, ref: MailboxRef, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        self._check_open()
        return await self.runner.read(
            lambda conn: reads.read_message(conn, ref, uid, offset, length))

    async def read_messages(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        self._check_open()
        return await self.runner.read(lambda conn: reads.read_messages(conn, ref, uids))

    async def open_message(self, ref: MailboxRef, uid: int) -> MessageBody | None:
        self._check_open()
        return await self.runner.read(lambda conn: reads.open_message(conn, ref, uid))

    async def text_candidates(
        self, ref: MailboxRef, scope: str, folded: str
    ) -> frozenset[int] | None:
        self._check_open()
        if not fts.usable(scope, folded):
            return None

        def read(conn: Conn) -> frozenset[int] | None:
            reads.check(conn, ref)
            return fts.candidates(conn, ref.id, scope, folded)

        return await self.runner.read(read)

    async def text_matches(
        self, ref: MailboxRef, scope: str, folded: str
    ) -> tuple[frozenset[int], frozenset[int]] | None:
        """``(sure, maybe)`` (``fts.matches``; optional, ``MailboxWatch.
        text_matches``): TEXT matches confirmed by LIKE, never read."""
        self._check_open()
        if not fts.usable(scope, folded):
            return None

        def read(conn: Conn) -> tuple[frozenset[int], frozenset[int]] | None:
            reads.check(conn, ref)
            return fts.matches(conn, ref.id, scope, folded)

        return await self.runner.read(read)

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        self._check_open()
        return await self.runner.read(lambda conn: reads.changes_since(conn, ref, modseq, uidnext))

    # --- one mailbox: writes -----------------------------------------------

    async def claim_recent(self, ref: MailboxRef, uidnext: int) -> tuple[int, int] | None:
        self._check_open()

        def op(conn: Conn) -> tuple[tuple[int, int] | None, Rings]:
            tree.mailbox(conn, ref, lock=True)
            return _claim(conn, ref.id, uidnext), []

        return await self.runner.write(op, durable=False)

    async def append(
        self, ref: MailboxRef, items: Sequence[AppendItem], claim: bool = False
    ) -> AppendResult:
        self._check_open()
        for item in items:  # validated on the caller's thread, before queueing
            try:
                split_flags(item.flags)
            except Exception as error:
                raise mail_error(error) from None

        def op(conn: Conn) -> tuple[AppendResult, Rings]:
            row = tree.mailbox(conn, ref, lock=True)
            if not items:
                return AppendResult(row.uidvalidity, ()), []
            quota.check(conn, row.id, sum(len(item.message) for item in items), len(items))
            result = msgs.append(conn, row, items)
            claimed = _claim(conn, row.id, result.uids[-1] + 1) if claim else None
            modseq = row.highestmodseq + 1
            return AppendResult(result.uidvalidity, result.uids, claimed), [(row.id, modseq)]

        return await self.runner.write(op)

    async def store_flags(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        op: FlagOp,
        flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        self._check_open()
        try:
            given = split_flags(flags)
        except Exception as error:
            raise mail_error(error) from None

        def write(conn: Conn) -> tuple[StoreResult, Rings]:
            row = tree.mailbox(conn, ref, lock=True)
            result = msgs.store_flags(conn, row, uids, op, given, unchangedsince)
            return result, ([(row.id, row.highestmodseq + 1)] if result.changed else [])

        return await self.runner.write(write)

    async def expunge(self, ref: MailboxRef, uids: Sequence[int] | None = None) -> list[int]:
        self._check_open()

        def write(conn: Conn) -> tuple[list[int], Rings]:
            row = tree.mailbox(conn, ref, lock=True)
            gone = msgs.expunge(conn, row, uids)
            return gone, ([(row.id, row.highestmodseq + 1)] if gone else [])

        return await self.runner.write(write)

    async def store_and_expunge(
        self, ref: MailboxRef, uids: Sequence[int], flags: Sequence[str],
        expunge: Sequence[int],
    ) -> list[int]:
        """POP3's UPDATE (RFC 1939 §6) in one transaction: one commit."""
        self._check_open()
        try:
            given = split_flags(flags)
        except Exception as error:
            raise mail_error(error) from None

        def write(conn: Conn) -> tuple[list[int], Rings]:
            row = tree.mailbox(conn, ref, lock=True)
            gone, modseq = msgs.store_and_expunge(conn, row, uids, given, expunge)
            return gone, ([(row.id, modseq)] if modseq else [])

        return await self.runner.write(write)

    async def copy(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        target: MailboxRef,
        move: bool = False,
        claim: bool = False,
    ) -> CopyResult:
        self._check_open()

        def write(conn: Conn) -> tuple[CopyResult, Rings]:
            rows = tree.lock_mailboxes(conn, [ref, target])
            destination = rows[target.id]
            result, copied, modseq = msgs.copy(conn, ref.id, uids, destination)
            if not copied:
                return result, []
            if not (move and quota.owner(conn, ref.id) == quota.owner(conn, destination.id)):
                # Checked after the insert, in its transaction: raising rolls
                # it back. A MOVE within one account changes no usage.
                quota.check(conn, destination.id, 0, 0)
            rings: Rings = [(destination.id, modseq)]
            if move:
                removed = msgs.remove_messages(conn, ref.id, copied)
                rings.append((ref.id, removed or 0))
            claimed = (_claim(conn, destination.id, result.pairs[-1][1] + 1)
                       if claim else None)
            return CopyResult(result.uidvalidity, result.pairs, claimed), rings

        return await self.runner.write(write)

    async def close(self) -> None:
        """Finish the queued jobs, stop the listener, close the pool (the
        blocking part on a helper thread, never on the caller's)."""
        if self._closed:
            return
        self._closed = True
        Siblings.leave(self.dsn, self.pg_feed)
        self.runner.closed = True
        self.listener.stop()

        def shut() -> None:
            self.runner.shutdown()
            self.listener.join(10.0)

        try:
            await self.runner.run_blocking(shut)
        finally:
            self.pg_feed.close()


def _conforms(backend: PostgresBackend) -> object:
    from imapd.mail.backend import MailBackend

    checked: MailBackend = backend  # mypy checks PostgresBackend implements the protocol
    return checked

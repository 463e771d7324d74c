"""The default mail store: SQLite in WAL mode in the data directory.

Contract: ``imapd.mail.interface.MailStore``. Layout and durability:
``schema``. Hierarchy rules: ``sqlite_mailboxes``. Messages:
``sqlite_messages``. Change delivery and ``\\Recent``: ``sqlite_sync``.

Every mutating method runs one ``BEGIN IMMEDIATE`` transaction and returns
after ``COMMIT`` has fsynced the WAL (``synchronous=FULL``). The coroutines
never await anything: queries are short and run inline, which keeps each
call atomic with respect to the rest of this process. Use the store from
one thread (the reactor's); ``MessageBody.chunks`` of a large message has
its own connection and may be consumed from another thread.
"""

from __future__ import annotations

import datetime
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from imapd.core.errors import ImapError
from imapd.mail import names
from imapd.storage.sqlite import mailboxes as boxes
from imapd.storage.sqlite import messages as msgs
from imapd.mail.events import Selection
from imapd.mail.flags import SEEN_BIT, FlagOp, split_flags
from imapd.mail.interface import MailStore
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MailboxInfo, MailboxSnapshot,
    MailboxStatus, MessageBody, MessageRecord, StoreResult,
)
from imapd.storage.sqlite.schema import (
    BUSY_TIMEOUT_SECONDS, DB_FILENAME, connect, read_transaction, write_transaction,
)
from imapd.storage.sqlite.sync import OwnChange, PendingClaim, SqliteSelection, SyncHub, recent_in
from imapd.storage.sqlite.uidcache import UidCache

def _default_name(name: str) -> str:
    """A default mailbox name, validated once when the store opens."""
    canonical = names.normalize_name(name)
    if canonical == names.INBOX:
        raise ValueError("INBOX cannot be a default special-use mailbox")
    return canonical


# Bodies up to this size are read in one go; larger ones are streamed.
STREAM_THRESHOLD = 1024 * 1024
STREAM_CHUNK = 256 * 1024


def open_store(
    data_dir: Path, default_mailboxes: Sequence[tuple[str, str | None]] = ()
) -> SqliteMailStore:
    """Open (creating if needed) the store in ``data_dir``.

    ``default_mailboxes``: (name, special-use attribute or None) pairs, e.g.
    ``("Sent", "\\\\Sent")``, provisioned once per user (see
    ``sqlite_mailboxes.provision``) at the first call that names the user
    in this process, in the same durable way as every change."""
    return SqliteMailStore(data_dir, default_mailboxes)


class SqliteMailStore:
    def __init__(
        self, data_dir: Path, default_mailboxes: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        self.data_dir = data_dir
        self.default_mailboxes = tuple(
            (_default_name(name), use) for name, use in default_mailboxes
        )
        self.conn = connect(data_dir)
        self.hub = SyncHub(self.conn)
        self.uid_cache = UidCache()  # SELECT of large mailboxes
        self._user_ids: dict[str, int] = {}

    # --- helpers -----------------------------------------------------------

    def _user_id(self, user: str) -> int:
        user_id = self._user_ids.get(user)
        if user_id is None:
            row = self.conn.execute(
                "SELECT users.id FROM users JOIN mailboxes ON mailboxes.user_id=users.id "
                "WHERE users.name=? AND mailboxes.name=?", (user, names.INBOX),
            ).fetchone()
            if row is not None:
                user_id = int(row[0])
            else:
                with write_transaction(self.conn):
                    user_id = boxes.ensure_user(self.conn, user)
            self._provision(user_id)
            self._user_ids[user] = user_id
        return user_id

    def _provision(self, user_id: int) -> None:
        """Create the default mailboxes a user never had (checked once per
        user and process; the write lock is taken only when needed)."""
        defaults = self.default_mailboxes
        if defaults and boxes.needs_provisioning(self.conn, user_id, defaults):
            with write_transaction(self.conn):
                boxes.provision(self.conn, user_id, defaults)

    def _selection(self, sel: Selection, write: bool = False) -> SqliteSelection:
        if not isinstance(sel, SqliteSelection) or sel.hub is not self.hub:
            raise ValueError("selection does not belong to this store")
        if sel.deleted:
            raise ImapError.no("The selected mailbox was deleted", "NONEXISTENT")
        if sel.closed:
            raise ValueError("selection is closed")
        if write and sel.readonly:
            raise ImapError.no("Mailbox is read-only", "READ-ONLY")
        return sel

    def _selected_row(self, sel: SqliteSelection) -> boxes.MailboxRow:
        row = boxes.find_by_id(self.conn, sel.mailbox_id)
        if row is None or not row.selectable or row.uidvalidity != sel.uidvalidity:
            raise ImapError.no("The selected mailbox was deleted", "NONEXISTENT")
        return row

    def _after_additions(self, claim: PendingClaim | None, mailbox_ids: Iterable[int]) -> None:
        if claim is not None:
            claim.apply()
        self.hub.sync(mailbox_ids)

    # --- mailboxes ---------------------------------------------------------

    async def list_mailboxes(
        self, user: str, reference: str, pattern: str, subscribed_only: bool = False
    ) -> list[MailboxInfo]:
        user_id = self._user_id(user)
        if pattern == "":
            return []
        matches = names.compile_pattern(names.combine_reference(reference, pattern))
        with read_transaction(self.conn):
            infos = boxes.list_all(self.conn, user_id)
            subscribed = set(boxes.subscribed_names(self.conn, user_id))
        found: dict[str, MailboxInfo] = {}
        if not subscribed_only:
            for name, info in infos.items():
                if matches(name):
                    found[name] = replace(info, subscribed=name in subscribed)
        else:
            for name in subscribed:
                if matches(name):
                    info = infos.get(name) or MailboxInfo(name, False, False, False, False)
                    found[name] = replace(info, subscribed=True)
            if "%" in pattern:
                for name in names.implied_parents(subscribed, matches) - subscribed:
                    info = infos.get(name) or MailboxInfo(name, False, False, True, False)
                    found[name] = replace(info, subscribed=False)
        return sorted(found.values(), key=lambda i: (i.name != names.INBOX, i.name))

    async def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> None:
        user_id = self._user_id(user)
        name = names.normalize_create_name(name)
        with write_transaction(self.conn):
            boxes.create(self.conn, user_id, name, special_use)

    async def delete_mailbox(self, user: str, name: str) -> None:
        user_id = self._user_id(user)
        name = names.normalize_name(name)
        with write_transaction(self.conn):
            mailbox_id = boxes.delete(self.conn, user_id, name)
        self.hub.sync([mailbox_id])

    async def rename_mailbox(self, user: str, old: str, new: str) -> None:
        user_id = self._user_id(user)
        old = names.normalize_name(old)
        new = names.normalize_name(new)
        with write_transaction(self.conn):
            if old == names.INBOX:
                mailbox_ids = list(boxes.rename_inbox(self.conn, user_id, new))
            else:
                mailbox_ids = [i for i, _ in boxes.rename(self.conn, user_id, old, new)]
        self.hub.sync(mailbox_ids)

    async def subscribe(self, user: str, name: str) -> None:
        user_id = self._user_id(user)
        name = names.normalize_name(name)
        with write_transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES(?, ?)", (user_id, name)
            )

    async def unsubscribe(self, user: str, name: str) -> None:
        user_id = self._user_id(user)
        name = names.normalize_name(name)
        with write_transaction(self.conn):
            self.conn.execute(
                "DELETE FROM subscriptions WHERE user_id=? AND name=?", (user_id, name)
            )

    async def subscriptions(self, user: str) -> list[str]:
        return boxes.subscribed_names(self.conn, self._user_id(user))

    async def status(self, user: str, name: str) -> MailboxStatus:
        user_id = self._user_id(user)
        name = names.normalize_name(name)
        with read_transaction(self.conn):
            row = boxes.find_selectable(self.conn, user_id, name, "NONEXISTENT")
            return boxes.status(self.conn, row)

    async def append(
        self,
        user: str,
        name: str,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime.datetime | None = None,
        meta: bytes = b"",
    ) -> AppendResult:
        item = AppendItem(message, tuple(flags), internal_date, meta)
        return await self.append_many(user, name, [item])

    async def append_many(
        self, user: str, name: str, items: Sequence[AppendItem]
    ) -> AppendResult:
        user_id = self._user_id(user)
        name = names.normalize_name(name)
        with write_transaction(self.conn):
            row = boxes.find_selectable(self.conn, user_id, name, "TRYCREATE")
            if not items:
                return AppendResult(row.uidvalidity, ())
            result = msgs.append(self.conn, row, items)
            claim = self.hub.claim_in_transaction(row.id, row.recent_from, result.uids[-1] + 1)
        self._after_additions(claim, [row.id])
        return result

    async def select(self, user: str, name: str, readonly: bool) -> Selection:
        user_id = self._user_id(user)
        name = names.normalize_name(name)
        with read_transaction(self.conn):
            row = boxes.find_selectable(self.conn, user_id, name, "NONEXISTENT")
            uids = self.uid_cache.uids(self.conn, row)
            keywords = tuple(str(r[0]) for r in self.conn.execute(
                "SELECT name FROM keywords WHERE mailbox_id=? ORDER BY folded", (row.id,)))
            (first_unseen,) = self.conn.execute(
                f"SELECT min(uid) FROM messages WHERE mailbox_id=? AND sysflags & {SEEN_BIT} = 0",
                (row.id,),
            ).fetchone()
        claim = None if readonly else self._claim_at_select(row)
        if claim is not None:
            recent = recent_in(uids, *claim)
        elif readonly:
            recent = recent_in(uids, row.recent_from, row.uidnext - 1)
        else:
            recent = frozenset()
        snapshot = MailboxSnapshot(
            row.uidvalidity, row.uidnext, row.highestmodseq, uids, recent, keywords, first_unseen
        )
        selection = SqliteSelection(self.hub, row.id, user, row.name, readonly, snapshot)
        if claim is not None:
            selection.add_claim(*claim)
        self.hub.register(selection)
        return selection

    def _claim_at_select(self, row: boxes.MailboxRow) -> tuple[int, int] | None:
        """Claim the unclaimed UIDs below the snapshot's UIDNEXT (RFC 3501
        §2.3.2); returns the claimed range or None."""
        if row.recent_from >= row.uidnext:
            return None
        with write_transaction(self.conn):
            current = self.conn.execute(
                "SELECT recent_from FROM mailboxes WHERE id=?", (row.id,)
            ).fetchone()
            if current is None or current[0] >= row.uidnext:
                return None
            self.conn.execute(
                "UPDATE mailboxes SET recent_from=? WHERE id=?", (row.uidnext, row.id)
            )
        return int(current[0]), row.uidnext - 1

    # --- selected mailbox --------------------------------------------------

    async def fetch_records(
        self, sel: Selection, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        selection = self._selection(sel)
        with read_transaction(self.conn):
            return msgs.records(self.conn, selection.mailbox_id, uids, with_meta)

    async def fetch_flags(
        self, sel: Selection, uids: Sequence[int] | None = None
    ) -> list[FlagState]:
        selection = self._selection(sel)
        return msgs.flag_states(self.conn, selection.mailbox_id, uids)

    async def read_message(
        self, sel: Selection, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        selection = self._selection(sel)
        with read_transaction(self.conn):
            found = msgs.body_of(self.conn, selection.mailbox_id, uid)
            if found is None:
                return None
            body_id, size = found
            offset = min(max(offset, 0), size)
            end = size if length is None else min(size, offset + max(length, 0))
            return msgs.read_body(self.conn, body_id, offset, end - offset)

    async def open_message(self, sel: Selection, uid: int) -> MessageBody | None:
        selection = self._selection(sel)
        with read_transaction(self.conn):
            found = msgs.body_of(self.conn, selection.mailbox_id, uid)
            if found is None:
                return None
            body_id, size = found
            if size <= STREAM_THRESHOLD:
                data = msgs.read_body(self.conn, body_id, 0, size)
                return MessageBody(size, lambda: iter((data,)))
        return _stream_body(self.data_dir / DB_FILENAME, selection.mailbox_id, uid)

    async def store_flags(
        self,
        sel: Selection,
        uids: Sequence[int],
        op: FlagOp,
        flags: Iterable[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        selection = self._selection(sel, write=True)
        given = split_flags(flags)
        with write_transaction(self.conn):
            row = self._selected_row(selection)
            result, prior = msgs.store_flags(self.conn, row, uids, op, given, unchangedsince)
        if result.changed:
            modseq = max(s.modseq for s in result.states)
            self.hub.sync([row.id], OwnChange(selection, modseq, prior))
        return result

    async def expunge(self, sel: Selection, uids: Sequence[int] | None = None) -> list[int]:
        selection = self._selection(sel, write=True)
        with write_transaction(self.conn):
            row = self._selected_row(selection)
            expunged = msgs.expunge(self.conn, row, uids)
        self.hub.sync([row.id])
        return expunged

    async def copy(self, sel: Selection, uids: Sequence[int], target: str) -> CopyResult:
        return self._copy(self._selection(sel), uids, target, move=False)

    async def move(self, sel: Selection, uids: Sequence[int], target: str) -> CopyResult:
        return self._copy(self._selection(sel, write=True), uids, target, move=True)

    def _copy(
        self, selection: SqliteSelection, uids: Sequence[int], target: str, move: bool
    ) -> CopyResult:
        user_id = self._user_id(selection.user)
        target = names.normalize_name(target)
        claim = None
        with write_transaction(self.conn):
            source = self._selected_row(selection)
            destination = boxes.find_selectable(self.conn, user_id, target, "TRYCREATE")
            result, rows = msgs.copy(self.conn, source.id, uids, destination)
            if rows:
                if move:
                    msgs.remove_messages(self.conn, source.id, rows)
                uidnext = result.pairs[-1][1] + 1
                claim = self.hub.claim_in_transaction(
                    destination.id, destination.recent_from, uidnext
                )
        self._after_additions(claim, [source.id, destination.id])
        return result

    async def changes_since(self, sel: Selection, modseq: int) -> list[FlagState]:
        selection = self._selection(sel)
        return msgs.changes_since(self.conn, selection.mailbox_id, modseq)

    async def expunged_since(self, sel: Selection, modseq: int) -> list[int]:
        selection = self._selection(sel)
        return [uid for uid, _ in msgs.expunged_since(self.conn, selection.mailbox_id, modseq)]

    # --- process -----------------------------------------------------------

    async def poll_changes(self) -> None:
        self.hub.poll()

    async def close(self) -> None:
        for selections in list(self.hub.by_mailbox.values()):
            for selection in list(selections):
                selection.close()
        self.conn.close()


def _stream_body(path: Path, mailbox_id: int, uid: int) -> MessageBody | None:
    """A MessageBody reading from its own connection and read transaction,
    so the bytes stay readable (and consistent) while they are streamed."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    conn.execute("BEGIN")
    found = msgs.body_of(conn, mailbox_id, uid)
    if found is None:
        conn.close()
        return None
    body_id, size = found
    blob = conn.blobopen("bodies", "data", body_id, readonly=True)
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            blob.close()
            conn.close()

    def chunks() -> Iterator[bytes]:
        try:
            blob.seek(0)
            while True:
                chunk = blob.read(STREAM_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            close()

    return MessageBody(size, chunks, close)


def _conforms(store: SqliteMailStore) -> MailStore:
    return store  # mypy checks that SqliteMailStore implements the protocol

"""Applying planned tree edits (``mail.backend.TreeOp``) to the SQLite rows.

Runs inside the writer's transaction (a savepoint of it): a plan or an op
that raises changes nothing. The hierarchy RULES (RFC 3501 §6.3.3-§6.3.5)
are the mail core's (``imapd.mail.hierarchy``); this applies the ops.
UIDVALIDITY comes from the store-wide counter ``settings.uidvalidity``
(``mailboxes.new_uidvalidity``), so a value is never reused, not even
after DELETE + CREATE (RFC 3501 §2.3.1.1).
"""

from __future__ import annotations

import sqlite3
from typing import Sequence

from imapd.core.errors import ImapError
from imapd.mail import names
from imapd.mail.backend import (
    AddMailbox, MailboxEntry, RemoveMailbox, RenameMailbox, TransferMessages, TreeOp, TreePlan,
)
from imapd.mail.errors import OverLimit
from imapd.storage.rows import MailboxRow
from imapd.storage.sqlite import mailboxes as boxes

Rings = list[tuple[int, int]]


def user_id(conn: sqlite3.Connection, user: str) -> int | None:
    row = conn.execute("SELECT id FROM users WHERE name=?", (user,)).fetchone()
    return None if row is None else int(row[0])


def entries(conn: sqlite3.Connection, uid: int) -> list[MailboxEntry]:
    """Every row of the user's tree, by name."""
    rows = conn.execute(
        "SELECT id, name, selectable, uidvalidity, special_use FROM mailboxes "
        "WHERE user_id=? ORDER BY name", (uid,),
    ).fetchall()
    return [MailboxEntry(int(i), str(n), bool(s), int(v), u) for i, n, s, v, u in rows]


def _uidvalidity(conn: sqlite3.Connection) -> int:
    try:
        return boxes.new_uidvalidity(conn)
    except ImapError as error:
        raise OverLimit(error.text) from None


def add(conn: sqlite3.Connection, uid: int, op: AddMailbox) -> None:
    """A fresh row; a placeholder gets its own UIDVALIDITY too, which keeps
    every ref distinct (old data has placeholders with 0: harmless)."""
    if boxes.find(conn, uid, op.name) is not None:
        raise ValueError(f"AddMailbox: {op.name!r} exists")
    conn.execute(
        "INSERT INTO mailboxes(user_id, name, selectable, uidvalidity, special_use) "
        "VALUES(?, ?, ?, ?, ?)",
        (uid, op.name, int(op.selectable), _uidvalidity(conn), op.special_use),
    )


def _row(conn: sqlite3.Connection, uid: int, name: str, what: str) -> MailboxRow:
    row = boxes.find(conn, uid, name)
    if row is None:
        raise ValueError(f"{what}: no {name!r}")
    return row


def transfer(conn: sqlite3.Connection, uid: int, op: TransferMessages) -> tuple[int, int]:
    """RENAME INBOX (RFC 3501 §6.3.5): the messages move keeping UIDs,
    flags, dates and sizes; the source records them as expunged under one
    new MODSEQ and keeps UIDVALIDITY and UIDNEXT; the moved messages get
    MODSEQ 1, the fresh target's HIGHESTMODSEQ, and count as claimed there
    (their \\Recent belonged to the source's sessions)."""
    source = _row(conn, uid, op.source, "TransferMessages")
    target = _row(conn, uid, op.target, "TransferMessages")
    if not source.selectable or not target.selectable or conn.execute(
        "SELECT 1 FROM messages WHERE mailbox_id=? LIMIT 1", (target.id,)
    ).fetchone() is not None:
        raise ValueError(f"TransferMessages: {op.source!r} -> {op.target!r}")
    modseq = source.highestmodseq
    moved = conn.execute(
        "SELECT 1 FROM messages WHERE mailbox_id=? LIMIT 1", (source.id,)
    ).fetchone() is not None
    if moved:
        modseq += 1
        conn.execute("UPDATE mailboxes SET highestmodseq=? WHERE id=?", (modseq, source.id))
        conn.execute(
            "INSERT INTO expunged(mailbox_id, uid, modseq) "
            "SELECT mailbox_id, uid, ? FROM messages WHERE mailbox_id=?",
            (modseq, source.id),
        )
        conn.execute(
            "UPDATE messages SET mailbox_id=?, modseq=? WHERE mailbox_id=?",
            (target.id, target.highestmodseq, source.id),
        )
    conn.execute(
        "INSERT OR IGNORE INTO keywords(mailbox_id, folded, name) "
        "SELECT ?, folded, name FROM keywords WHERE mailbox_id=?",
        (target.id, source.id),
    )
    conn.execute(
        "UPDATE mailboxes SET uidnext=?, recent_from=? WHERE id=?",
        (source.uidnext, source.uidnext, target.id),
    )
    return source.id, modseq


def apply(conn: sqlite3.Connection, uid: int, ops: Sequence[TreeOp]) -> Rings:
    """Apply ``ops`` in order; (mailbox id, modseq or 0) to ring: every row
    removed or renamed, and a transfer's source."""
    rings: Rings = []
    for op in ops:
        if isinstance(op, AddMailbox):
            add(conn, uid, op)
        elif isinstance(op, RemoveMailbox):
            row = _row(conn, uid, op.name, "RemoveMailbox")
            boxes.purge_mailbox(conn, row.id)
            rings.append((row.id, 0))
        elif isinstance(op, RenameMailbox):
            row = _row(conn, uid, op.old, "RenameMailbox")
            if boxes.find(conn, uid, op.new) is not None:
                raise ValueError(f"RenameMailbox: {op.new!r} exists")
            conn.execute("UPDATE mailboxes SET name=? WHERE id=?", (op.new, row.id))
            rings.append((row.id, 0))
        elif isinstance(op, TransferMessages):
            rings.append(transfer(conn, uid, op))
        else:  # pragma: no cover - the TreeOp union is closed
            raise ValueError(f"unknown tree op {op!r}")
    return rings


def edit(conn: sqlite3.Connection, user: str, plan: TreePlan) -> Rings:
    """``edit_tree``: the plan sees the current rows, inside the transaction."""
    uid = user_id(conn, user)
    if uid is None:
        uid = ensure_user(conn, user, ())
    return apply(conn, uid, plan(entries(conn, uid)))


def ensure_user(
    conn: sqlite3.Connection, user: str, defaults: Sequence[tuple[str, str | None]]
) -> int:
    """The user's id; INBOX always (RFC 3501 §5.1); each of ``defaults``
    provisioned once per user ever (``mailboxes.provision`` records it in
    ``settings``): one the operator adds later reaches existing users, one
    the user deleted is not recreated."""
    uid = user_id(conn, user)
    if uid is None:
        cursor = conn.execute("INSERT INTO users(name) VALUES(?)", (user,))
        assert cursor.lastrowid is not None
        uid = int(cursor.lastrowid)
    if boxes.find(conn, uid, names.INBOX) is None:
        add(conn, uid, AddMailbox(names.INBOX, True, None))
    boxes.provision(conn, uid, defaults)
    return uid

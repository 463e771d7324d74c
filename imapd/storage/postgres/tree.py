"""Users, mailbox rows and tree edits of the PostgreSQL engine.

Functions run inside a transaction opened by the runner. Tree edits of one
user are serialised by a row lock on the user's ``mail_users`` row
(``lock_user``); a change to a mailbox's messages locks the mailbox row
(``lock_mailbox``), and so does every tree edit that changes that row's
messages or removes it, so an APPEND in flight and a DELETE of its mailbox
never interleave. The hierarchy RULES (RFC 3501 §6.3.3-§6.3.5) are the mail
core's (``imapd.mail.hierarchy``); this applies the ops it plans.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from imapd.mail import names
from imapd.mail.backend import (
    AddMailbox, MailboxEntry, MailboxRef, RemoveMailbox, RenameMailbox, TransferMessages,
    TreeOp, TreePlan,
)
from imapd.mail.errors import NoSuchMailbox, OverLimit
from imapd.mail.flags import DELETED_BIT, SEEN_BIT
from imapd.mail.records import MailboxStatus
from imapd.storage.rows import MailboxRow
from imapd.storage.postgres.runner import Conn, Rings

MAX_UIDVALIDITY = 2**32 - 1




COLUMNS = "id, name, selectable, uidvalidity, uidnext, highestmodseq, recent_from, special_use"


def _row(values: Any) -> MailboxRow | None:
    return None if values is None else MailboxRow(*values)


def find(conn: Conn, user_id: int, name: str, lock: bool = False) -> MailboxRow | None:
    suffix = " FOR UPDATE" if lock else ""
    return _row(conn.execute(
        f"SELECT {COLUMNS} FROM mailboxes WHERE user_id=%s AND name=%s{suffix}",
        (user_id, name)).fetchone())


def mailbox(conn: Conn, ref: MailboxRef, lock: bool = False) -> MailboxRow:
    """The selectable row ``ref`` names (locked FOR UPDATE when ``lock``), or
    NoSuchMailbox: gone, re-created with another UIDVALIDITY, or a
    ``\\Noselect`` placeholder."""
    suffix = " FOR UPDATE" if lock else ""
    row = _row(conn.execute(f"SELECT {COLUMNS} FROM mailboxes WHERE id=%s{suffix}",
                            (ref.id,)).fetchone())
    if row is None or not row.selectable or row.uidvalidity != ref.uidvalidity:
        raise NoSuchMailbox("Mailbox does not exist")
    return row


def lock_mailboxes(conn: Conn, refs: Sequence[MailboxRef]) -> dict[int, MailboxRow]:
    """Lock several mailbox rows in id order (two COPYs in opposite
    directions must not deadlock); NoSuchMailbox if one is not there."""
    rows: dict[int, MailboxRow] = {}
    for ref in sorted(set(refs), key=lambda r: r.id):
        rows[ref.id] = mailbox(conn, ref, lock=True)
    for ref in refs:
        if rows[ref.id].uidvalidity != ref.uidvalidity:
            raise NoSuchMailbox("Mailbox does not exist")
    return rows


def user_id(conn: Conn, user: str) -> int | None:
    row = conn.execute("SELECT id FROM mail_users WHERE name=%s", (user,)).fetchone()
    return None if row is None else int(row[0])


def lock_user(conn: Conn, user: str) -> int:
    """The user's id, creating the row if needed, locked for this
    transaction: the tree edits of one user never interleave."""
    row = conn.execute("SELECT id FROM mail_users WHERE name=%s FOR UPDATE", (user,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO mail_users(name) VALUES(%s) ON CONFLICT (name) DO NOTHING",
                     (user,))
        row = conn.execute("SELECT id FROM mail_users WHERE name=%s FOR UPDATE",
                           (user,)).fetchone()
    assert row is not None
    return int(row[0])


def entries(conn: Conn, uid: int) -> list[MailboxEntry]:
    """Every row of the user's tree, by name (byte order: COLLATE "C")."""
    rows = conn.execute(
        "SELECT id, name, selectable, uidvalidity, special_use FROM mailboxes "
        "WHERE user_id=%s ORDER BY name", (uid,)).fetchall()
    return [MailboxEntry(int(i), str(n), bool(s), int(v), u) for i, n, s, v, u in rows]


def new_uidvalidity(conn: Conn) -> int:
    """A UIDVALIDITY never handed out before in this database (RFC 3501
    §2.3.1.1): the store-wide counter, at least the clock, bumped under its
    row lock (concurrent creators queue; a rolled back value may be skipped,
    never repeated)."""
    row = conn.execute(
        "INSERT INTO settings(key, value) VALUES('uidvalidity', %s) ON CONFLICT (key) "
        "DO UPDATE SET value=GREATEST(settings.value + 1, EXCLUDED.value) RETURNING value",
        (int(time.time()),)).fetchone()
    assert row is not None
    value = int(row[0])
    if value > MAX_UIDVALIDITY:
        raise OverLimit("UIDVALIDITY space exhausted")
    return value


def add(conn: Conn, uid: int, op: AddMailbox) -> None:
    if find(conn, uid, op.name) is not None:
        raise ValueError(f"AddMailbox: {op.name!r} exists")
    conn.execute(
        "INSERT INTO mailboxes(user_id, name, selectable, uidvalidity, special_use) "
        "VALUES(%s, %s, %s, %s, %s)",
        (uid, op.name, op.selectable, new_uidvalidity(conn), op.special_use))


def _existing(conn: Conn, uid: int, name: str, what: str) -> MailboxRow:
    row = find(conn, uid, name, lock=True)
    if row is None:
        raise ValueError(f"{what}: no {name!r}")
    return row


def release_bodies(conn: Conn, body_ids: Sequence[int]) -> None:
    """Drop one reference per entry of ``body_ids``; delete unreferenced bodies."""
    if not body_ids:
        return
    counts: dict[int, int] = {}
    for body_id in body_ids:
        counts[body_id] = counts.get(body_id, 0) + 1
    ids, numbers = list(counts), list(counts.values())
    gone = [int(r[0]) for r in conn.execute(
        "UPDATE bodies b SET refs=b.refs-c.n FROM unnest(%s::bigint[], %s::int[]) AS c(id, n) "
        "WHERE b.id=c.id RETURNING b.id, b.refs", (ids, numbers)).fetchall() if r[1] <= 0]
    if gone:
        conn.execute("DELETE FROM body_chunks WHERE body_id = ANY(%s)", (gone,))
        conn.execute("DELETE FROM bodies WHERE id = ANY(%s)", (gone,))


def purge(conn: Conn, mailbox_id: int) -> None:
    """Remove a (locked) mailbox row with its messages, history and keywords."""
    bodies = [int(r[0]) for r in conn.execute(
        "DELETE FROM messages WHERE mailbox_id=%s RETURNING body_id", (mailbox_id,)).fetchall()]
    release_bodies(conn, bodies)
    conn.execute("DELETE FROM expunged WHERE mailbox_id=%s", (mailbox_id,))
    conn.execute("DELETE FROM keywords WHERE mailbox_id=%s", (mailbox_id,))
    conn.execute("DELETE FROM mailboxes WHERE id=%s", (mailbox_id,))


def transfer(conn: Conn, uid: int, op: TransferMessages) -> tuple[int, int]:
    """RENAME INBOX (RFC 3501 §6.3.5), as the SQLite engine does it: the
    messages move keeping UIDs, flags, dates and sizes; the source records
    them expunged under one new MODSEQ and keeps UIDVALIDITY and UIDNEXT;
    the moved messages get the fresh target's HIGHESTMODSEQ and count as
    claimed there."""
    first, second = sorted([op.source, op.target])
    rows = {first: _existing(conn, uid, first, "TransferMessages")}
    rows[second] = _existing(conn, uid, second, "TransferMessages")
    source, target = rows[op.source], rows[op.target]
    if not source.selectable or not target.selectable or conn.execute(
        "SELECT 1 FROM messages WHERE mailbox_id=%s LIMIT 1", (target.id,)
    ).fetchone() is not None:
        raise ValueError(f"TransferMessages: {op.source!r} -> {op.target!r}")
    modseq = source.highestmodseq
    if conn.execute("SELECT 1 FROM messages WHERE mailbox_id=%s LIMIT 1",
                    (source.id,)).fetchone() is not None:
        modseq += 1
        conn.execute("UPDATE mailboxes SET highestmodseq=%s WHERE id=%s", (modseq, source.id))
        conn.execute("INSERT INTO expunged(mailbox_id, uid, modseq) "
                     "SELECT mailbox_id, uid, %s FROM messages WHERE mailbox_id=%s",
                     (modseq, source.id))
        conn.execute("UPDATE messages SET mailbox_id=%s, modseq=%s WHERE mailbox_id=%s",
                     (target.id, target.highestmodseq, source.id))
    conn.execute("INSERT INTO keywords(mailbox_id, folded, name) SELECT %s, folded, name "
                  "FROM keywords WHERE mailbox_id=%s ON CONFLICT DO NOTHING",
                  (target.id, source.id))
    conn.execute("UPDATE mailboxes SET uidnext=%s, recent_from=%s WHERE id=%s",
                 (source.uidnext, source.uidnext, target.id))
    return source.id, modseq


def apply(conn: Conn, uid: int, ops: Sequence[TreeOp]) -> Rings:
    """Apply ``ops`` in order; the rings: every row removed or renamed
    (modseq 0: a tree change), and a transfer's source."""
    rings: Rings = []
    for op in ops:
        if isinstance(op, AddMailbox):
            add(conn, uid, op)
        elif isinstance(op, RemoveMailbox):
            row = _existing(conn, uid, op.name, "RemoveMailbox")
            purge(conn, row.id)
            rings.append((row.id, 0))
        elif isinstance(op, RenameMailbox):
            row = _existing(conn, uid, op.old, "RenameMailbox")
            if find(conn, uid, op.new) is not None:
                raise ValueError(f"RenameMailbox: {op.new!r} exists")
            conn.execute("UPDATE mailboxes SET name=%s WHERE id=%s", (op.new, row.id))
            rings.append((row.id, 0))
        elif isinstance(op, TransferMessages):
            rings.append(transfer(conn, uid, op))
        else:  # pragma: no cover - the TreeOp union is closed
            raise ValueError(f"unknown tree op {op!r}")
    return rings


def edit(conn: Conn, user: str, plan: TreePlan) -> Rings:
    """``edit_tree``: the plan sees the current rows, under the user's lock."""
    uid = lock_user(conn, user)
    return apply(conn, uid, plan(entries(conn, uid)))


# --- provisioning (RFC 6154 default mailboxes) ------------------------------------

def _key(name: str, special_use: str | None) -> str:
    return special_use or name


def needs_provisioning(
    conn: Conn, uid: int, defaults: Sequence[tuple[str, str | None]]
) -> bool:
    if not defaults:
        return False
    done = {str(r[0]) for r in conn.execute(
        "SELECT key FROM provisioned WHERE user_id=%s", (uid,)).fetchall()}
    return any(_key(n, u) not in done for n, u in defaults)


def ensure_user(conn: Conn, user: str, defaults: Sequence[tuple[str, str | None]]) -> None:
    """INBOX always (RFC 3501 §5.1); each default provisioned once per user
    ever (recorded in ``provisioned``): created selectable and subscribed
    (with missing superiors) unless some mailbox already has its special
    use; an existing mailbox by its name gets the attribute added."""
    uid = lock_user(conn, user)
    if find(conn, uid, names.INBOX) is None:
        add(conn, uid, AddMailbox(names.INBOX, True, None))
    for name, special_use in defaults:
        inserted = conn.execute(
            "INSERT INTO provisioned(user_id, key) VALUES(%s, %s) ON CONFLICT DO NOTHING "
            "RETURNING 1", (uid, _key(name, special_use))).fetchone()
        if inserted is None or (special_use is not None and _use_taken(conn, uid, special_use)):
            continue
        row = find(conn, uid, name)
        if row is None or not row.selectable:
            _create(conn, uid, name, special_use, row)
        elif special_use is not None:
            uses = (row.special_use or "").split()
            conn.execute("UPDATE mailboxes SET special_use=%s WHERE id=%s",
                         (" ".join([*uses, special_use]), row.id))
        conn.execute("INSERT INTO subscriptions(user_id, name) VALUES(%s, %s) "
                     "ON CONFLICT DO NOTHING", (uid, name))


def _create(
    conn: Conn, uid: int, name: str, special_use: str | None, existing: MailboxRow | None
) -> None:
    for superior in names.ancestors(name):
        if find(conn, uid, superior) is None:
            add(conn, uid, AddMailbox(superior))
    if existing is None:
        add(conn, uid, AddMailbox(name, True, special_use))
        return
    conn.execute(
        "UPDATE mailboxes SET selectable=TRUE, uidvalidity=%s, uidnext=1, highestmodseq=1, "
        "recent_from=1, special_use=%s WHERE id=%s",
        (new_uidvalidity(conn), special_use, existing.id))


def _use_taken(conn: Conn, uid: int, special_use: str) -> bool:
    rows = conn.execute("SELECT special_use FROM mailboxes WHERE user_id=%s AND "
                        "special_use IS NOT NULL", (uid,)).fetchall()
    return any(special_use in str(r[0]).split() for r in rows)


def status(conn: Conn, row: MailboxRow) -> MailboxStatus:
    """STATUS (RFC 3501 §6.3.10, RFC 7162 §3.1.9, RFC 8438 SIZE)."""
    found = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE sysflags & %s = 0), coalesce(sum(size), 0), "
        "count(*) FILTER (WHERE uid >= %s), count(*) FILTER (WHERE sysflags & %s != 0), "
        "coalesce(sum(size) FILTER (WHERE sysflags & %s != 0), 0) "
        "FROM messages WHERE mailbox_id=%s",
        (SEEN_BIT, row.recent_from, DELETED_BIT, DELETED_BIT, row.id)).fetchone()
    assert found is not None
    messages, unseen, size, recent, deleted, deleted_size = found
    return MailboxStatus(name=row.name, messages=int(messages), recent=int(recent),
                         uidnext=row.uidnext, uidvalidity=row.uidvalidity, unseen=int(unseen),
                         highestmodseq=row.highestmodseq, size=int(size),
                         deleted=int(deleted), deleted_size=int(deleted_size))

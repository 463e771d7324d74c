"""Mailbox rows of the SQLite store (RFC 3501 §6.3): lookups, UIDVALIDITY,
provisioning of default mailboxes, body reference counts, STATUS.

Functions here run inside a transaction opened by the caller (``backend``,
``tree``, ``reads``) and raise ``ImapError`` before changing anything when a
rule forbids the operation. The hierarchy edits themselves (CREATE, DELETE,
RENAME) are planned by ``imapd.mail.hierarchy`` and applied by ``tree``.

Invariant kept by every function: every superior of an existing name exists
too, as a mailbox or as a ``\\Noselect`` placeholder (``selectable=0``).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Sequence

from imapd.core.errors import ImapError
from imapd.mail import names
from imapd.mail.flags import DELETED_BIT, SEEN_BIT
from imapd.mail.records import MailboxStatus
from imapd.storage.rows import MailboxRow

MAX_UIDVALIDITY = 2**32 - 1




_ROW_COLUMNS = (
    "id, name, selectable, uidvalidity, uidnext, highestmodseq, recent_from, special_use"
)


def _row(values: Any) -> MailboxRow | None:
    if values is None:
        return None
    id_, name, selectable, uidvalidity, uidnext, modseq, recent_from, special_use = values
    return MailboxRow(
        int(id_), str(name), bool(selectable), int(uidvalidity),
        int(uidnext), int(modseq), int(recent_from),
        None if special_use is None else str(special_use),
    )


def find(conn: sqlite3.Connection, user_id: int, name: str) -> MailboxRow | None:
    cursor = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM mailboxes WHERE user_id=? AND name=?", (user_id, name)
    )
    return _row(cursor.fetchone())


def find_by_id(conn: sqlite3.Connection, mailbox_id: int) -> MailboxRow | None:
    cursor = conn.execute(f"SELECT {_ROW_COLUMNS} FROM mailboxes WHERE id=?", (mailbox_id,))
    return _row(cursor.fetchone())


def new_uidvalidity(conn: sqlite3.Connection) -> int:
    """A UIDVALIDITY never handed out before in this data directory.

    Starting from the clock means a data directory recreated from scratch
    still does not repeat values clients have cached (RFC 3501 §2.3.1.1).
    """
    row = conn.execute("SELECT value FROM settings WHERE key='uidvalidity'").fetchone()
    last = int(row[0]) if row else 0
    value = max(last + 1, int(time.time()))
    if value > MAX_UIDVALIDITY:
        raise ImapError.no("UIDVALIDITY space exhausted", "LIMIT")
    conn.execute(
        "INSERT INTO settings(key, value) VALUES('uidvalidity', ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (value,),
    )
    return value


def insert_mailbox(
    conn: sqlite3.Connection, user_id: int, name: str, special_use: str | None = None
) -> int:
    cursor = conn.execute(
        "INSERT INTO mailboxes(user_id, name, selectable, uidvalidity, special_use) "
        "VALUES(?, ?, 1, ?, ?)",
        (user_id, name, new_uidvalidity(conn), special_use),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def ensure_superiors(conn: sqlite3.Connection, user_id: int, name: str) -> None:
    """Create missing superiors as real mailboxes (RFC 3501 §6.3.3, §6.3.5)."""
    for superior in names.ancestors(name):
        if find(conn, user_id, superior) is None:
            insert_mailbox(conn, user_id, superior)


def create(conn: sqlite3.Connection, user_id: int, name: str, special_use: str | None) -> None:
    """CREATE of a default mailbox (``provision``); ``name`` already
    normalised (``names.normalize_name``)."""
    existing = find(conn, user_id, name)
    if name == names.INBOX or (existing is not None and existing.selectable):
        raise ImapError.no(f"Mailbox already exists: {name}", "ALREADYEXISTS")
    ensure_superiors(conn, user_id, name)
    if existing is None:
        insert_mailbox(conn, user_id, name, special_use)
        return
    conn.execute(
        "UPDATE mailboxes SET selectable=1, uidvalidity=?, uidnext=1, highestmodseq=1, "
        "recent_from=1, special_use=? WHERE id=?",
        (new_uidvalidity(conn), special_use, existing.id),
    )


def _provision_key(user_id: int, name: str, special_use: str | None) -> str:
    return f"provisioned:{user_id}:{special_use or name}"


def needs_provisioning(
    conn: sqlite3.Connection, user_id: int, defaults: Sequence[tuple[str, str | None]]
) -> bool:
    """True when some default mailbox was never provisioned for the user."""
    done = {
        str(r[0]) for r in conn.execute(
            "SELECT key FROM settings WHERE key >= ? AND key < ?",
            (f"provisioned:{user_id}:", f"provisioned:{user_id};"),
        )
    }
    return any(_provision_key(user_id, n, u) not in done for n, u in defaults)


def provision(
    conn: sqlite3.Connection, user_id: int, defaults: Sequence[tuple[str, str | None]]
) -> None:
    """Create the default mailboxes (RFC 6154 special-use ones such as
    ``("Sent", "\\\\Sent")``) that were never provisioned for this user,
    subscribed, and remember each one in ``settings``: every default is
    provisioned once per user, so a mailbox the user deletes stays deleted.
    A special use some mailbox already has is not given out again; an
    existing mailbox by the default name gets the attribute added."""
    for name, special_use in defaults:
        key = _provision_key(user_id, name, special_use)
        if conn.execute("SELECT 1 FROM settings WHERE key=?", (key,)).fetchone() is not None:
            continue
        conn.execute("INSERT INTO settings(key, value) VALUES(?, 1)", (key,))
        if special_use is not None and _use_taken(conn, user_id, special_use):
            continue
        row = find(conn, user_id, name)
        if row is None or not row.selectable:
            create(conn, user_id, name, special_use)
        elif special_use is not None:
            uses = (row.special_use or "").split()
            conn.execute(
                "UPDATE mailboxes SET special_use=? WHERE id=?",
                (" ".join([*uses, special_use]), row.id),
            )
        conn.execute(
            "INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES(?, ?)", (user_id, name)
        )


def _use_taken(conn: sqlite3.Connection, user_id: int, special_use: str) -> bool:
    rows = conn.execute(
        "SELECT special_use FROM mailboxes WHERE user_id=? AND special_use IS NOT NULL",
        (user_id,),
    ).fetchall()
    return any(special_use in str(r[0]).split() for r in rows)


def release_bodies(conn: sqlite3.Connection, body_counts: dict[int, int]) -> None:
    """Drop message references to bodies; delete bodies nobody references."""
    if not body_counts:
        return
    conn.executemany(
        "UPDATE bodies SET refs=refs-? WHERE id=?",
        [(count, body_id) for body_id, count in body_counts.items()],
    )
    conn.executemany(
        "DELETE FROM bodies WHERE id=? AND refs<=0", [(b,) for b in body_counts]
    )


def count_bodies(body_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for body_id in body_ids:
        counts[body_id] = counts.get(body_id, 0) + 1
    return counts


def purge_mailbox(conn: sqlite3.Connection, mailbox_id: int) -> None:
    """Remove a mailbox row with its messages, history and keywords."""
    body_ids = [
        int(r[0])
        for r in conn.execute("SELECT body_id FROM messages WHERE mailbox_id=?", (mailbox_id,))
    ]
    conn.execute("DELETE FROM messages WHERE mailbox_id=?", (mailbox_id,))
    release_bodies(conn, count_bodies(body_ids))
    conn.execute("DELETE FROM expunged WHERE mailbox_id=?", (mailbox_id,))
    conn.execute("DELETE FROM keywords WHERE mailbox_id=?", (mailbox_id,))
    conn.execute("DELETE FROM mailboxes WHERE id=?", (mailbox_id,))


def subscribed_names(conn: sqlite3.Connection, user_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM subscriptions WHERE user_id=? ORDER BY name", (user_id,)
    ).fetchall()
    return [str(r[0]) for r in rows]


def status(conn: sqlite3.Connection, row: MailboxRow) -> MailboxStatus:
    messages, unseen, size, recent, deleted, deleted_size = conn.execute(
        "SELECT count(*), total(sysflags & ? = 0), total(size), total(uid >= ?), "
        "total(sysflags & ? != 0), total(CASE WHEN sysflags & ? != 0 THEN size END) "
        "FROM messages WHERE mailbox_id=?",
        (SEEN_BIT, row.recent_from, DELETED_BIT, DELETED_BIT, row.id),
    ).fetchone()
    return MailboxStatus(
        name=row.name,
        messages=int(messages),
        recent=int(recent),
        uidnext=row.uidnext,
        uidvalidity=row.uidvalidity,
        unseen=int(unseen),
        highestmodseq=row.highestmodseq,
        size=int(size),
        deleted=int(deleted),
        deleted_size=int(deleted_size),
    )


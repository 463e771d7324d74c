"""Whole accounts in the SQLite engine: ``delete_account`` and
``rename_account`` of ``imapd.mail.backend.MailBackend`` (``imapd user
del`` / ``user rename``), each one write transaction on the writer.

Every per-user table is keyed by ``users.id`` (mailboxes, subscriptions,
quotas, usage, the ``provisioned:<id>:`` keys in ``settings``), so a
rename is one UPDATE of the ``users`` row and a delete removes the rows
under that id. Messages are deleted mailbox by mailbox before their
mailbox row (``mailboxes.purge_mailbox``), so the schema v3 ``usage``
triggers still find the owner; the usage row goes last. UIDVALIDITY comes
from the store-wide counter, so an account made later under the same name
never sees an old value (RFC 3501 §2.3.1.1), even if SQLite hands out the
deleted ``users.id`` again (the ``provisioned`` keys of that id are gone
with it, so the new account gets its default mailboxes).

Rings: every mailbox removed or moved. Other processes need none for a
rename (the rows do not change; the old owner's sessions are disconnected
by ``imapd user``) and see a delete as rows gone (``feed.Poller``).
"""

from __future__ import annotations

import sqlite3

from imapd.mail.errors import AlreadyExists, Cannot
from imapd.storage.sqlite import mailboxes as boxes
from imapd.storage.sqlite.tree import Rings, user_id


def _mailbox_ids(conn: sqlite3.Connection, uid: int) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT id FROM mailboxes WHERE user_id=?", (uid,))]


def delete(conn: sqlite3.Connection, user: str) -> tuple[bool, Rings]:
    """Remove ``user`` and everything stored under its id."""
    uid = user_id(conn, user)
    if uid is None:
        return False, []
    ids = _mailbox_ids(conn, uid)
    for mailbox_id in ids:
        boxes.purge_mailbox(conn, mailbox_id)
    for table in ("subscriptions", "quotas", "usage"):
        conn.execute(f"DELETE FROM {table} WHERE user_id=?", (uid,))
    conn.execute("DELETE FROM settings WHERE key >= ? AND key < ?",
                 (f"provisioned:{uid}:", f"provisioned:{uid};"))
    conn.execute("DELETE FROM users WHERE id=?", (uid,))
    return True, [(mailbox_id, 0) for mailbox_id in ids]


def has_mail(conn: sqlite3.Connection, uid: int) -> bool:
    return conn.execute(
        "SELECT 1 FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id=?) "
        "LIMIT 1", (uid,)).fetchone() is not None


def rename(conn: sqlite3.Connection, old: str, new: str) -> tuple[bool, Rings]:
    """Give ``old``'s id the name ``new``, replacing an empty ``new``."""
    if old == new:
        raise Cannot("An account cannot be renamed to itself")
    uid = user_id(conn, old)
    if uid is None:
        return False, []
    target = user_id(conn, new)
    rings: Rings = []
    if target is not None:
        if has_mail(conn, target):
            raise AlreadyExists(f"Account {new} has mail")
        rings = delete(conn, new)[1]
    conn.execute("UPDATE users SET name=? WHERE id=?", (new, uid))
    return True, rings + [(mailbox_id, 0) for mailbox_id in _mailbox_ids(conn, uid)]

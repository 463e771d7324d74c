"""Whole accounts in the PostgreSQL engine: ``delete_account`` and
``rename_account`` of ``imapd.mail.backend.MailBackend`` (``imapd user
del`` / ``user rename``), each one transaction.

Every per-user table is keyed by ``mail_users.id`` (mailboxes,
subscriptions, quotas, provisioned), so a rename is one UPDATE of that row
and a delete removes the rows under the id; usage is summed from the
messages (``quota``), so it goes with them. The owner rows are locked
first (both, in name order, for a rename), then the mailbox rows in id
order, as tree edits lock them. Ids come from sequences and UIDVALIDITY
from the store-wide counter: an account made later under the same name
never sees an old value (RFC 3501 §2.3.1.1).

Rings (NOTIFY at commit, so every frontend hears them): every mailbox
removed or moved.
"""

from __future__ import annotations

from imapd.mail.errors import AlreadyExists, Cannot
from imapd.storage.postgres import tree
from imapd.storage.postgres.runner import Conn, Rings


def _lock_owner(conn: Conn, user: str) -> int | None:
    row = conn.execute("SELECT id FROM mail_users WHERE name=%s FOR UPDATE", (user,)).fetchone()
    return None if row is None else int(str(row[0]))


def _lock_mailboxes(conn: Conn, uid: int) -> list[int]:
    return [int(str(r[0])) for r in conn.execute(
        "SELECT id FROM mailboxes WHERE user_id=%s ORDER BY id FOR UPDATE", (uid,)).fetchall()]


def _drop(conn: Conn, uid: int) -> Rings:
    """Remove the (locked) owner ``uid`` and everything under it."""
    ids = _lock_mailboxes(conn, uid)
    for mailbox_id in ids:
        tree.purge(conn, mailbox_id)
    for table in ("subscriptions", "quotas", "provisioned"):
        conn.execute(f"DELETE FROM {table} WHERE user_id=%s", (uid,))
    conn.execute("DELETE FROM mail_users WHERE id=%s", (uid,))
    return [(mailbox_id, 0) for mailbox_id in ids]


def delete(conn: Conn, user: str) -> tuple[bool, Rings]:
    uid = _lock_owner(conn, user)
    if uid is None:
        return False, []
    return True, _drop(conn, uid)


def rename(conn: Conn, old: str, new: str) -> tuple[bool, Rings]:
    """Give ``old``'s id the name ``new``, replacing an empty ``new``."""
    if old == new:
        raise Cannot("An account cannot be renamed to itself")
    owners = {name: _lock_owner(conn, name) for name in sorted((old, new))}
    uid, target = owners[old], owners[new]
    if uid is None:
        return False, []
    rings: Rings = []
    if target is not None:
        if conn.execute("SELECT 1 FROM messages WHERE mailbox_id IN "
                        "(SELECT id FROM mailboxes WHERE user_id=%s) LIMIT 1",
                        (target,)).fetchone() is not None:
            raise AlreadyExists(f"Account {new} has mail")
        rings = _drop(conn, target)
    conn.execute("UPDATE mail_users SET name=%s WHERE id=%s", (new, uid))
    return True, rings + [(mailbox_id, 0) for mailbox_id in _lock_mailboxes(conn, uid)]

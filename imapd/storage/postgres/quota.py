"""Quota (RFC 9208) of the PostgreSQL engine: limits in ``quotas``, usage
summed over the user's messages inside the writing transaction.

Writes run at READ COMMITTED. A write that adds messages for a user with
limits first locks that user's ``quotas`` row (after its mailbox rows, the
engine's lock order), then sums: the row lock makes every frontend's
additions for one user queue, and the sum, a new statement, sees whatever
the previous holder committed. Two sessions filling the last bytes at once
therefore cannot both pass. Expunges take no quota lock: they only lower
usage, so a sum that misses one in flight errs on the safe side.
"""

from __future__ import annotations

from imapd.mail.backend import QuotaInfo
from imapd.mail.errors import OverQuota
from imapd.storage.postgres.runner import Conn


def owner(conn: Conn, mailbox_id: int) -> int | None:
    row = conn.execute("SELECT user_id FROM mailboxes WHERE id=%s", (mailbox_id,)).fetchone()
    return None if row is None else int(str(row[0]))


def _limit(value: object) -> int | None:
    return None if value is None else int(str(value))


def usage(conn: Conn, user_id: int) -> tuple[int, int]:
    """(bytes, messages) over every mailbox of the user."""
    row = conn.execute(
        "SELECT COALESCE(SUM(m.size), 0), COUNT(*) FROM messages m "
        "JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id=%s", (user_id,)).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def check(conn: Conn, mailbox_id: int, size: int, count: int) -> None:
    """OverQuota (RFC 9208 §5) if ``count`` more messages of ``size`` bytes
    for the mailbox's owner would pass a limit (``0, 0`` after inserting:
    whether the usage now passes one). Locks the owner's quota row."""
    user_id = owner(conn, mailbox_id)
    if user_id is None:
        return
    row = conn.execute("SELECT storage_limit, messages_limit FROM quotas WHERE user_id=%s "
                       "FOR UPDATE", (user_id,)).fetchone()
    if row is None or (row[0] is None and row[1] is None):
        return
    storage_limit, messages_limit = _limit(row[0]), _limit(row[1])
    used, messages = usage(conn, user_id)
    if storage_limit is not None and used + size > storage_limit:
        raise OverQuota("Over the storage quota")
    if messages_limit is not None and messages + count > messages_limit:
        raise OverQuota("Over the message quota")


def read(conn: Conn, user: str) -> QuotaInfo:
    found = conn.execute("SELECT id FROM mail_users WHERE name=%s", (user,)).fetchone()
    if found is None:
        return QuotaInfo(0, None, 0, None)
    user_id = int(str(found[0]))
    row = conn.execute("SELECT storage_limit, messages_limit FROM quotas WHERE user_id=%s",
                       (user_id,)).fetchone()
    used, messages = usage(conn, user_id)
    if row is None:
        return QuotaInfo(used, None, messages, None)
    return QuotaInfo(used, _limit(row[0]), messages, _limit(row[1]))


def store(conn: Conn, user_id: int, storage: int | None, messages: int | None) -> None:
    conn.execute(
        "INSERT INTO quotas(user_id, storage_limit, messages_limit) VALUES(%s, %s, %s) "
        "ON CONFLICT(user_id) DO UPDATE SET storage_limit=excluded.storage_limit, "
        "messages_limit=excluded.messages_limit", (user_id, storage, messages))

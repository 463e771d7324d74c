"""Quota (RFC 9208) of the SQLite engine: limits in ``quotas``, usage in
``usage``, which triggers on ``messages`` keep (``schema``, version 3).

Every write runs under SQLite's one write lock (BEGIN IMMEDIATE), so the
usage read in the transaction that inserts is exact: two sessions or
processes filling the last bytes at once are serialized and the second sees
the first's messages. Usage is only read for a user who has a limit.
"""

from __future__ import annotations

import sqlite3

from imapd.mail.backend import QuotaInfo
from imapd.mail.errors import OverQuota


def owner(conn: sqlite3.Connection, mailbox_id: int) -> int | None:
    row = conn.execute("SELECT user_id FROM mailboxes WHERE id=?", (mailbox_id,)).fetchone()
    return None if row is None else int(row[0])


def limits(conn: sqlite3.Connection, user_id: int) -> tuple[int | None, int | None]:
    row = conn.execute("SELECT storage_limit, messages_limit FROM quotas WHERE user_id=?",
                       (user_id,)).fetchone()
    return (None, None) if row is None else (row[0], row[1])


def usage(conn: sqlite3.Connection, user_id: int) -> tuple[int, int]:
    """(bytes, messages) over every mailbox of the user."""
    row = conn.execute("SELECT bytes, messages FROM usage WHERE user_id=?",
                       (user_id,)).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def check(conn: sqlite3.Connection, mailbox_id: int, size: int, count: int) -> None:
    """OverQuota (RFC 9208 §5) if adding ``count`` messages of ``size``
    bytes to the mailbox's owner would pass a limit. Call inside the write
    transaction, before inserting."""
    user_id = owner(conn, mailbox_id)
    if user_id is None:
        return
    storage_limit, messages_limit = limits(conn, user_id)
    if storage_limit is None and messages_limit is None:
        return
    used, messages = usage(conn, user_id)
    if storage_limit is not None and used + size > storage_limit:
        raise OverQuota("Over the storage quota")
    if messages_limit is not None and messages + count > messages_limit:
        raise OverQuota("Over the message quota")


def read(conn: sqlite3.Connection, user: str) -> QuotaInfo:
    row = conn.execute("SELECT id FROM users WHERE name=?", (user,)).fetchone()
    if row is None:
        return QuotaInfo(0, None, 0, None)
    storage_limit, messages_limit = limits(conn, int(row[0]))
    used, messages = usage(conn, int(row[0]))
    return QuotaInfo(used, storage_limit, messages, messages_limit)


def store(conn: sqlite3.Connection, user_id: int, storage: int | None,
          messages: int | None) -> None:
    conn.execute(
        "INSERT INTO quotas(user_id, storage_limit, messages_limit) VALUES(?, ?, ?) "
        "ON CONFLICT(user_id) DO UPDATE SET storage_limit=excluded.storage_limit, "
        "messages_limit=excluded.messages_limit", (user_id, storage, messages))

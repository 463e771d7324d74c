"""SQLite schema upgrades: a version-1 store (before quotas) opens as the
current version with its mail intact, and an unknown newer version is
refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from imapd.storage.sqlite import schema

# The version-1 schema had exactly the tables of ``_DDL``; version 2 added
# ``quotas`` through ``_MIGRATIONS[2]``.


def _make_v1(directory: Path) -> None:
    conn = sqlite3.connect(directory / schema.DB_FILENAME, isolation_level=None)
    for statement in schema._DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO users(id, name) VALUES(1, 'alice')")
    conn.execute("INSERT INTO mailboxes(user_id, name, selectable, uidvalidity, uidnext) "
                 "VALUES(1, 'INBOX', 1, 7, 3)")
    conn.execute("INSERT INTO messages VALUES(1, 2, 1, 0, 0, 42, 0, '', 2)")
    conn.execute("INSERT INTO bodies VALUES(1, 1, x'', x'00')")
    conn.execute("PRAGMA user_version=1")
    conn.close()


def test_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    _make_v1(tmp_path)
    conn = schema.connect(tmp_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 5
        assert conn.execute("SELECT uidnext FROM mailboxes WHERE name='INBOX'").fetchone() == (3,)
        assert conn.execute("SELECT size FROM messages").fetchall() == [(42,)]
        assert conn.execute("SELECT * FROM quotas").fetchall() == []  # no limits yet
        # Version 3: usage counted from the messages already there, then kept.
        assert conn.execute("SELECT * FROM usage").fetchall() == [(1, 42, 1)]
        conn.execute("INSERT INTO messages VALUES(1, 3, 1, 0, 0, 8, 0, '', 3)")
        assert conn.execute("SELECT * FROM usage").fetchall() == [(1, 50, 2)]
        # Version 4: the bodies stored before the full-text index wait for
        # ``imapd doctor --reindex`` (searches treat them as candidates).
        assert conn.execute("SELECT body_id FROM body_unindexed").fetchall() == [(1,)]
        # Version 5: no SORT facts for older bodies (SORT computes them, or
        # ``doctor --reindex``); a body's facts go with it.
        assert conn.execute("SELECT * FROM sort_facts").fetchall() == []
        conn.execute("INSERT INTO sort_facts VALUES(1, x'01')")
        conn.execute("DELETE FROM bodies WHERE id=1")
        assert conn.execute("SELECT body_id FROM body_unindexed").fetchall() == []
        assert conn.execute("SELECT * FROM sort_facts").fetchall() == []
    finally:
        conn.close()
    again = schema.connect(tmp_path)  # opening a current store again changes nothing
    again.close()


def test_new_store_has_quotas(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path)
    try:
        conn.execute("INSERT INTO quotas VALUES(1, 10, NULL)")
    finally:
        conn.close()


def test_newer_version_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / schema.DB_FILENAME, isolation_level=None)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(RuntimeError, match="unsupported store schema version 99"):
        schema.connect(tmp_path)


def test_usage_follows_every_change_of_messages(tmp_path: Path) -> None:
    """The triggers of version 3: insert, delete, a move between two users'
    mailboxes (an UPDATE of mailbox_id) and a first message of a user."""
    conn = schema.connect(tmp_path)
    try:
        conn.executemany("INSERT INTO users(id, name) VALUES(?, ?)", [(1, "a"), (2, "b")])
        conn.executemany("INSERT INTO mailboxes(id, user_id, name, selectable, uidvalidity) "
                         "VALUES(?, ?, ?, 1, 1)", [(1, 1, "INBOX"), (2, 2, "INBOX"), (3, 1, "X")])
        conn.executemany("INSERT INTO messages VALUES(?, ?, 1, 0, 0, ?, 0, '', 1)",
                         [(1, 1, 10), (1, 2, 20), (3, 7, 5)])
        usage = "SELECT user_id, bytes, messages FROM usage ORDER BY user_id"
        assert conn.execute(usage).fetchall() == [(1, 35, 3)]
        conn.execute("UPDATE messages SET mailbox_id=2 WHERE mailbox_id=1 AND uid=2")
        assert conn.execute(usage).fetchall() == [(1, 15, 2), (2, 20, 1)]
        conn.execute("UPDATE messages SET mailbox_id=1, modseq=5 WHERE mailbox_id=3")
        assert conn.execute(usage).fetchall() == [(1, 15, 2), (2, 20, 1)]
        conn.execute("DELETE FROM messages WHERE mailbox_id=1")
        assert conn.execute(usage).fetchall() == [(1, 0, 0), (2, 20, 1)]
    finally:
        conn.close()

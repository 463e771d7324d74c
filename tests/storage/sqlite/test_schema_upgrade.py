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
    conn.execute("PRAGMA user_version=1")
    conn.close()


def test_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    _make_v1(tmp_path)
    conn = schema.connect(tmp_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 2
        assert conn.execute("SELECT uidnext FROM mailboxes WHERE name='INBOX'").fetchone() == (3,)
        assert conn.execute("SELECT size FROM messages").fetchall() == [(42,)]
        assert conn.execute("SELECT * FROM quotas").fetchall() == []  # no limits yet
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

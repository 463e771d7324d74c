"""The SQLite schema and connection set-up of the default store.

One database file, ``mail.sqlite3``, in the data directory, holds every
user's mailboxes, messages and bodies (docs/storage.md explains why bodies
live in the database). WAL mode lets readers in any process work while one
writer commits; ``synchronous=FULL`` fsyncs the WAL at every commit, so a
committed change survives a crash or power loss.

Tables (all per-mailbox numbers are 64-bit; UIDs stay below 2**32):

* ``mailboxes``: one row per mailbox or ``\\Noselect`` placeholder
  (``selectable=0``). ``id`` is AUTOINCREMENT so an id is never reused: a
  session holding a deleted mailbox's id can never reach a new one.
  ``recent_from``: UIDs at or above it are not yet claimed as ``\\Recent``.
* ``messages``: one row per message; ``modseq`` indexed for CONDSTORE.
* ``expunged``: (mailbox, uid, modseq) of every expunged message, for QRESYNC
  (RFC 7162 §3.2.5.2) and for cross-process change detection.
* ``bodies``: the exact message bytes and the caller's meta blob, shared by
  copies through a reference count (``meta`` is stored before ``data`` so
  reading it does not walk the body's overflow pages).
* ``keywords``: every keyword a mailbox has seen, in its first spelling.
* ``quotas`` (version 2): a user's RFC 9208 limits (NULL = unlimited).
* ``usage`` (version 3): a user's stored octets and messages, kept by
  triggers on ``messages`` in the transaction that changes them, so a quota
  check under the write lock reads one row instead of summing every message
  of the account (7 ms at 100,000 messages, inside the one write lock).
* ``body_fts``, ``body_unindexed`` (version 4): the full-text index of
  SEARCH's string keys (``imapd.storage.sqlite.fts``).
* ``sort_facts`` (version 5): SORT and THREAD's facts of each body
  (``imapd.storage.sqlite.sortfacts``); ``fts_gone`` (version 5): deleted
  bodies whose index rows are still to be purged (``fts.purge_gone``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from imapd.storage.sqlite import fts, sortfacts
# Re-exported: most of the engine imports them from here.
from imapd.storage.sqlite.transactions import read_transaction as read_transaction
from imapd.storage.sqlite.transactions import write_transaction as write_transaction

DB_FILENAME = "mail.sqlite3"
SCHEMA_VERSION = 5
BUSY_TIMEOUT_SECONDS = 30.0
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

_DDL = """
CREATE TABLE settings(
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE users(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE mailboxes(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    selectable INTEGER NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    recent_from INTEGER NOT NULL DEFAULT 1,
    special_use TEXT,
    UNIQUE(user_id, name)
);
CREATE TABLE bodies(
    id INTEGER PRIMARY KEY,
    refs INTEGER NOT NULL,
    meta BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE messages(
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    body_id INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    tz_minutes INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sysflags INTEGER NOT NULL,
    keywords TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY(mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_by_modseq ON messages(mailbox_id, modseq);
CREATE TABLE expunged(
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY(mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_by_modseq ON expunged(mailbox_id, modseq);
CREATE TABLE keywords(
    mailbox_id INTEGER NOT NULL,
    folded TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY(mailbox_id, folded)
) WITHOUT ROWID;
CREATE TABLE subscriptions(
    user_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY(user_id, name)
) WITHOUT ROWID;
"""

# version -> DDL that upgrades the version below it.
_MIGRATIONS: dict[int, str] = {
    2: """
CREATE TABLE quotas(
    user_id INTEGER PRIMARY KEY,
    storage_limit INTEGER,
    messages_limit INTEGER
);
""",
    3: """
CREATE TABLE usage(
    user_id INTEGER PRIMARY KEY,
    bytes INTEGER NOT NULL,
    messages INTEGER NOT NULL
);
INSERT INTO usage(user_id, bytes, messages)
    SELECT b.user_id, total(m.size), count(*) FROM messages m
    JOIN mailboxes b ON b.id = m.mailbox_id GROUP BY b.user_id;
CREATE TRIGGER usage_added AFTER INSERT ON messages BEGIN
    INSERT INTO usage(user_id, bytes, messages)
        SELECT user_id, NEW.size, 1 FROM mailboxes WHERE id = NEW.mailbox_id
        ON CONFLICT(user_id) DO UPDATE SET bytes = bytes + excluded.bytes,
                                           messages = messages + 1;
END;
CREATE TRIGGER usage_removed AFTER DELETE ON messages BEGIN
    UPDATE usage SET bytes = bytes - OLD.size, messages = messages - 1
        WHERE user_id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
END;
CREATE TRIGGER usage_moved AFTER UPDATE OF mailbox_id, size ON messages
    WHEN OLD.mailbox_id != NEW.mailbox_id OR OLD.size != NEW.size BEGIN
    UPDATE usage SET bytes = bytes - OLD.size, messages = messages - 1
        WHERE user_id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
    INSERT INTO usage(user_id, bytes, messages)
        SELECT user_id, NEW.size, 1 FROM mailboxes WHERE id = NEW.mailbox_id
        ON CONFLICT(user_id) DO UPDATE SET bytes = bytes + excluded.bytes,
                                           messages = messages + 1;
END
""",
    4: fts.MIGRATION,
    # Unreleased, so it also defers the index's deletes (fts.GONE_MIGRATION).
    5: sortfacts.MIGRATION + ";\n" + fts.GONE_MIGRATION,
}


# A connection is reopened after this many blob opens (``Connection``).
RECYCLE_AFTER_BLOBS = 1000


class Connection(sqlite3.Connection):
    """A store connection that counts the blobs opened on it.

    CPython's ``sqlite3`` (python/cpython#144424, 3.11 to 3.13 at least)
    keeps a weak reference for every ``Blob`` ever opened on a connection
    until the connection closes: about 90 bytes per body read or large
    APPEND, for the life of a long-running server. The engine reopens a
    connection once ``due_for_recycling`` (between transactions), which
    bounds that to ``RECYCLE_AFTER_BLOBS`` dead references per connection.
    """

    blobs_opened = 0

    def blobopen(
        self, table: str, column: str, row: int, /, *, readonly: bool = False,
        name: str = "main",
    ) -> sqlite3.Blob:
        self.blobs_opened += 1
        return super().blobopen(table, column, row, readonly=readonly, name=name)

    @property
    def due_for_recycling(self) -> bool:
        return self.blobs_opened >= RECYCLE_AFTER_BLOBS and not self.in_transaction


def connect(data_dir: Path, check_same_thread: bool = True) -> Connection:
    """Open (creating if needed) the store database with the settings that
    make commits durable and concurrent access safe."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # Mail is private: create the file owner-only before SQLite opens it
    # (SQLite gives the -wal and -shm files the database file's mode).
    # Only when it is missing: closing any descriptor of the file drops
    # every POSIX lock this process holds on it (fcntl semantics), i.e. the
    # read locks of this process's other SQLite connections; another
    # process's writer could then take them for gone, checkpoint and
    # restart the WAL under them, and they would stop seeing new commits.
    try:
        os.close(os.open(data_dir / DB_FILENAME, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    except FileExistsError:
        pass
    conn = sqlite3.connect(
        data_dir / DB_FILENAME,
        timeout=BUSY_TIMEOUT_SECONDS,
        isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        check_same_thread=check_same_thread,
        factory=Connection,
    )
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"cannot put {data_dir / DB_FILENAME} in WAL mode: {mode}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-32768")  # KiB: 32 MiB page cache
    # A WAL restarted from its beginning is cut back to this size (by
    # default it keeps its largest size for good; see ``wal``).
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    _ensure_schema(conn)
    return conn


def _ensure_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    with write_transaction(conn):
        # Re-read under the write lock: another process may have just done it.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            _run_script(conn, _DDL)
            version = 1
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"unsupported store schema version {version}")
        # Upgrade one version at a time, in the same write transaction.
        while version < SCHEMA_VERSION:
            version += 1
            _run_script(conn, _MIGRATIONS[version])
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Each statement of ``script`` in the open transaction (``executescript``
    would commit it first). A trigger's body holds semicolons of its own:
    pieces are joined until SQLite says the statement is complete."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                conn.execute(pending)
            pending = ""
    if pending.strip(" \n;"):
        conn.execute(pending)

"""The PostgreSQL schema of the shared store, and its versioning.

``imapd db init`` runs ``init`` on an empty database, ``imapd db migrate``
runs ``migrate``; the server refuses to open a database whose version is
missing or unknown (``open_backend`` raises ``SchemaMismatch``). The version
lives in ``settings`` (key ``schema_version``), next to the store-wide
UIDVALIDITY counter (key ``uidvalidity``: never reused, RFC 3501 §2.3.1.1).

Tables (per-mailbox numbers are BIGINT; UIDs stay below 2**32):

* ``users``: the account store, one users-file line per user
  (``imapd.accounts.users.UserEntry.to_line``), for ``imapd user ...``.
* ``mail_users``: one row per mailbox owner (ids for the rows below).
* ``mailboxes``: one row per mailbox or ``\\Noselect`` placeholder; ``id``
  comes from a sequence, never reused, so a stale ref never reaches a new
  mailbox. UIDNEXT and HIGHESTMODSEQ are bumped with ``UPDATE ... RETURNING``
  in the transaction that inserts or changes messages: the row lock orders
  the commits of one mailbox, so commit order equals UID order.
* ``messages``, ``expunged`` (the change log ``changes_since`` reads),
  ``keywords``, ``subscriptions``, ``provisioned``, ``quotas`` (RFC 9208
  limits, NULL = unlimited): as in the SQLite engine.
* ``bodies`` (size, meta, reference count: copies share a body) and
  ``body_chunks``: the bytes in ``CHUNK`` pieces of bytea, so a large
  message is written and read a piece at a time (docs/storage.md gives
  the measurements behind this choice).
* ``body_text`` and ``body_unindexed`` (version 2): SEARCH's full-text
  index, ``pg_trgm`` GIN indexes over the folded text
  (``imapd.storage.postgres.fts``).
* ``sort_facts`` (version 3): SORT and THREAD's facts of each body
  (``imapd.storage.postgres.sortfacts``).

Names are ``COLLATE "C"``: byte order, as SQLite sorts them, whatever the
database's default collation is.
"""

from __future__ import annotations

import psycopg

from imapd.storage.postgres import fts, sortfacts

SCHEMA_VERSION = 3
NOTIFY_CHANNEL = "imapd"

_DDL_V1 = """
CREATE TABLE settings(
    key TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE users(
    name TEXT COLLATE "C" PRIMARY KEY,
    entry TEXT NOT NULL,
    scram TEXT
);
CREATE TABLE mail_users(
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE
);
CREATE TABLE provisioned(
    user_id BIGINT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY(user_id, key)
);
CREATE TABLE mailboxes(
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    selectable BOOLEAN NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uidnext BIGINT NOT NULL DEFAULT 1,
    highestmodseq BIGINT NOT NULL DEFAULT 1,
    recent_from BIGINT NOT NULL DEFAULT 1,
    special_use TEXT,
    UNIQUE(user_id, name)
);
CREATE TABLE bodies(
    id BIGSERIAL PRIMARY KEY,
    refs INTEGER NOT NULL,
    size BIGINT NOT NULL,
    meta BYTEA NOT NULL
);
CREATE TABLE body_chunks(
    body_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY(body_id, seq)
);
ALTER TABLE body_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE messages(
    mailbox_id BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    body_id BIGINT NOT NULL,
    internal_date BIGINT NOT NULL,
    tz_minutes INTEGER NOT NULL,
    size BIGINT NOT NULL,
    sysflags INTEGER NOT NULL,
    keywords TEXT NOT NULL,
    modseq BIGINT NOT NULL,
    PRIMARY KEY(mailbox_id, uid)
);
CREATE INDEX messages_by_modseq ON messages(mailbox_id, modseq);
CREATE TABLE expunged(
    mailbox_id BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    PRIMARY KEY(mailbox_id, uid)
);
CREATE INDEX expunged_by_modseq ON expunged(mailbox_id, modseq);
CREATE TABLE keywords(
    mailbox_id BIGINT NOT NULL,
    folded TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY(mailbox_id, folded)
);
CREATE TABLE subscriptions(
    user_id BIGINT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY(user_id, name)
);
CREATE TABLE quotas(
    user_id BIGINT PRIMARY KEY,
    storage_limit BIGINT,
    messages_limit BIGINT
)
"""

# version -> DDL that upgrades the version below it; ``init`` runs them too.
_MIGRATIONS: dict[int, str] = {2: fts.MIGRATION, 3: sortfacts.MIGRATION}


class SchemaMismatch(Exception):
    """The database has no imapd schema, or one of a version this imapd does
    not know: run ``imapd db init`` / ``imapd db migrate`` (or upgrade imapd)."""


def _version(conn: psycopg.Connection[tuple[object, ...]]) -> int | None:
    exists = conn.execute("SELECT to_regclass('settings') IS NOT NULL").fetchone()
    if exists is None or not exists[0]:
        return None
    row = conn.execute("SELECT value FROM settings WHERE key='schema_version'").fetchone()
    return None if row is None else int(str(row[0]))


def _table_count(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()
    return 0 if row is None else int(str(row[0]))


def current_version(dsn: str) -> int | None:
    """The schema version of the database, or None when it has none."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return _version(conn)


def init(dsn: str) -> None:
    """Create the schema in an empty database. A database already at
    ``SCHEMA_VERSION`` is left alone; one with other tables or another
    version is refused (``SchemaMismatch``). One transaction: all or nothing;
    an advisory lock keeps two concurrent ``init`` runs apart."""
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('imapd schema'))")
            version = _version(conn)
            if version == SCHEMA_VERSION:
                return
            if version is not None:
                raise SchemaMismatch(
                    f"database has imapd schema version {version}, this imapd knows "
                    f"{SCHEMA_VERSION}: use 'imapd db migrate' (or a newer imapd)")
            if _table_count(conn) != 0:
                raise SchemaMismatch("database is not empty and has no imapd schema: refusing "
                                     "to initialise it")
            for statement in _DDL_V1.split(";"):
                if statement.strip():
                    conn.execute(statement.encode())
            for version in range(2, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement.encode())
            conn.execute("INSERT INTO settings(key, value) VALUES('schema_version', %s)",
                         (SCHEMA_VERSION,))


def migrate(dsn: str) -> int:
    """Upgrade an older schema to ``SCHEMA_VERSION``, one version per step,
    in one transaction; returns the version now in place. A database without
    a schema or with a newer one: ``SchemaMismatch``."""
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('imapd schema'))")
            version = _version(conn)
            if version is None:
                raise SchemaMismatch("database has no imapd schema: use 'imapd db init'")
            if version > SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"database has imapd schema version {version}, newer than this imapd's "
                    f"{SCHEMA_VERSION}: upgrade imapd")
            while version < SCHEMA_VERSION:
                version += 1
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement.encode())
                conn.execute("UPDATE settings SET value=%s WHERE key='schema_version'", (version,))
            return version


def check(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """``SchemaMismatch`` unless the database is at ``SCHEMA_VERSION``."""
    version = _version(conn)
    if version is None:
        raise SchemaMismatch("database has no imapd schema: run 'imapd db init' first")
    if version != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"database has imapd schema version {version}, this imapd needs {SCHEMA_VERSION}: "
            + ("run 'imapd db migrate'" if version < SCHEMA_VERSION else "upgrade imapd"))

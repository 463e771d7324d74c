"""The user store in the shared PostgreSQL database (``--store postgresql://…``).

Every frontend on one database sees the same users at once: ``imapd user
add`` on any machine takes effect for the next login everywhere, as the
file store does for one data directory. The protocol is
``imapd.accounts.store.UserStore``; hashing, checking and the dummy-hash
timing are ``imapd.accounts.users.PasswordChecker``, shared with the file.

Rows of the ``users`` table (``imapd.storage.postgres.schema``):

* ``(name, entry)``: ``entry`` is the user's line of the users file,
  ``UserEntry.to_line()`` (``name:{SCHEME}hash[:extra]``), so a database
  and a file can be converted line for line;
* ``scram``: the user's SCRAM-SHA-256 keys as the ``users.scram`` file
  stores them (``{SCRAM-SHA-256}...:binding``), NULL when the password has
  none (SASLprep refused it, or an imported hash). Written in the same
  statement as the password; the binding to the password field still makes
  keys inert if someone edits ``entry`` by hand.

Every call blocks on a database round trip (and ``verify`` on argon2):
the server calls them in a thread. One connection, used by one call at a
time, reconnected when it breaks; a database that cannot be reached is
``imapd.mail.errors.Unavailable`` (IMAP ``NO [UNAVAILABLE]``), a missing or
unknown schema ``SchemaMismatch``. Messages never contain the DSN's password.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Callable, TypeVar

import argon2
import psycopg
from twisted.logger import Logger

from imapd.accounts.scram import ScramKeys, derive_keys
from imapd.accounts.users import (
    ARGON2ID_SCHEME, PasswordChecker, UnknownUser, UserEntry, UserExists, parse_users_file,
    scram_binding, typical_parameters, validate_name, validate_password,
)
from imapd.core.config import redact_dsn
from imapd.core.model import Secret
from imapd.mail.errors import Unavailable
from imapd.storage.postgres import schema

log = Logger(namespace="imapd.accounts")


class UserStoreUnavailable(Unavailable):
    """The database cannot be reached. ``text`` is what an IMAP client sees
    (``NO [UNAVAILABLE]``, nothing about the database); ``detail`` is the
    one line for the operator and the log (host and database, no password)."""

    def __init__(self, detail: str) -> None:
        super().__init__("user database unavailable, try again later")
        self.detail = detail
_T = TypeVar("_T")
Conn = psycopg.Connection[tuple[object, ...]]


def _scram_column(keys: ScramKeys | None, password_field: str) -> str | None:
    """The ``scram`` column for a new password: its keys bound to the
    password field, or NULL when it has none (as the file store does)."""
    return None if keys is None else f"{keys.to_field()}:{scram_binding(password_field)}"


def entry_of(name: str, line: str) -> UserEntry | None:
    """The ``UserEntry`` stored for ``name`` (None if the row is damaged)."""
    parsed = parse_users_file(line)
    entry = parsed[0] if len(parsed) == 1 else None
    return entry if isinstance(entry, UserEntry) and entry.name == name else None


class PostgresUserStore:
    """Users in the ``users`` table of ``dsn`` (see the module docstring).
    ``hasher`` sets the argon2id cost of new hashes (tests pass a cheap one)."""

    def __init__(self, dsn: str, hasher: argon2.PasswordHasher | None = None) -> None:
        self.dsn = dsn
        self.checker = PasswordChecker(hasher)
        self._lock = threading.Lock()
        self._conn: Conn | None = None

    # --- reading -------------------------------------------------------------

    def names(self) -> list[str]:
        rows = self._run(lambda c: c.execute("SELECT name FROM users ORDER BY name").fetchall())
        return [str(row[0]) for row in rows]

    def exists(self, name: str) -> bool:
        return self._entry(name) is not None

    def password_field(self, name: str) -> str | None:
        entry = self._entry(name)
        return None if entry is None else entry.password_field

    def verify(self, name: str, password: Secret) -> bool:
        entry = self._entry(name)
        typical = None
        if entry is None or entry.scheme != ARGON2ID_SCHEME:
            typical = typical_parameters(self._some_argon2_entries())
        return self.checker.check(entry, password, typical)

    def scram_keys(self, name: str) -> ScramKeys | None:
        row = self._run(lambda c: c.execute(
            "SELECT entry, scram FROM users WHERE name = %s", (name,)).fetchone())
        if row is None:
            return None
        entry = entry_of(name, str(row[0]))
        keys_field, _, binding = str(row[1] or "").rpartition(":")
        if entry is None or not keys_field or binding != scram_binding(entry.password_field):
            return None
        return ScramKeys.from_field(keys_field)

    # --- writing -------------------------------------------------------------

    def add(self, name: str, password: Secret) -> None:
        validate_name(name)
        validate_password(password)
        field = self.checker.new_field(password)
        keys = derive_keys(password.value)

        def work(conn: Conn) -> None:
            with conn.transaction():
                inserted = conn.execute(
                    "INSERT INTO users(name, entry, scram) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO NOTHING RETURNING name",
                    (name, UserEntry(name, field).to_line(), _scram_column(keys, field))
                ).fetchone()
                if inserted is None:
                    raise UserExists(f"user {name!r} already exists")

        self._run(work)

    def set_password(self, name: str, password: Secret) -> None:
        validate_password(password)
        field = self.checker.new_field(password)
        keys = derive_keys(password.value)

        def work(conn: Conn) -> None:
            with conn.transaction():
                row = conn.execute("SELECT entry FROM users WHERE name = %s FOR UPDATE",
                                   (name,)).fetchone()
                entry = entry_of(name, str(row[0])) if row is not None else None
                if entry is None:
                    raise UnknownUser(f"no such user: {name!r}")
                conn.execute("UPDATE users SET entry = %s, scram = %s WHERE name = %s",
                             (replace(entry, password_field=field).to_line(),
                              _scram_column(keys, field), name))

        self._run(work)

    def delete(self, name: str) -> None:
        def work(conn: Conn) -> None:
            with conn.transaction():
                gone = conn.execute("DELETE FROM users WHERE name = %s RETURNING name",
                                    (name,)).fetchone()
                if gone is None:
                    raise UnknownUser(f"no such user: {name!r}")

        self._run(work)

    def rename(self, old: str, new: str) -> None:
        """One transaction: the row's name and the name inside ``entry``."""
        validate_name(new)

        def work(conn: Conn) -> None:
            with conn.transaction():
                row = conn.execute("SELECT entry FROM users WHERE name = %s FOR UPDATE",
                                   (old,)).fetchone()
                entry = entry_of(old, str(row[0])) if row is not None else None
                if entry is None:
                    raise UnknownUser(f"no such user: {old!r}")
                moved = conn.execute(
                    "INSERT INTO users(name, entry, scram) SELECT %s, %s, scram FROM users "
                    "WHERE name = %s ON CONFLICT (name) DO NOTHING RETURNING name",
                    (new, replace(entry, name=new).to_line(), old)).fetchone()
                if moved is None:
                    raise UserExists(f"user {new!r} already exists")
                conn.execute("DELETE FROM users WHERE name = %s", (old,))

        self._run(work)

    def import_entries(self, entries: list[UserEntry], replace_existing: bool) -> list[str]:
        """One transaction for the whole import (all or nothing, as the
        file's one atomic rewrite). Imported users have no SCRAM keys until
        their password is set; a replaced user's old keys are removed."""
        for entry in entries:
            validate_name(entry.name)

        def work(conn: Conn) -> list[str]:
            skipped: list[str] = []
            with conn.transaction():
                for entry in entries:
                    if replace_existing:
                        conn.execute(
                            "INSERT INTO users(name, entry) VALUES (%s, %s) ON CONFLICT (name) "
                            "DO UPDATE SET entry = EXCLUDED.entry, scram = NULL",
                            (entry.name, entry.to_line()))
                        continue
                    added = conn.execute(
                        "INSERT INTO users(name, entry) VALUES (%s, %s) "
                        "ON CONFLICT (name) DO NOTHING RETURNING name",
                        (entry.name, entry.to_line())).fetchone()
                    if added is None:
                        skipped.append(entry.name)
            return skipped

        return self._run(work)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- internals -----------------------------------------------------------

    def _entry(self, name: str) -> UserEntry | None:
        row = self._run(lambda c: c.execute(
            "SELECT entry FROM users WHERE name = %s", (name,)).fetchone())
        return None if row is None else entry_of(name, str(row[0]))

    def _some_argon2_entries(self) -> list[UserEntry]:
        """One argon2id user, whose parameters the dummy hash copies."""
        rows = self._run(lambda c: c.execute(
            "SELECT name, entry FROM users WHERE entry LIKE %s "
            "ORDER BY name LIMIT 1", ("%:{" + ARGON2ID_SCHEME + "}%",)).fetchall())
        found = [entry_of(str(name), str(line)) for name, line in rows]
        return [entry for entry in found if entry is not None]

    def _connect(self) -> Conn:
        try:
            conn: Conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as error:
            raise self._unavailable(error) from None
        try:
            schema.check(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, work: Callable[[Conn], _T]) -> _T:
        """``work`` on the connection, one call at a time. A connection
        found broken is replaced once before ``work`` runs again (so a
        database restart costs no failed login); ``work`` that failed on a
        live connection is not repeated (a write may have committed)."""
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                conn = self._conn
                try:
                    return work(conn)
                except psycopg.OperationalError as error:
                    broken = conn.closed or conn.broken
                    self._conn = None
                    conn.close()
                    if attempt == 2 or not broken:
                        raise self._unavailable(error) from None
            raise AssertionError("unreachable")

    def _unavailable(self, error: Exception) -> UserStoreUnavailable:
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else type(error).__name__
        failure = UserStoreUnavailable(f"user database unavailable: {redact_dsn(first_line)}")
        log.warn("imapd: store {store}: {detail}", store=redact_dsn(self.dsn),
                 detail=failure.detail)
        return failure

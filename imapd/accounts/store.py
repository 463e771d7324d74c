"""The user store protocol: what ``imapd user ...`` and the login checks
(``imapd.accounts.authenticator``) need of wherever users live.

Two implementations, chosen by ``--store`` in ``imapd.app.open_user_store``:

* ``imapd.accounts.users.UserDatabase``: the passwd-like file in the data
  directory (SQLite store; flock + atomic rewrite, re-read on change);
* ``imapd.storage.postgres.users.PostgresUserStore``: the ``users`` table of
  the shared PostgreSQL database, so every frontend on it sees the same
  users at once.

Both keep the same line format (``UserEntry.to_line``), the same argon2id
hashing and dummy-hash timing (``PasswordChecker``) and the same SCRAM key
binding to the current password field. Every call may block (file locks,
fsync, a database round trip, argon2): the server calls them in a thread.
Refusals are ``UserDatabaseError`` (``UnknownUser``, ``UserExists``) with a
message for people.
"""

from __future__ import annotations

from typing import Protocol

from imapd.accounts.scram import ScramKeys
from imapd.accounts.users import UserEntry
from imapd.core.model import Secret


class UserStore(Protocol):
    """Users, their password hashes and SCRAM keys."""

    def names(self) -> list[str]:
        """Every user name (the file's order; the database's name order)."""
        ...

    def exists(self, name: str) -> bool: ...

    def password_field(self, name: str) -> str | None:
        """The user's stored ``{SCHEME}hash`` field as it is now (None: no
        such user); the auth cache (``imapd.accounts.authcache``) keys on it."""
        ...

    def verify(self, name: str, password: Secret) -> bool:
        """True when the user exists and the password matches; an unknown
        user costs one argon2 check too (``PasswordChecker.check``)."""
        ...

    def scram_keys(self, name: str) -> ScramKeys | None:
        """The user's SCRAM-SHA-256 keys when they belong to the current
        password, else None."""
        ...

    def add(self, name: str, password: Secret) -> None:
        """``UserExists`` when the name is taken."""
        ...

    def set_password(self, name: str, password: Secret) -> None:
        """``UnknownUser`` when there is no such user."""
        ...

    def delete(self, name: str) -> None:
        """``UnknownUser`` when there is no such user."""
        ...

    def rename(self, old: str, new: str) -> None:
        """The user ``old`` is called ``new`` from now on, password and
        SCRAM keys kept (``imapd user rename``). ``UnknownUser``,
        ``UserExists`` (``new`` is taken)."""
        ...

    def import_entries(self, entries: list[UserEntry], replace_existing: bool) -> list[str]:
        """Add imported users in one step; the names skipped as existing."""
        ...

    def close(self) -> None:
        """Release connections (the file store holds none)."""
        ...

"""Users of a test server, kept in memory (``TestUsers``).

It is an ``imapd.accounts.store.UserStore`` like the users file of a real
server, so LOGIN, AUTHENTICATE PLAIN and SCRAM-SHA-256 (RFC 5802, RFC
7677) go through the server's real authenticator. What differs is cost,
on purpose, because this is a test kit: passwords are kept as given and
compared in constant time (no argon2 per user), and SCRAM keys are
derived once per password with the lowest iteration count RFC 7677 §4
allows (4096), not the production 10,000.

Never use it for a server real users log in to.
"""

from __future__ import annotations

import hmac
import itertools
import threading
from dataclasses import dataclass

from imapd.accounts import schemes
from imapd.accounts.scram import ScramKeys, derive_keys
from imapd.accounts.users import UnknownUser, UserEntry, UserExists, validate_name, validate_password
from imapd.core.model import Secret

SCRAM_ITERATIONS = 4096  # RFC 7677 §4: the minimum; enough for a throw-away server
TEST_SCHEME = "IMAPD-TEST"  # the scheme name of password fields set through this store

_generations = itertools.count(1)


@dataclass
class _User:
    # The password as given (add / set_password), or None for an imported
    # entry, which is checked against its hashed field instead.
    password: bytes | None
    field: str
    scram: ScramKeys | None = None


class TestUsers:
    """An in-memory ``UserStore``; thread-safe (the server calls it from
    worker threads). ``add(name, Secret(b"pw"))`` or, simpler,
    ``add_user(name, "pw")``."""

    __test__ = False  # not a test class, despite the name (pytest collects Test*)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, _User] = {}

    # --- the test kit's own shortcut -------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add ``name`` with the text ``password`` (``UserExists`` if taken)."""
        self.add(name, Secret(password.encode("utf-8")))

    # --- UserStore -------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return list(self._users)

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._users

    def password_field(self, name: str) -> str | None:
        """An opaque field that changes with each new password (the auth
        cache keys on it); it never contains the password."""
        with self._lock:
            user = self._users.get(name)
            return None if user is None else user.field

    def verify(self, name: str, password: Secret) -> bool:
        """Constant-time comparison with the stored password (or the
        imported hash's own verifier)."""
        with self._lock:
            user = self._users.get(name)
        if user is None:
            hmac.compare_digest(password.value, password.value)  # same work either way
            return False
        if user.password is not None:
            return hmac.compare_digest(user.password, password.value)
        entry = UserEntry(name, user.field)
        verifier = schemes.VERIFIERS.get(entry.scheme or "")
        return verifier is not None and verifier(entry.hash_data, password.value)

    def scram_keys(self, name: str) -> ScramKeys | None:
        """SCRAM-SHA-256 keys of the current password (derived on first
        use); None for imported hashed entries (SCRAM needs the password)."""
        with self._lock:
            user = self._users.get(name)
            if user is None or user.password is None:
                return None
            if user.scram is None:
                user.scram = derive_keys(user.password, SCRAM_ITERATIONS)
            return user.scram

    def add(self, name: str, password: Secret) -> None:
        validate_name(name)
        validate_password(password)
        with self._lock:
            if name in self._users:
                raise UserExists(f"user {name!r} already exists")
            self._users[name] = _User(password.value, _new_field())

    def set_password(self, name: str, password: Secret) -> None:
        validate_password(password)
        with self._lock:
            if name not in self._users:
                raise UnknownUser(f"no such user: {name!r}")
            self._users[name] = _User(password.value, _new_field())

    def delete(self, name: str) -> None:
        with self._lock:
            if self._users.pop(name, None) is None:
                raise UnknownUser(f"no such user: {name!r}")

    def rename(self, old: str, new: str) -> None:
        validate_name(new)
        with self._lock:
            if old not in self._users:
                raise UnknownUser(f"no such user: {old!r}")
            if new in self._users:
                raise UserExists(f"user {new!r} already exists")
            self._users[new] = self._users.pop(old)

    def import_entries(self, entries: list[UserEntry], replace_existing: bool) -> list[str]:
        """Entries with a hashed password field (``{SHA512-CRYPT}...``):
        checked by that scheme's verifier."""
        skipped: list[str] = []
        with self._lock:
            for entry in entries:
                if entry.name in self._users and not replace_existing:
                    skipped.append(entry.name)
                else:
                    self._users[entry.name] = _User(None, entry.password_field)
        return skipped

    def close(self) -> None:
        """Nothing to release."""


def _new_field() -> str:
    return "{" + TEST_SCHEME + "}" + str(next(_generations))

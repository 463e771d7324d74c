"""The auth cache: a password that was verified a moment ago is accepted
again without another argon2 verification (issue 17; Dovecot's
``auth_cache_ttl``). Every LOGIN otherwise costs 0.35-0.46 s of argon2id
on the default parameters, which clients that reconnect for every job
(curl, fetchmail, phones, dsync) pay again and again.

What is kept, in this process's memory only: for each (user name, the
user's stored password field *as it is now*), an HMAC-SHA256 of the
password under a random key made when the process starts, and when the
entry expires. Never the password, and nothing that is useful outside
this process (the key is never written anywhere).

Why this is safe:

* The store is asked for the user's stored password field on every
  login, the cached ones included (the file store stats its file and
  re-reads it when the CLI rewrote it; PostgreSQL is asked each time).
  ``imapd user passwd`` writes a new field (a fresh argon2 salt), ``user
  del`` removes it: either way the key no longer matches, so both
  invalidate the cache by construction although the CLI is another
  process, with no message to the server.
* Only successes are cached. A wrong password misses (its HMAC differs)
  and takes the full path: argon2 and, in the ``Authenticator``, the
  failed-login delay and the penalty. A cached success still waits out a
  penalty first (the Authenticator's gate 2 comes before the check).
* Bounded: entries live ``ttl`` seconds (0 turns the cache off) and at
  most ``max_entries`` are kept (least recently used leaves first).

Plaintext mechanisms only (IMAP LOGIN, SASL PLAIN, POP3 USER/PASS and
AUTH PLAIN all call ``verify``). SCRAM (RFC 5802) never hashes the password
on the server: it compares against stored keys, already cheap, so it
needs no cache.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from typing import Callable

from imapd.accounts.scram import ScramKeys
from imapd.accounts.store import UserStore
from imapd.accounts.users import UserEntry
from imapd.core.model import Secret

DEFAULT_TTL = 300.0
DEFAULT_MAX_ENTRIES = 10_000


class AuthCache:
    """(name, stored password field) -> (HMAC of the password, expiry).
    Thread-safe: logins verify in the reactor's thread pool."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES,
                 now: Callable[[], float] | None = None) -> None:
        import time

        self.ttl = ttl
        self.max_entries = max_entries
        self.now = now or time.monotonic
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[bytes, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _mac(self, name: str, password: Secret) -> bytes:
        # The name goes into the MAC too, so equal passwords of two users
        # never share a value.
        message = name.encode("utf-8", "surrogateescape") + b"\0" + password.value
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def hit(self, name: str, field: str, password: Secret) -> bool:
        """True when ``password`` was accepted for ``name`` with this very
        stored ``field`` less than ``ttl`` seconds ago."""
        if not self.enabled:
            return False
        mac = self._mac(name, password)
        with self._lock:
            found = self._entries.get((name, field))
            if found is None:
                return False
            stored, expires = found
            if self.now() >= expires:
                del self._entries[(name, field)]
                return False
            if not hmac.compare_digest(stored, mac):
                return False
            self._entries.move_to_end((name, field))
            return True

    def remember(self, name: str, field: str, password: Secret) -> None:
        """Record a verified success (never call this for a failure)."""
        if not self.enabled:
            return
        mac = self._mac(name, password)
        with self._lock:
            self._entries[(name, field)] = (mac, self.now() + self.ttl)
            self._entries.move_to_end((name, field))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class CachedLogins:
    """A ``UserStore`` whose ``verify`` consults ``cache`` first; every
    other call goes to ``store`` unchanged. The server wraps the store it
    logs in against (``imapd.app.open_accounts``); the CLI never does."""

    def __init__(self, store: UserStore, cache: AuthCache) -> None:
        self.store = store
        self.cache = cache

    def verify(self, name: str, password: Secret) -> bool:
        """The stored field is read first, on every call (so the CLI's
        changes count at once); a miss verifies in full and remembers
        a success under the field read before it (if the password changed
        in between, that key is dead already: harmless)."""
        if not self.cache.enabled:
            return self.store.verify(name, password)
        field = self.store.password_field(name)
        if field is not None and self.cache.hit(name, field, password):
            return True
        ok = self.store.verify(name, password)
        if ok and field is not None:
            self.cache.remember(name, field, password)
        return ok

    def password_field(self, name: str) -> str | None:
        return self.store.password_field(name)

    def names(self) -> list[str]:
        return self.store.names()

    def exists(self, name: str) -> bool:
        return self.store.exists(name)

    def scram_keys(self, name: str) -> ScramKeys | None:
        return self.store.scram_keys(name)

    def add(self, name: str, password: Secret) -> None:
        self.store.add(name, password)

    def set_password(self, name: str, password: Secret) -> None:
        self.store.set_password(name, password)

    def delete(self, name: str) -> None:
        self.store.delete(name)

    def rename(self, old: str, new: str) -> None:
        self.store.rename(old, new)

    def import_entries(self, entries: list[UserEntry], replace_existing: bool) -> list[str]:
        return self.store.import_entries(entries, replace_existing)

    def close(self) -> None:
        self.store.close()

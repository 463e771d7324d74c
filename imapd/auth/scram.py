"""SCRAM-SHA-256 (RFC 7677, RFC 5802) server side, on the ``scramp`` package.

SCRAM never sends the password, but the server must keep, per user, the
salt, iteration count, StoredKey and ServerKey derived from it (RFC 5802
§3). They can only be derived from the password itself, so a user can use
SCRAM once their password was set (``imapd user add`` / ``user passwd``)
with this version; users imported from other hashes can log in with LOGIN
or PLAIN until then. ``imapd.users`` keeps the keys beside the password
hash, tied to it (see ``UserDatabase.scram_keys``).

Unknown users, and users without keys, get a plausible exchange with a salt
derived from the name and a per-server secret, and fail at the proof (RFC
5802 §5.1 recommends this), so SCRAM does not reveal which accounts exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Callable

import scramp  # type: ignore[import-untyped]
from scramp.utils import ServerError  # type: ignore[import-untyped]

MECHANISM = "SCRAM-SHA-256"
SCHEME = "SCRAM-SHA-256"  # Dovecot's password scheme name for the same data
ITERATIONS = 10_000  # RFC 7677 §4: at least 4096
_SALT_SIZE = 16


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """RFC 5802 §3 server-side credentials."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def to_field(self) -> str:
        """Dovecot's ``{SCRAM-SHA-256}iter,salt,storedkey,serverkey`` form."""
        parts = [str(self.iterations)] + [
            base64.b64encode(v).decode("ascii") for v in (self.salt, self.stored_key, self.server_key)
        ]
        return "{" + SCHEME + "}" + ",".join(parts)

    @classmethod
    def from_field(cls, field: str) -> ScramKeys | None:
        prefix = "{" + SCHEME + "}"
        if not field.startswith(prefix):
            return None
        parts = field[len(prefix):].split(",")
        if len(parts) != 4 or not parts[0].isdigit():
            return None
        try:
            salt, stored, server = (base64.b64decode(p, validate=True) for p in parts[1:])
        except (binascii.Error, ValueError):
            return None
        if int(parts[0]) < 4096 or len(stored) != 32 or len(server) != 32:
            return None
        return cls(int(parts[0]), salt, stored, server)


def derive_keys(password: bytes, iterations: int = ITERATIONS) -> ScramKeys | None:
    """The keys for ``password`` (SASLprep'd by scramp, RFC 5802 §2.2), or
    None when it cannot be used with SCRAM (not UTF-8, or refused by
    SASLprep)."""
    try:
        text = password.decode("utf-8")
        salt, stored, server, count = scramp.ScramMechanism(MECHANISM).make_auth_info(
            text, iteration_count=iterations
        )
    except (UnicodeDecodeError, scramp.ScramException):
        return None
    return ScramKeys(count, salt, stored, server)


_SERVER_SECRET = os.urandom(32)  # per process: decoy salts for unknown users


def decoy_keys(username: str) -> ScramKeys:
    """Credentials that no password matches, with a stable salt per name."""
    salt = hmac.new(_SERVER_SECRET, username.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return ScramKeys(ITERATIONS, salt.digest()[:_SALT_SIZE], os.urandom(32), os.urandom(32))


class ScramFailed(Exception):
    """The exchange failed: ``malformed`` when the client broke the
    protocol (BAD), else a wrong proof or unknown user (NO)."""

    def __init__(self, malformed: bool) -> None:
        super().__init__("malformed SCRAM message" if malformed else "SCRAM proof rejected")
        self.malformed = malformed


class ScramExchange:
    """One server-side SCRAM-SHA-256 exchange (no channel binding: the
    ``-PLUS`` variant is not offered). Call in order: ``first(client_first)``
    -> server-first; ``final(client_final)`` -> server-final on success."""

    def __init__(self, lookup: Callable[[str], ScramKeys | None]) -> None:
        self._lookup = lookup
        self.username: str | None = None
        self._real = False
        self._server = scramp.ScramMechanism(MECHANISM).make_server(self._auth_info)

    def _auth_info(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        self.username = username
        keys = self._lookup(username)
        self._real = keys is not None
        if keys is None:
            keys = decoy_keys(username)
        return keys.salt, keys.stored_key, keys.server_key, keys.iterations

    def first(self, client_first: bytes) -> bytes:
        """Take client-first-message (RFC 5802 §7); return server-first."""
        try:
            self._server.set_client_first(client_first.decode("utf-8"))
            return str(self._server.get_server_first()).encode("utf-8")
        except (UnicodeDecodeError, scramp.ScramException):
            raise ScramFailed(malformed=True) from None

    def final(self, client_final: bytes) -> bytes:
        """Check client-final-message; return server-final (``v=...``)."""
        try:
            self._server.set_client_final(client_final.decode("utf-8"))
        except UnicodeDecodeError:
            raise ScramFailed(malformed=True) from None
        except scramp.ScramException as error:
            proof_failed = getattr(error, "server_error", None) is ServerError.INVALID_PROOF
            raise ScramFailed(malformed=not proof_failed) from None
        if not self._real:  # decoy keys cannot match, but never trust that
            raise ScramFailed(malformed=False)
        return str(self._server.get_server_final()).encode("utf-8")

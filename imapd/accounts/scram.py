"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, server side (RFC 7677, RFC 5802).

SCRAM never sends the password, but the server must keep, per user, the
salt, iteration count, StoredKey and ServerKey derived from it (RFC 5802
§3). They can only be derived from the password itself, so a user can use
SCRAM once their password was set (``imapd user add`` / ``user passwd``)
with this version; users imported from other hashes can log in with LOGIN
or PLAIN until then. ``imapd.accounts.users`` keeps the keys beside the password
hash, tied to it (see ``UserDatabase.scram_keys``).

Unknown users, and users without keys, get a plausible exchange with a salt
derived from the name and a per-server secret, and fail at the proof (RFC
5802 §5.1 recommends this), so SCRAM does not reveal which accounts exist.

The messages are parsed and checked here, not by ``scramp``: scramp 1.5
refuses every authorization identity (``a=`` in the GS2 header, which GNU
SASL, and so Debian's mutt, always sends) and the ``tls-exporter`` channel
binding, and it rebuilds the client's final message from parsed pieces, so
it cannot be wrapped (the proof covers the bytes the client sent). scramp
still derives the keys and does SASLprep (RFC 4013) on names; everything
else is the RFC 5802 §3 arithmetic on ``hashlib``/``hmac``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Callable, Mapping

import scramp  # type: ignore[import-untyped]
from scramp.utils import saslprep  # type: ignore[import-untyped]

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"  # RFC 5802 §6: with channel binding
SCHEME = "SCRAM-SHA-256"  # Dovecot's password scheme name for the same data
ITERATIONS = 10_000  # RFC 7677 §4: at least 4096
_SALT_SIZE = 16
_KEY_SIZE = 32  # SHA-256

# Channel binding types (RFC 5929 §4, RFC 9266 §2). tls-unique is not
# defined for TLS 1.3 (RFC 9266 §1) and is not offered on TLS 1.2 either.
TLS_EXPORTER = "tls-exporter"
TLS_SERVER_END_POINT = "tls-server-end-point"
TLS_UNIQUE = "tls-unique"


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
        if int(parts[0]) < 4096 or len(stored) != _KEY_SIZE or len(server) != _KEY_SIZE:
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


class Failure(enum.Enum):
    """How a failed exchange is answered (``imapd.imap.commands.auth``)."""

    MALFORMED = "malformed"  # BAD: the client broke RFC 5802 §7's grammar
    REFUSED = "refused"  # NO [AUTHENTICATIONFAILED] with the reason
    AUTHORIZATION = "authorization"  # NO [AUTHORIZATIONFAILED] (RFC 5530)
    PROOF = "proof"  # like a wrong password: penalty, delay, no detail


class ScramFailed(Exception):
    """The exchange failed; ``kind`` says how to answer, ``reason`` why
    (sent to the client except for ``PROOF``)."""

    def __init__(self, kind: Failure, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _malformed(reason: str) -> ScramFailed:
    return ScramFailed(Failure.MALFORMED, reason)


def _refused(reason: str) -> ScramFailed:
    return ScramFailed(Failure.REFUSED, reason)


# --- RFC 5802 §7 grammar ----------------------------------------------------------

_ALPHA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_CB_NAME_CHARS = _ALPHA | frozenset("0123456789.-")


def unescape_saslname(value: str, what: str) -> str:
    """RFC 5802 §5.1 / §7 ``saslname``: ``,`` and ``=`` travel as ``=2C``
    and ``=3D``; any other ``=`` fails the exchange. Non-empty."""
    if not value:
        raise _malformed(f"empty {what}")
    out: list[str] = []
    index = 0
    while index < len(value):
        char = value[index]
        if char == "=":
            escape = value[index:index + 3]
            if escape not in ("=2C", "=3D"):
                raise _malformed(f"{what} has '=' not followed by 2C or 3D")
            out.append("," if escape == "=2C" else "=")
            index += 3
            continue
        if char == "\0":
            raise _malformed(f"{what} contains NUL")
        out.append(char)
        index += 1
    return "".join(out)


def prepare_name(value: str, what: str) -> str:
    """Unescape, then SASLprep (RFC 4013) as scramp implements it (the
    stored-strings profile: unassigned code points are refused too)."""
    try:
        prepared: str = saslprep(unescape_saslname(value, what))
    except scramp.ScramException as error:
        raise _malformed(f"{what} refused by SASLprep ({error.args[0]})") from None
    if not prepared:
        raise _malformed(f"{what} is empty after SASLprep")
    return prepared


@dataclass(frozen=True, slots=True)
class Gs2Header:
    """``gs2-header = gs2-cbind-flag "," [ authzid ] ","`` (RFC 5802 §7).
    ``raw`` is the header exactly as sent: ``c=`` must reproduce it."""

    flag: str  # "n", "y" or "p"
    cb_name: str | None
    authzid: str | None  # as sent (escaped saslname); see prepare_name
    raw: bytes


@dataclass(frozen=True, slots=True)
class ClientFirst:
    header: Gs2Header
    bare: str  # client-first-message-bare, as sent (part of AuthMessage)
    username: str  # unescaped and SASLprep'd
    nonce: str


def _text(message: bytes, what: str) -> str:
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"{what} is not UTF-8") from None
    if "\0" in text:
        raise _malformed(f"{what} contains NUL")
    return text


def parse_gs2_header(flag: str, authzid: str, raw: bytes) -> Gs2Header:
    """The two fields before the second comma of client-first-message."""
    cb_name = None
    if flag.startswith("p="):
        cb_name = flag[2:]
        if not cb_name or not set(cb_name) <= _CB_NAME_CHARS:
            raise _malformed("bad channel binding name in the GS2 header")
        flag = "p"
    elif flag not in ("n", "y"):
        raise _malformed("GS2 header must start with n, y or p=")
    if authzid and not authzid.startswith("a="):
        raise _malformed("GS2 header: the authorization identity must be a=name")
    return Gs2Header(flag, cb_name, authzid[2:] if authzid else None, raw)


def _attributes(text: str, what: str) -> list[tuple[str, str]]:
    """``attr-val`` pairs (``ALPHA "=" value``) separated by commas."""
    pairs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or part[0] not in _ALPHA:
            raise _malformed(f"{what}: attributes must be letter=value")
        pairs.append((part[0], part[2:]))
    return pairs


def _printable_nonce(value: str, what: str) -> str:
    """``printable = %x21-2B / %x2D-7E`` (RFC 5802 §7), at least one."""
    if not value or any(not ("!" <= c <= "~") or c == "," for c in value):
        raise _malformed(f"{what} nonce must be printable ASCII without commas")
    return value


def parse_client_first(message: bytes) -> ClientFirst:
    """``client-first-message = gs2-header client-first-message-bare``."""
    text = _text(message, "client-first-message")
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise _malformed("client-first-message has no GS2 header")
    flag, authzid, bare = parts
    header = parse_gs2_header(flag, authzid, (flag + "," + authzid + ",").encode("utf-8"))
    pairs = _attributes(bare, "client-first-message")
    if pairs and pairs[0][0] == "m":
        # RFC 5802 §5.1: a mandatory extension we do not know fails the exchange.
        raise _refused("SCRAM extension m= is not supported")
    if len(pairs) < 2 or pairs[0][0] != "n" or pairs[1][0] != "r":
        raise _malformed("client-first-message must be n=user,r=nonce")
    username = prepare_name(pairs[0][1], "user name")
    return ClientFirst(header, bare, username, _printable_nonce(pairs[1][1], "client"))


def _strict_base64(value: str, what: str) -> bytes:
    if len(value) % 4:
        raise _malformed(f"{what} is not base64")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{what} is not base64") from None


@dataclass(frozen=True, slots=True)
class ClientFinal:
    channel_binding: bytes  # c=, decoded
    nonce: str
    without_proof: str  # client-final-message-without-proof, as sent
    proof: bytes


def parse_client_final(message: bytes) -> ClientFinal:
    """``c=base64,r=nonce[,extensions],p=base64`` (RFC 5802 §7)."""
    text = _text(message, "client-final-message")
    without_proof, separator, proof = text.rpartition(",p=")
    if not separator:
        raise _malformed("client-final-message has no proof")
    pairs = _attributes(without_proof, "client-final-message")
    if len(pairs) < 2 or pairs[0][0] != "c" or pairs[1][0] != "r":
        raise _malformed("client-final-message must start c=...,r=...")
    binding = _strict_base64(pairs[0][1], "channel binding (c=)")
    decoded_proof = _strict_base64(proof, "proof")
    if len(decoded_proof) != _KEY_SIZE:
        raise _malformed("proof has the wrong length")
    return ClientFinal(binding, pairs[1][1], without_proof, decoded_proof)


# --- the exchange -------------------------------------------------------------------


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def new_server_nonce() -> str:
    """Printable, no commas (base64 of 18 random bytes has neither , nor =)."""
    return base64.b64encode(secrets.token_bytes(18)).decode("ascii")


class ScramExchange:
    """One server-side exchange. Call in order: ``first(client_first)`` ->
    server-first; ``final(client_final)`` -> server-final on success.

    ``plus``: the client chose SCRAM-SHA-256-PLUS. ``bindings``: the channel
    binding data of this connection by type (RFC 5929, RFC 9266), empty
    when it is not TLS. ``plus_offered``: SCRAM-SHA-256-PLUS is advertised
    on this connection, so a client that says ``y`` was downgraded."""

    def __init__(
        self,
        lookup: Callable[[str], ScramKeys | None],
        *,
        plus: bool = False,
        bindings: Mapping[str, bytes] | None = None,
        plus_offered: bool = False,
        server_nonce: Callable[[], str] = new_server_nonce,
    ) -> None:
        self._lookup = lookup
        self._plus = plus
        self._bindings = dict(bindings or {})
        self._plus_offered = plus_offered
        self._server_nonce = server_nonce
        self.username: str | None = None
        self._first: ClientFirst | None = None
        self._server_first = ""
        self._nonce = ""
        self._keys: ScramKeys | None = None
        self._real = False
        self._pending: ClientFirst | None = None

    def first(self, client_first: bytes) -> bytes:
        """Take client-first-message (RFC 5802 §7); return server-first.
        The keys come from ``lookup`` on the calling thread; a server whose
        lookup blocks calls ``begin`` and ``answer_first`` instead."""
        return self.answer_first(self._lookup(self.begin(client_first)))

    def begin(self, client_first: bytes) -> str:
        """The first half of ``first``: check client-first-message and
        return the (SASLprep'd) user name whose keys ``answer_first`` needs."""
        if self._first is not None or self.username is not None:
            raise _malformed("client-first-message sent twice")
        first = parse_client_first(client_first)
        self._check_binding_choice(first.header)
        if first.header.authzid is not None:
            authzid = prepare_name(first.header.authzid, "authorization identity")
            if authzid != first.username:  # no proxy logins, as with PLAIN
                raise ScramFailed(Failure.AUTHORIZATION, "authorization identity not allowed")
        self.username = first.username
        self._pending = first
        return first.username

    def answer_first(self, keys: ScramKeys | None) -> bytes:
        """The second half of ``first``: server-first-message, with the
        user's ``keys`` or, when None, decoy keys (RFC 5802 §5.1: an
        unknown user is answered like a known one)."""
        first = self._pending
        if first is None or self._first is not None:
            raise _malformed("client-first-message expected")
        self._real = keys is not None
        self._keys = keys if keys is not None else decoy_keys(first.username)
        self._first = first
        self._nonce = first.nonce + self._server_nonce()
        salt = base64.b64encode(self._keys.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={self._keys.iterations}"
        return self._server_first.encode("ascii")

    def _check_binding_choice(self, header: Gs2Header) -> None:
        """RFC 5802 §6: the flag must fit the mechanism and the connection."""
        if self._plus:
            if header.flag != "p":
                raise _refused(f"{MECHANISM_PLUS} needs channel binding (p=type)")
            assert header.cb_name is not None
            if header.cb_name not in self._bindings:
                offered = " or ".join(sorted(self._bindings)) or "none on this connection"
                raise _refused(
                    f"channel binding type {header.cb_name} is not supported here; use {offered}"
                )
        elif header.flag == "p":
            raise _refused(f"channel binding needs {MECHANISM_PLUS}")
        elif header.flag == "y" and self._plus_offered and self._bindings:
            # The client believes the server cannot bind, but it can and
            # said so: someone removed -PLUS from the capability list.
            raise _refused(f"channel binding is supported here: use {MECHANISM_PLUS}")

    def final(self, client_final: bytes) -> bytes:
        """Check client-final-message; return server-final (``v=...``)."""
        first, keys = self._first, self._keys
        if first is None or keys is None:
            raise _malformed("client-final-message before client-first-message")
        final = parse_client_final(client_final)
        if final.nonce != self._nonce:
            raise _malformed("nonce does not match")
        expected = first.header.raw
        if first.header.flag == "p":
            assert first.header.cb_name is not None
            expected += self._bindings[first.header.cb_name]
        if not hmac.compare_digest(final.channel_binding, expected):
            raise _refused("channel binding (c=) does not match this connection")
        auth_message = ",".join((first.bare, self._server_first, final.without_proof)).encode("utf-8")
        signature = _hmac(keys.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(final.proof, signature))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), keys.stored_key):
            raise ScramFailed(Failure.PROOF, "proof rejected")
        if not self._real:  # decoy keys cannot match, but never trust that
            raise ScramFailed(Failure.PROOF, "proof rejected")
        verifier = base64.b64encode(_hmac(keys.server_key, auth_message)).decode("ascii")
        return f"v={verifier}".encode("ascii")

"""Password schemes of Dovecot passwd-files, so operators can migrate
(``imapd user import-passwd``). Verification only: new passwords are always
argon2id (``imapd.accounts.users``).

Every scheme is checked by a well-kept library, never by our own crypto:

========================  ===========================================================
``{ARGON2ID}``            argon2-cffi (the reference implementation); also ``{ARGON2I}``
``{BLF-CRYPT}``           the ``bcrypt`` package (pyca); ``$2a$``, ``$2b$``, ``$2y$``
``{SHA512-CRYPT}``        the system's libcrypt (libxcrypt / glibc), through the
``{SHA256-CRYPT}``        standard ``crypt`` module (Python 3.11, 3.12) or its
                          maintained copy ``crypt_r`` (Python 3.13+, where ``crypt``
                          was removed); ``$6$`` / ``$5$`` only
``{SSHA512}``             ``hashlib``: the scheme *is* base64(SHA-512(password +
                          salt) + salt), nothing more; compared in constant time
``{PLAIN}``               stored in clear text: UNSAFE, accepted only so that a
                          migration can start; compared in constant time
========================  ===========================================================

Dovecot's ``{CRYPT}`` (and a hash without a scheme) is the system crypt():
it is accepted when the hash is one of the strong formats above (``$6$``,
``$5$``, ``$2y$``...) and mapped to that scheme. DES and MD5 crypt, plain
SHA-1/MD5 and other weak schemes are refused at import: those users need a
new password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import warnings
from typing import Callable

import argon2
import argon2.exceptions
import bcrypt

Verifier = Callable[[str, bytes], bool]  # (hash data after {SCHEME}, password) -> matches

ARGON2ID = "ARGON2ID"
ARGON2I = "ARGON2I"
BLF_CRYPT = "BLF-CRYPT"
SHA512_CRYPT = "SHA512-CRYPT"
SHA256_CRYPT = "SHA256-CRYPT"
SSHA512 = "SSHA512"
PLAIN = "PLAIN"

# Dovecot's other names for the same schemes.
ALIASES = {"CLEARTEXT": PLAIN, "CLEAR": PLAIN, "BLF": BLF_CRYPT}

_BCRYPT_HASH = re.compile(r"\A\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}\Z")
_SHA_CRYPT_HASH = {
    SHA512_CRYPT: re.compile(r"\A\$6\$(rounds=[0-9]{1,9}\$)?[^$:\n]{0,16}\$[./A-Za-z0-9]{86}\Z"),
    SHA256_CRYPT: re.compile(r"\A\$5\$(rounds=[0-9]{1,9}\$)?[^$:\n]{0,16}\$[./A-Za-z0-9]{43}\Z"),
}
_ARGON2_PREFIX = {ARGON2ID: "$argon2id$", ARGON2I: "$argon2i$"}
BCRYPT_MAX_PASSWORD = 72  # bcrypt uses the first 72 bytes, by definition


def _load_crypt() -> Callable[[str, str], str | None]:
    """libcrypt's crypt(3): the stdlib module where it still exists (it is
    deprecated in 3.11 and 3.12, hence the silenced warning), else crypt_r."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt as module
    except ImportError:  # Python >= 3.13
        import crypt_r as module  # type: ignore[import-not-found, no-redef]
    function: Callable[[str, str], str | None] = module.crypt
    return function


_crypt = _load_crypt()


def verify_argon2(hash_data: str, password: bytes, variant: str = ARGON2ID) -> bool:
    if not hash_data.startswith(_ARGON2_PREFIX[variant]):
        return False
    try:
        # Verification takes its parameters from the hash itself.
        return argon2.PasswordHasher().verify(hash_data, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def verify_bcrypt(hash_data: str, password: bytes) -> bool:
    if not _BCRYPT_HASH.match(hash_data):
        return False
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hash_data.encode("ascii"))
    except ValueError:
        return False


def _verify_sha_crypt(scheme: str, hash_data: str, password: bytes) -> bool:
    if not _SHA_CRYPT_HASH[scheme].match(hash_data):
        return False  # never let another crypt() format (DES!) through
    try:
        computed = _crypt(password.decode("utf-8"), hash_data)
    except (UnicodeDecodeError, ValueError):  # not UTF-8, or a NUL byte
        return False
    if not computed:
        return False
    return hmac.compare_digest(computed.encode("ascii"), hash_data.encode("ascii"))


def verify_sha512_crypt(hash_data: str, password: bytes) -> bool:
    return _verify_sha_crypt(SHA512_CRYPT, hash_data, password)


def verify_sha256_crypt(hash_data: str, password: bytes) -> bool:
    return _verify_sha_crypt(SHA256_CRYPT, hash_data, password)


def _decode_ssha512(hash_data: str) -> tuple[bytes, bytes] | None:
    try:
        raw = base64.b64decode(hash_data, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= hashlib.sha512().digest_size:
        return None  # no salt: not SSHA512
    return raw[:64], raw[64:]


def verify_ssha512(hash_data: str, password: bytes) -> bool:
    decoded = _decode_ssha512(hash_data)
    if decoded is None:
        return False
    digest, salt = decoded
    return hmac.compare_digest(hashlib.sha512(password + salt).digest(), digest)


def verify_plain(hash_data: str, password: bytes) -> bool:
    return hmac.compare_digest(hash_data.encode("utf-8", "surrogateescape"), password)


VERIFIERS: dict[str, Verifier] = {
    ARGON2ID: verify_argon2,
    ARGON2I: lambda data, password: verify_argon2(data, password, ARGON2I),
    BLF_CRYPT: verify_bcrypt,
    SHA512_CRYPT: verify_sha512_crypt,
    SHA256_CRYPT: verify_sha256_crypt,
    SSHA512: verify_ssha512,
    PLAIN: verify_plain,
}
SUPPORTED = tuple(VERIFIERS)


class UnsupportedHash(ValueError):
    """A password field imapd will not accept (the message says why)."""


def well_formed(scheme: str, hash_data: str) -> bool:
    """Whether ``hash_data`` has the shape of a ``scheme`` hash."""
    if scheme in _ARGON2_PREFIX:
        return hash_data.startswith(_ARGON2_PREFIX[scheme])
    if scheme == BLF_CRYPT:
        return bool(_BCRYPT_HASH.match(hash_data))
    if scheme in _SHA_CRYPT_HASH:
        return bool(_SHA_CRYPT_HASH[scheme].match(hash_data))
    if scheme == SSHA512:
        return _decode_ssha512(hash_data) is not None
    return scheme == PLAIN and hash_data != ""


def crypt_scheme_of(hash_data: str) -> str | None:
    """The scheme a system-crypt() hash (Dovecot ``{CRYPT}``) really uses,
    if it is one we accept."""
    for scheme, pattern in _SHA_CRYPT_HASH.items():
        if pattern.match(hash_data):
            return scheme
    if _BCRYPT_HASH.match(hash_data):
        return BLF_CRYPT
    return None


def normalize_password_field(field: str) -> str:
    """Turn a Dovecot password field into the ``{SCHEME}hash`` imapd stores,
    or raise ``UnsupportedHash``. Never includes the hash in the message."""
    scheme, data = None, field
    match = re.match(r"\A\{([A-Za-z0-9._-]+)\}", field)
    if match is not None:
        scheme, data = match.group(1).upper(), field[match.end():]
    if scheme is None or scheme == "CRYPT":
        real = crypt_scheme_of(data)
        if real is None:
            raise UnsupportedHash("crypt() hash in a weak or unknown format (DES/MD5?)")
        scheme = real
    scheme = ALIASES.get(scheme, scheme)
    if scheme not in VERIFIERS:
        raise UnsupportedHash(f"unsupported password scheme {{{scheme}}}")
    if not well_formed(scheme, data):
        raise UnsupportedHash(f"malformed {{{scheme}}} hash")
    return "{" + scheme + "}" + data

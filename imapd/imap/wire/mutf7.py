"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

* Printable US-ASCII (0x20-0x7E) stands for itself, except ``&`` which is
  written ``&-``.
* Everything else is UTF-16BE, base64-encoded with ``,`` instead of ``/``,
  without ``=`` padding, between ``&`` and ``-``.

Decoding is strict: only the one canonical spelling of a name is accepted,
so two different byte strings never name the same mailbox. Rejected:
raw 8-bit or control bytes, an unterminated ``&``, printable ASCII inside a
shifted run, a null shift (``-&`` while in base64, i.e. two adjacent runs),
non-zero padding bits, odd UTF-16 lengths and unpaired surrogates.
"""

from __future__ import annotations

import base64
import binascii
import re

_PRINTABLE_LOW = 0x20
_PRINTABLE_HIGH = 0x7E
_AMPERSAND = 0x26
_DASH = 0x2D
_B64_ALPHABET = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
)


def _is_direct(char: str) -> bool:
    """True for characters written as themselves (printable ASCII but ``&``)."""
    code = ord(char)
    return _PRINTABLE_LOW <= code <= _PRINTABLE_HIGH and code != _AMPERSAND


def _encode_run(run: str) -> bytes:
    """One shifted run: ``&`` + modified base64 of UTF-16BE + ``-``."""
    raw = run.encode("utf-16-be")  # UnicodeEncodeError (a ValueError) on lone surrogates
    encoded = base64.b64encode(raw).rstrip(b"=").replace(b"/", b",")
    return b"&" + encoded + b"-"


def encode_mutf7(name: str) -> bytes:
    """Encode a mailbox name (RFC 3501 §5.1.3). Raises ValueError for strings
    that cannot be UTF-16 encoded (lone surrogates)."""
    out = bytearray()
    run_start = -1
    for index, char in enumerate(name):
        if _is_direct(char):
            if run_start >= 0:
                out += _encode_run(name[run_start:index])
                run_start = -1
            out.append(ord(char))
        elif char == "&":
            if run_start >= 0:
                out += _encode_run(name[run_start:index])
                run_start = -1
            out += b"&-"
        elif run_start < 0:
            run_start = index
    if run_start >= 0:
        out += _encode_run(name[run_start:])
    return bytes(out)


def _decode_run(encoded: bytes) -> str:
    """Decode the base64 between ``&`` and ``-`` and check it is canonical."""
    if not encoded or not _B64_ALPHABET.issuperset(encoded):
        raise ValueError("invalid modified BASE64 in mailbox name")
    remainder = len(encoded) % 4
    if remainder == 1:
        raise ValueError("truncated modified BASE64 in mailbox name")
    padded = encoded.replace(b",", b"/") + b"=" * ((4 - remainder) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError("invalid modified BASE64 in mailbox name") from exc
    if base64.b64encode(raw).rstrip(b"=") != encoded.replace(b",", b"/"):
        raise ValueError("non-zero padding bits in modified BASE64")
    if len(raw) % 2:
        raise ValueError("odd number of UTF-16 octets in mailbox name")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ValueError("unpaired surrogate in mailbox name") from exc
    if any(_is_direct(char) or char == "&" for char in text):
        raise ValueError("printable ASCII must not be BASE64-encoded in a mailbox name")
    return text


# A name of printable ASCII without ``&`` (most names) stands for itself.
_PLAIN = re.compile(rb"[\x20-\x25\x27-\x7e]*")


def decode_mutf7(data: bytes) -> str:
    """Decode a modified UTF-7 mailbox name; ValueError when malformed."""
    if _PLAIN.fullmatch(data) is not None:
        return data.decode("ascii")  # one pass in C, not a Python step per octet
    parts: list[str] = []
    index = 0
    run_ended_at = -1  # index just after the ``-`` that closed a BASE64 run
    while index < len(data):
        byte = data[index]
        if byte == _AMPERSAND:
            end = data.find(b"-", index + 1)
            if end < 0:
                raise ValueError("unterminated '&' in mailbox name")
            if end == index + 1:
                parts.append("&")
            elif index == run_ended_at:
                raise ValueError("adjacent BASE64 runs (null shift) in mailbox name")
            else:
                parts.append(_decode_run(data[index + 1:end]))
                run_ended_at = end + 1
            index = end + 1
        elif _PRINTABLE_LOW <= byte <= _PRINTABLE_HIGH:
            parts.append(chr(byte))
            index += 1
        else:
            raise ValueError("raw 8-bit or control octet in mailbox name")
    return "".join(parts)

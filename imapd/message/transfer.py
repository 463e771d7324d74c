"""Content-transfer-encoding decoders for FETCH BINARY (RFC 3516 §4.2).

BINARY[section] is the part's body with its content-transfer-encoding
(RFC 2045 §6) undone: base64 and quoted-printable are decoded, 7bit, 8bit
and binary pass through unchanged. Any other encoding is unknown to the
server, which must answer ``NO [UNKNOWN-CTE]`` (RFC 3516 §4.1).

The decoders are incremental (``feed`` chunks, then ``finish``) so a large
part is decoded as it is read from the store, with memory bounded by the
chunk size, and decoding a body in chunks gives the same octets as
decoding it whole (tests/message/test_transfer.py checks this with
hypothesis).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Iterable, Iterator, Protocol

from imapd.message.headers import split_fields
from imapd.message.model import Part
from imapd.message.structure import analyze

# Encodings whose octets are the content itself (RFC 2045 §6.2).
IDENTITY_ENCODINGS = frozenset({b"7bit", b"8bit", b"binary", b""})
_B64_ALPHABET = re.compile(rb"[^A-Za-z0-9+/=]+")
_HEX = frozenset(b"0123456789ABCDEFabcdef")
# A quoted-printable line longer than this (no line break seen yet) is
# decoded up to a safe point instead of being buffered whole.
_QP_MAX_PENDING = 64 * 1024


class UnknownEncoding(ValueError):
    """The part's content-transfer-encoding is not one the server decodes
    (RFC 3516 §4.1 ``UNKNOWN-CTE``)."""


class Decoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class IdentityDecoder:
    """7bit, 8bit, binary: the octets as they are (RFC 2045 §6.2)."""

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class Base64Decoder:
    """RFC 2045 §6.8: characters outside the base64 alphabet are ignored;
    decoding stops at the first pad character ``=`` (what follows a
    complete quantum with padding is not data)."""

    def __init__(self) -> None:
        self._pending = b""
        self._done = False

    def feed(self, data: bytes) -> bytes:
        if self._done:
            return b""
        text = self._pending + _B64_ALPHABET.sub(b"", data)
        pad = text.find(b"=")
        if pad >= 0:
            self._done = True
            return self._decode_final(text[:pad])
        whole = len(text) - len(text) % 4
        self._pending = text[whole:]
        return binascii.a2b_base64(text[:whole]) if whole else b""

    def _decode_final(self, text: bytes) -> bytes:
        self._pending = b""
        whole = len(text) - len(text) % 4
        out = binascii.a2b_base64(text[:whole]) if whole else b""
        rest = text[whole:]
        if len(rest) >= 2:  # a final quantum of 2 or 3 characters: 1 or 2 octets
            out += binascii.a2b_base64(rest + b"=" * (4 - len(rest)))
        return out

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        return self._decode_final(self._pending)


def _qp_line(line: bytes, strip: bool = True) -> bytes:
    """One quoted-printable line without its line break (RFC 2045 §6.7):
    trailing white space removed (not before a soft line break: there it
    is data), ``=XX`` decoded; a malformed ``=`` is kept as it is (rule 1
    allows the "robust" reading)."""
    if strip:
        line = line.rstrip(b" \t")
    if b"=" not in line:
        return line
    out = bytearray()
    index, size = 0, len(line)
    while index < size:
        equals = line.find(b"=", index)
        if equals < 0:
            out += line[index:]
            break
        out += line[index:equals]
        pair = line[equals + 1:equals + 3]
        if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
            out.append(int(pair, 16))
            index = equals + 3
        else:
            out.append(0x3D)
            index = equals + 1
    return bytes(out)


class QuotedPrintableDecoder:
    """RFC 2045 §6.7. A line ending in ``=`` (after trailing white space is
    removed) is a soft line break: joined with the next line. Other line
    breaks are kept as written (CRLF or LF)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        text = self._pending + data
        last = text.rfind(b"\n")
        if last < 0:
            self._pending = text
            return self._flush_long_line()
        self._pending = text[last + 1:]
        out = b"".join(self._decode_lines(text[:last + 1]))
        return out + self._flush_long_line()

    def _decode_lines(self, text: bytes) -> Iterator[bytes]:
        for line in text.split(b"\n")[:-1]:
            ending = b"\r\n" if line.endswith(b"\r") else b"\n"
            body = line[:-1] if ending == b"\r\n" else line
            stripped = body.rstrip(b" \t")
            if stripped.endswith(b"="):
                yield _qp_line(stripped[:-1], strip=False)  # soft line break
            else:
                yield _qp_line(stripped) + ending

    def _flush_long_line(self) -> bytes:
        """Bound the buffer on a line without a break: decode all but a
        tail that may still change meaning (white space that may turn out
        trailing, an ``=`` whose hex digits have not arrived)."""
        if len(self._pending) <= _QP_MAX_PENDING:
            return b""
        text = self._pending
        cut = len(text.rstrip(b" \t\r"))
        tail_start = max(cut - 3, 0)
        equals = text.rfind(b"=", tail_start, cut)
        if equals >= 0:
            cut = equals
        head, self._pending = text[:cut], text[cut:]
        # ``head`` ends neither in white space nor inside an escape.
        return _qp_line(head, strip=False)

    def finish(self) -> bytes:
        text, self._pending = self._pending, b""
        if not text:
            return b""
        stripped = text.rstrip(b" \t\r")
        if stripped.endswith(b"="):
            return _qp_line(stripped[:-1], strip=False)
        return _qp_line(stripped)


def decoder_for(encoding: bytes) -> Decoder:
    """The decoder for a Content-Transfer-Encoding value (any case);
    :class:`UnknownEncoding` for one the server does not know."""
    name = encoding.strip().lower()
    if name in IDENTITY_ENCODINGS:
        return IdentityDecoder()
    if name == b"base64":
        return Base64Decoder()
    if name == b"quoted-printable":
        return QuotedPrintableDecoder()
    raise UnknownEncoding(name.decode("ascii", "replace"))


def decode_chunks(encoding: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The decoded octets of ``chunks``, chunk by chunk (empty ones left out)."""
    decoder = decoder_for(encoding)
    for chunk in chunks:
        out = decoder.feed(chunk)
        if out:
            yield out
    tail = decoder.finish()
    if tail:
        yield tail


def decode(encoding: bytes, data: bytes) -> bytes:
    """Decode ``data`` as a whole."""
    return b"".join(decode_chunks(encoding, (data,)))


def is_identity(encoding: bytes) -> bool:
    """Does decoding leave the octets unchanged?"""
    return encoding.strip().lower() in IDENTITY_ENCODINGS


def _leaves(part: Part) -> Iterator[Part]:
    """The leaf entities under ``part`` in message order (the bodies a
    content-transfer-encoding applies to)."""
    if part.multipart:
        for child in part.children:
            yield from _leaves(child)
    elif part.message is not None:
        yield from _leaves(part.message)
    else:
        yield part


def _base64_lines(data: bytes) -> bytes:
    """RFC 2045 §6.8 base64 in lines of 76 characters, CRLF-terminated."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _base64_header(block: bytes) -> bytes:
    """``block`` (a header with its blank line) with every
    Content-Transfer-Encoding field replaced by ``base64``."""
    fields, blank = split_fields(block)
    kept = [f.raw for f in fields if f.key != b"content-transfer-encoding"]
    return b"".join(kept) + b"Content-Transfer-Encoding: base64\r\n" + (blank or b"\r\n")


def encode_nul_parts(raw: bytes) -> bytes | None:
    """``raw`` with every leaf part whose body holds a NUL octet re-encoded
    as base64 (its Content-Transfer-Encoding field rewritten), or None when
    there is no NUL. An APPENDed literal8 message (RFC 3516 §4.3) may carry
    NULs; BODY[] must never send one in a plain literal (RFC 3501 §4.3), and
    BINARY[] decodes the base64 back to the octets the client gave
    (RFC 3516 §4.2 permits the server such a conversion). Blocking work on
    a message of any size: run it in a worker thread."""
    if b"\x00" not in raw:
        return None
    pieces: list[bytes] = []
    position = 0
    for leaf in _leaves(analyze(raw).root):
        body = raw[leaf.body_start:leaf.body_end]
        if b"\x00" not in body:
            continue
        encoded = _base64_lines(body)
        if leaf.body_end < len(raw):  # the line break before the boundary follows
            encoded = encoded[:-2]
        pieces += [raw[position:leaf.header_start],
                   _base64_header(raw[leaf.header_start:leaf.body_start]), encoded]
        position = leaf.body_end
    pieces.append(raw[position:])
    return b"".join(pieces)


__all__ = [
    "Base64Decoder", "Decoder", "IdentityDecoder", "QuotedPrintableDecoder",
    "UnknownEncoding", "decode", "decode_chunks", "decoder_for", "encode_nul_parts", "is_identity",
]

"""Header blocks: finding them, splitting fields, unfolding, MIME parameters
and RFC 2047 encoded words.

Everything here works on ``bytes`` so that 8-bit header bytes survive
untouched (RFC 3501 §7.4.2 wants ENVELOPE and BODYSTRUCTURE strings as they
are in the message) and never raises on malformed input: the callers feed it
whatever a client APPENDed.

* RFC 5322 §2.2 (header fields), §2.2.3 (folding), §3.2.2 (comments)
* RFC 2045 §5.1 (Content-Type syntax), RFC 2231 (parameter continuations)
* RFC 2047 (encoded words, decoded for SEARCH only)
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import re
from dataclasses import dataclass
from typing import Iterable

_CRLF_BLANK = b"\n\r\n"
_LF_BLANK = b"\n\n"


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field (RFC 5322 §2.2) with its continuation lines.

    ``name`` is the field name as written (without trailing blanks), or
    ``b""`` for a line that is not a well-formed field (no colon, or blanks in
    the name: an mbox ``From `` line, a stray body line).  ``raw`` is the
    field byte for byte including its line endings (what HEADER.FIELDS
    returns), ``value`` what follows the colon, still folded.
    """

    name: bytes
    raw: bytes
    value: bytes

    @property
    def key(self) -> bytes:
        """The lower-cased field name, for case-insensitive matching."""
        return self.name.lower()


def find_header_end(raw: bytes, start: int, end: int) -> int:
    """Offset just past the blank line that ends the header at ``start``.

    The header of an entity runs up to and including the first empty line
    (CRLF CRLF, or LF LF for bare-LF messages).  Without an empty line the
    whole span is header and the body is empty (RFC 3501 §6.4.5: "a message
    which has no body and no blank line").
    """
    if start >= end:
        return end
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    if raw.startswith(b"\n", start, end):
        return start + 1
    # Search in growing windows so that a CRLF message is not scanned to
    # the end for LF LF (or the reverse): the cost stays proportional to
    # where the blank line is.
    window = 4096
    pos = start
    while pos < end:
        limit = min(end, pos + window)
        crlf = raw.find(_CRLF_BLANK, pos, min(end, limit + 2))
        lf = raw.find(_LF_BLANK, pos, min(end, limit + 1))
        if lf >= 0 and (crlf < 0 or lf < crlf):
            return lf + 2
        if crlf >= 0:
            return crlf + 3
        pos = limit  # every match starting before limit has been seen
        window *= 2
    return end


# A field starts at every line that does not begin with a blank (RFC 5322
# §2.2.3); its name is printable ASCII without colon (8-bit tolerated), then
# optional blanks (obsolete syntax, RFC 5322 §4.5) and the colon.
_FIELD_START = re.compile(rb"(?<=\n)(?![ \t])")
_FIELD_NAME = re.compile(rb"([^\x00-\x20\x7f:]+)[ \t]*:")
_FIELD_END = re.compile(rb"\n(?![ \t])")


def split_fields(block: bytes) -> tuple[list[HeaderField], bytes]:
    """Split a header block into fields and its terminating blank line.

    ``block`` is the header as :func:`find_header_end` delimits it.  Returns
    the fields in order and the blank line (``b"\\r\\n"``, ``b"\\n"`` or
    ``b""`` when the header ends without one).  Lines starting with a blank
    continue the previous field (RFC 5322 §2.2.3).  Lines that are not
    fields (no colon, blanks in the name: an mbox ``From `` line) are kept
    with an empty name.
    """
    blank = b""
    if block.endswith(b"\n\r\n") or block == b"\r\n":
        blank = b"\r\n"
    elif block.endswith(b"\n\n") or block == b"\n":
        blank = b"\n"
    body = block[: len(block) - len(blank)]
    fields: list[HeaderField] = []
    for raw in _FIELD_START.split(body):
        if not raw:
            continue
        match = _FIELD_NAME.match(raw)
        if match is None:
            fields.append(HeaderField(b"", raw, b""))
        else:
            fields.append(HeaderField(match.group(1), raw, raw[match.end():]))
    return fields, blank


_NAME_PATTERNS: dict[bytes, re.Pattern[bytes]] = {}
# SEARCH HEADER brings field names from clients: the cache keeps the first
# ones (the analysis's own names come first) and never grows past this.
_MAX_NAME_PATTERNS = 256


def _name_pattern(name: bytes) -> re.Pattern[bytes]:
    pattern = _NAME_PATTERNS.get(name)
    if pattern is None:
        # A literal prefix lets the regex engine scan at C speed; the name
        # is escaped, so the pattern has nothing to backtrack over.
        pattern = re.compile(b"\n" + re.escape(name) + rb"[ \t]*:")
        if len(_NAME_PATTERNS) < _MAX_NAME_PATTERNS:
            _NAME_PATTERNS[name] = pattern
    return pattern


def first_values(block: bytes, names: Iterable[bytes]) -> dict[bytes, bytes]:
    """The still-folded value of the first field with each of ``names``
    (lower-case) in a header block; absent names are left out.

    One regex search per name, so the cost does not grow with the number of
    fields: a hostile message made of millions of header lines is analysed
    in the time of a few scans of its bytes.
    """
    lowered = b"\n" + block.lower()
    has_content = b"\ncontent-" in lowered
    found: dict[bytes, bytes] = {}
    for name in names:
        if not has_content and name.startswith(b"content-"):
            continue
        match = _name_pattern(name).search(lowered)
        if match is None:
            continue
        start = match.end() - 1  # offsets in block are one less (the "\n")
        end = _FIELD_END.search(block, start)
        found[name] = block[start:end.end() if end is not None else len(block)]
    return found


def all_values(block: bytes, name: bytes) -> list[bytes]:
    """Still-folded values of every field called ``name`` (lower-case)."""
    lowered = b"\n" + block.lower()
    values: list[bytes] = []
    for match in _name_pattern(name).finditer(lowered):
        start = match.end() - 1
        end = _FIELD_END.search(block, start)
        values.append(block[start:end.end() if end is not None else len(block)])
    return values


def unfold(value: bytes) -> bytes:
    """Unfold a field value (RFC 5322 §2.2.3) and trim surrounding blanks.

    Line breaks inside one field are always followed by a blank, so removing
    every CR LF / LF unfolds it.  NUL bytes are dropped too: IMAP strings
    cannot carry them (RFC 3501 §9, CHAR8).
    """
    if b"\n" in value or b"\0" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"").replace(b"\0", b"")
    return value.strip(b" \t\r")


# --- structured values: Content-Type / Content-Disposition (RFC 2045 §5.1) --

Params = tuple[tuple[bytes, bytes], ...]

_PARAM_NAME = re.compile(rb'[^\s;()"=]+')
# Values are RFC 2045 tokens, but unquoted values containing "=" (boundaries
# such as ----=_NextPart_...) are common, so only stop at delimiters.
_PARAM_VALUE = re.compile(rb'[^\s;()"]+')
_SECTION_NAME = re.compile(rb"^(.+?)\*([0-9]{1,3})(\*?)$")


class _Cursor:
    """A position in a structured field value, skipping CFWS (RFC 5322 §3.2.2)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def skip_cfws(self) -> None:
        data = self.data
        while self.pos < len(data):
            c = data[self.pos]
            if c in (0x20, 0x09, 0x0D, 0x0A):
                self.pos += 1
            elif c == 0x28:  # "("
                self.pos = skip_comment(data, self.pos)
            else:
                return

    def quoted(self) -> bytes:
        """Read a quoted string at ``pos`` (on the quote); unescaped content."""
        content, self.pos = read_quoted(self.data, self.pos)
        return content

    def token(self, pattern: re.Pattern[bytes]) -> bytes:
        match = pattern.match(self.data, self.pos)
        if match is None:
            return b""
        self.pos = match.end()
        return match.group()


_COMMENT_SPECIAL = re.compile(rb"[()\\]")
_QUOTED = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)(\\?)("?)', re.DOTALL)
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)


def skip_comment(data: bytes, pos: int) -> int:
    """Offset after the (possibly nested) comment starting at ``pos``; an
    unterminated comment runs to the end of ``data``."""
    depth = 0
    while True:
        match = _COMMENT_SPECIAL.search(data, pos)
        if match is None:
            return len(data)
        at = match.start()
        c = data[at]
        if c == 0x5C:  # backslash quotes the next byte
            pos = at + 2
            continue
        depth += 1 if c == 0x28 else -1
        pos = at + 1
        if depth == 0:
            return pos


def unescape(data: bytes) -> bytes:
    """Remove quoted-pair backslashes (RFC 5322 §3.2.1)."""
    return _QUOTED_PAIR.sub(rb"\1", data) if b"\\" in data else data


def read_quoted(data: bytes, pos: int) -> tuple[bytes, int]:
    """Unescaped content of the quoted string at ``pos`` and the offset after
    it.  An unterminated string runs to the end of ``data``."""
    match = _QUOTED.match(data, pos)
    if match is None:  # pragma: no cover - the pattern matches any '"'
        return b"", len(data)
    return unescape(match.group(1)) + match.group(2), match.end()


def parse_structured(value: bytes) -> tuple[bytes, Params]:
    """Parse ``main-value *(";" attribute "=" value)`` (RFC 2045 §5.1, RFC 2183).

    Returns the main value with comments and blanks removed (``text/plain``,
    ``attachment``) and the parameters with lower-cased names, quoted values
    unquoted, RFC 2231 continuations merged (see :func:`merge_rfc2231`) and
    later duplicates of a name dropped.  Never raises.
    """
    cursor = _Cursor(value)
    main = bytearray()
    while not cursor.at_end():
        c = cursor.peek()
        if c == 0x3B:  # ";"
            break
        if c == 0x28:
            cursor.skip_cfws()
            continue
        if c == 0x22:
            main += cursor.quoted()
            continue
        if c not in (0x20, 0x09, 0x0D, 0x0A):
            main.append(c)
        cursor.pos += 1
    raw_params: list[tuple[bytes, bytes]] = []
    while not cursor.at_end():
        cursor.pos += 1  # the ";"
        param = _read_param(cursor)
        if param is not None:
            raw_params.append(param)
        # resynchronise on the next ";" after junk
        while not cursor.at_end() and cursor.peek() != 0x3B:
            if cursor.peek() == 0x22:
                cursor.quoted()
            else:
                cursor.pos += 1
    return bytes(main), merge_rfc2231(raw_params)


def _read_param(cursor: _Cursor) -> tuple[bytes, bytes] | None:
    cursor.skip_cfws()
    name = cursor.token(_PARAM_NAME)
    cursor.skip_cfws()
    if not name or cursor.peek() != 0x3D:  # "="
        return None
    cursor.pos += 1
    cursor.skip_cfws()
    if cursor.peek() == 0x22:
        val = cursor.quoted()
    else:
        val = cursor.token(_PARAM_VALUE)
    cursor.skip_cfws()
    return name.lower(), val


def merge_rfc2231(params: list[tuple[bytes, bytes]]) -> Params:
    """Join RFC 2231 §3 continuations (``name*0``, ``name*1*``...).

    The joined parameter keeps RFC 2231 form so it stays 7-bit for IMAP: if
    any section was encoded (trailing ``*``) the result is ``name*`` with the
    first section's ``charset'language'`` prefix and the plain sections
    percent-encoded; otherwise it is a plain ``name``.  Parameters appear in
    the order of their first section; a repeated name keeps the first.
    """
    if not any(b"*" in name for name, _ in params):
        return _dedupe(params)
    order: list[bytes] = []
    sections: dict[bytes, dict[int, tuple[bool, bytes]]] = {}
    plain: dict[bytes, bytes] = {}
    for name, val in params:
        match = _SECTION_NAME.match(name)
        if match is None:
            if name not in plain and name not in sections:
                order.append(name)
                plain[name] = val
            continue
        base, number, star = match.group(1), int(match.group(2)), bool(match.group(3))
        if base not in sections:
            if base in plain:
                continue
            sections[base] = {}
            order.append(base)
        sections[base].setdefault(number, (star, val))
    merged: list[tuple[bytes, bytes]] = []
    for name in order:
        if name in plain:
            merged.append((name, plain[name]))
        else:
            merged.append(_join_sections(name, sections[name]))
    return tuple(merged)


def _dedupe(params: list[tuple[bytes, bytes]]) -> Params:
    seen: set[bytes] = set()
    out: list[tuple[bytes, bytes]] = []
    for name, val in params:
        if name not in seen:
            seen.add(name)
            out.append((name, val))
    return tuple(out)


def _join_sections(name: bytes, parts: dict[int, tuple[bool, bytes]]) -> tuple[bytes, bytes]:
    ordered = [parts[k] for k in sorted(parts)]
    if not any(encoded for encoded, _ in ordered):
        return name, b"".join(val for _, val in ordered)
    pieces: list[bytes] = []
    for index, (encoded, val) in enumerate(ordered):
        if index == 0 and not encoded:
            pieces.append(b"''")  # RFC 2231 §4: charset and language empty
        pieces.append(val if encoded else _percent_encode(val))
    return name + b"*", b"".join(pieces)


_ATTRIBUTE_CHARS = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~"
)


def _percent_encode(val: bytes) -> bytes:
    return b"".join(
        bytes((c,)) if c in _ATTRIBUTE_CHARS else b"%%%02X" % c for c in val
    )


def param(params: Params, name: bytes) -> bytes | None:
    """The value of parameter ``name`` (lower-case), or None."""
    for key, val in params:
        if key == name:
            return val
    return None


def decode_rfc2231_value(val: bytes) -> str:
    """Decode an RFC 2231 ``charset'lang'%xx`` value to text."""
    pieces = val.split(b"'", 2)
    if len(pieces) != 3:
        return decode_8bit(val)
    charset, _, encoded = pieces
    data = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes((int(m.group(1), 16),)), encoded)
    return decode_charset(data, charset)


# --- decoding for SEARCH (RFC 2047) ------------------------------------------

def decode_8bit(data: bytes) -> str:
    """Text from bytes of unknown charset: UTF-8 if valid, else Latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_charset(data: bytes, charset: bytes | str | None) -> str:
    """Decode ``data`` in ``charset``; unknown or ASCII charsets fall back to
    :func:`decode_8bit` (8-bit data labelled us-ascii is common)."""
    if isinstance(charset, bytes):
        charset = charset.decode("ascii", "replace")
    name = (charset or "").strip().strip('"').lower()
    if not name or name in ("us-ascii", "ascii", "utf-8", "utf8"):
        return decode_8bit(data)
    try:
        return data.decode(name, "replace")
    except Exception:  # noqa: BLE001 - any codec failure means "unknown"
        # LookupError for unknown names and bytes-to-bytes codecs
        # (base64_codec...), UnicodeError from codecs such as idna that
        # ignore the error handler.
        return decode_8bit(data)


_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_word_payload(kind: bytes, payload: bytes) -> bytes | None:
    if kind in (b"b", b"B"):
        payload = payload.rstrip(b"=")
        payload += b"=" * (-len(payload) % 4)
        try:
            return base64.b64decode(payload)
        except (binascii.Error, ValueError):
            return None
    payload = payload.replace(b"_", b" ")
    return _QP_HEX.sub(lambda m: bytes((int(m.group(1), 16),)), payload)


def decode_words(value: bytes) -> str:
    """Decode RFC 2047 encoded words in an (unfolded) header value.

    Blanks between adjacent encoded words are dropped (RFC 2047 §6.2) and
    adjacent words in the same charset are joined before decoding, so a
    multi-byte character split across words survives.  Undecodable words are
    kept as written.  Text outside words is decoded with :func:`decode_8bit`.
    """
    if b"=?" not in value:
        return decode_8bit(value)
    out: list[str] = []
    pending_charset: bytes | None = None
    pending = bytearray()
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos:match.start()]
        payload = _decode_word_payload(match.group(2), match.group(3))
        charset = match.group(1).split(b"*", 1)[0].lower()
        if payload is None:
            continue  # left in place: becomes part of the next gap
        if gap.strip(b" \t") or pending_charset != charset:
            if pending_charset is not None:
                out.append(decode_charset(bytes(pending), pending_charset))
                pending.clear()
            if gap.strip(b" \t") or pending_charset is None:
                out.append(decode_8bit(gap))
        pending_charset = charset
        pending += payload
        pos = match.end()
    if pending_charset is not None:
        out.append(decode_charset(bytes(pending), pending_charset))
    out.append(decode_8bit(value[pos:]))
    return "".join(out)


# --- Date: (RFC 5322 §3.3) ------------------------------------------------------

def parse_sent_date(value: bytes | None) -> datetime.date | None:
    """The calendar date written in a Date header, ignoring time and zone
    (RFC 3501 §6.4.4 SENTBEFORE/SENTON/SENTSINCE), or None if unparseable."""
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(decode_8bit(value))
        if parsed is None:
            return None
        return datetime.date(parsed[0], parsed[1], parsed[2])
    except (ValueError, TypeError, OverflowError, IndexError):
        return None

"""The structural scan: one pass over the raw message building the MIME part
tree with byte offsets (:func:`analyze`).

Rules (RFC 2045, RFC 2046, RFC 3501 §6.4.5 / §7.4.2):

* An entity's header runs to the first empty line (CRLF CRLF or LF LF),
  which it includes; without one, everything is header and the body is empty.
* No Content-Type, or a syntactically invalid one, means
  ``text/plain; charset=us-ascii`` (RFC 2045 §5.2); inside multipart/digest
  the default is ``message/rfc822`` (RFC 2046 §5.1.5).  A text part without
  a charset parameter gets ``charset=us-ascii`` (RFC 2046 §4.1.2).
* No Content-Transfer-Encoding means 7bit (RFC 2045 §6.1).
* A multipart body is split at delimiter lines ``--boundary`` followed only
  by optional blanks (RFC 2046 §5.1.1); the line break before a delimiter
  belongs to the delimiter.  The part after the last delimiter runs to the
  close delimiter ``--boundary--`` or, when that is missing, to the end of
  the enclosing body.  A multipart without a boundary parameter is a leaf.
* A message/rfc822 body is parsed as a message of its own.
* When a header repeats, its first occurrence is used.
* Nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_PARTS` parts
  are not split further (the rest stays inside the enclosing part), which
  bounds the work on hostile input.
"""

from __future__ import annotations

import logging
import re

from imapd.message.envelope import ENVELOPE_FIELDS, build_envelope_data
from imapd.message.headers import (
    Params,
    find_header_end,
    first_values,
    param,
    parse_sent_date,
    parse_structured,
    skip_comment,
    unfold,
)
from imapd.message.model import Disposition, EnvelopeData, MessageInfo, Part

_log = logging.getLogger(__name__)

MAX_DEPTH = 50
MAX_PARTS = 10_000
#: Bytes of structured header values (address lists, Content-Type and
#: Content-Disposition parameters) parsed per message.  Parsing them runs at
#: Python speed, so a hostile message must not make APPEND do it for
#: megabytes; real messages use a few KiB.  Past the budget values are
#: parsed truncated, except that every Content-Type still gets
#: :data:`MIN_CONTENT_TYPE` bytes so the structure stays right.
STRUCTURED_BUDGET = 256 * 1024
MIN_CONTENT_TYPE = 256
#: Longest unstructured value kept (Subject, Message-ID, Content-ID...).
MAX_FIELD_BYTES = 64 * 1024

_TEXT_PLAIN = (b"text", b"plain")
_MESSAGE_RFC822 = (b"message", b"rfc822")
_US_ASCII: Params = ((b"charset", b"us-ascii"),)
_CONTENT_FIELDS = (
    b"content-type", b"content-transfer-encoding", b"content-id",
    b"content-description", b"content-md5", b"content-disposition",
    b"content-language", b"content-location",
)
_MESSAGE_FIELDS = _CONTENT_FIELDS + ENVELOPE_FIELDS
_TOKEN = rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_MEDIA_TYPE = re.compile(_TOKEN + rb"/" + _TOKEN)
_ENCODING = re.compile(rb"[^\s();\"]+")
_LANGUAGE_TAG = re.compile(rb"[^\s,]+")


def analyze(raw: bytes) -> MessageInfo:
    """Parse ``raw`` once (at APPEND) into a :class:`MessageInfo`.

    Never raises: malformed input is described with the RFC 2045 / RFC 3501
    defaults (see the module docstring).  If a bug in the scanner is ever
    hit, the message is described as a single text/plain entity and the
    error is logged, so APPEND still succeeds.
    """
    try:
        return analyze_strict(raw)
    except Exception:  # noqa: BLE001 - APPEND must not fail on any input
        _log.exception("message analysis failed; describing as text/plain")
        return _fallback(raw)


def analyze_strict(raw: bytes) -> MessageInfo:
    """:func:`analyze` without the safety net (tests use it to find bugs)."""
    scanner = _Scanner(raw)
    root = scanner.entity(0, len(raw), 0, _TEXT_PLAIN, is_message=True)
    env = root.envelope
    return MessageInfo(
        size=len(raw),
        root=root,
        sent_date=parse_sent_date(env.date if env is not None else None),
    )


def _fallback(raw: bytes) -> MessageInfo:
    size = len(raw)
    try:
        body_start = find_header_end(raw, 0, size)
    except Exception:  # noqa: BLE001
        body_start = 0
    root = Part(
        header_start=0, body_start=body_start, body_end=size,
        params=_US_ASCII, lines=count_lines(raw, body_start, size),
        envelope=EnvelopeData(),
    )
    return MessageInfo(size=size, root=root)


def count_lines(raw: bytes, start: int, end: int) -> int:
    """Text lines in raw[start:end]: line feeds, plus a final unterminated
    line (RFC 3501 body-fld-lines)."""
    if start >= end:
        return 0
    lines = raw.count(b"\n", start, end)
    if raw[end - 1] != 0x0A:
        lines += 1
    return lines


class _Scanner:
    """Walks one raw message top-down; each level only scans its own span."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parts = 0
        self.budget = STRUCTURED_BUDGET

    def entity(
        self, start: int, end: int, depth: int,
        default: tuple[bytes, bytes], is_message: bool,
    ) -> Part:
        """Describe the entity raw[start:end] (header + body)."""
        raw = self.raw
        self.parts += 1
        body_start = find_header_end(raw, start, end)
        values = first_values(
            raw[start:body_start], _MESSAGE_FIELDS if is_message else _CONTENT_FIELDS,
        )
        content = {
            name: unfold(values[name])[:MAX_FIELD_BYTES]
            for name in _CONTENT_FIELDS if name in values
        }
        ctype = content.get(b"content-type")
        if ctype is not None:
            ctype = self.spend(ctype, MIN_CONTENT_TYPE)
        media_type, media_subtype, params = _content_type(ctype, default)
        children: tuple[Part, ...] = ()
        message: Part | None = None
        multipart = False
        boundary = param(params, b"boundary") if media_type == b"multipart" else None
        if boundary and depth < MAX_DEPTH:
            multipart = True
            child_default = _MESSAGE_RFC822 if media_subtype == b"digest" else _TEXT_PLAIN
            children = self._children(body_start, end, boundary, depth + 1, child_default)
        elif (media_type, media_subtype) == _MESSAGE_RFC822:
            if depth < MAX_DEPTH and self.parts < MAX_PARTS:
                message = self.entity(body_start, end, depth + 1, _TEXT_PLAIN, True)
            else:
                # A message/rfc822 BODYSTRUCTURE must carry the nested
                # message; past the limits describe it as opaque data.
                media_type, media_subtype = b"application", b"octet-stream"
        return Part(
            header_start=start, body_start=body_start, body_end=end,
            media_type=media_type, media_subtype=media_subtype, params=params,
            content_id=content.get(b"content-id"),
            description=content.get(b"content-description"),
            encoding=_encoding(content.get(b"content-transfer-encoding")),
            md5=content.get(b"content-md5"),
            disposition=_disposition(self.spend(content.get(b"content-disposition"))),
            language=_language(content.get(b"content-language")),
            location=content.get(b"content-location"),
            lines=count_lines(raw, body_start, end),
            multipart=multipart, children=children, message=message,
            envelope=self._envelope(values) if is_message else None,
        )

    def spend(self, value: bytes | None, minimum: int = 0) -> bytes | None:
        """``value`` cut to what is left of the structured-parsing budget."""
        if value is None:
            return None
        allowed = max(self.budget, minimum)
        value = value[:allowed]
        self.budget = max(0, self.budget - len(value))
        return value

    def _envelope(self, values: dict[bytes, bytes]) -> EnvelopeData:
        return build_envelope_data(values, self.spend, MAX_FIELD_BYTES)

    def _children(
        self, start: int, end: int, boundary: bytes, depth: int,
        default: tuple[bytes, bytes],
    ) -> tuple[Part, ...]:
        delimiters = find_delimiters(
            self.raw, start, end, boundary, limit=MAX_PARTS - self.parts + 1,
        )
        children: list[Part] = []
        for index, (_, after, close) in enumerate(delimiters):
            if close or self.parts >= MAX_PARTS:
                break
            if index + 1 < len(delimiters):
                child_end = cut_before_delimiter(self.raw, delimiters[index + 1][0], after)
            else:
                child_end = end  # no close delimiter: runs to the end
            children.append(self.entity(after, child_end, depth, default, False))
        return tuple(children)


def find_delimiters(
    raw: bytes, start: int, end: int, boundary: bytes, limit: int = MAX_PARTS + 1,
) -> list[tuple[int, int, bool]]:
    """Delimiter lines of ``boundary`` in raw[start:end] (RFC 2046 §5.1.1).

    Returns (line start, offset after the line, is close delimiter) for each,
    stopping after the close delimiter or ``limit`` delimiters.  A delimiter
    is ``--boundary`` at the start of a line, optionally ``--``, then only
    blanks to the line end (so ``--b1`` does not end a part of ``b``).
    """
    marker = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    pos = start
    rejected = 0
    while len(found) < limit:
        if rejected > _MAX_CHEAP_REJECTS:
            return found + _delimiters_by_regex(raw, pos, end, boundary, limit - len(found))
        at = raw.find(marker, pos, end)
        if at < 0:
            break
        pos = at + 1
        if at != start and raw[at - 1] != 0x0A:
            rejected += 1
            continue
        after = at + len(marker)
        newline = raw.find(b"\n", after, min(end, after + 1024))
        line_end = end if newline < 0 else newline + 1
        rest = raw[after:min(line_end, after + 1024)]
        close = rest.startswith(b"--")
        if (newline < 0 and end - after > 1024) or rest[2 if close else 0:].strip(b" \t\r\n"):
            rejected += 1
            continue
        found.append((at, line_end, close))
        if close:
            break
        pos = line_end
    return found


# After this many near-misses ("--boundary" inside lines, "--boundaryX"
# lines) the scan switches from a Python loop to one compiled regex, so
# hostile input stays linear at C speed while normal messages do not pay
# for compiling a pattern per boundary.
_MAX_CHEAP_REJECTS = 1000


def _delimiters_by_regex(
    raw: bytes, pos: int, end: int, boundary: bytes, limit: int,
) -> list[tuple[int, int, bool]]:
    # The line feed ending a delimiter is matched by lookahead: it may also
    # be the one that precedes the next delimiter.
    pattern = re.compile(b"\n--" + re.escape(boundary) + rb"(--)?[ \t\r]*(?=\n|\Z)")
    found: list[tuple[int, int, bool]] = []
    for match in pattern.finditer(raw, max(pos - 1, 0), end):
        if len(found) >= limit:
            break
        close = match.group(1) is not None
        line_end = match.end() + 1 if match.end() < end else end
        found.append((match.start() + 1, line_end, close))
        if close:
            break
    return found


def cut_before_delimiter(raw: bytes, delimiter: int, part_start: int) -> int:
    """End of the part before the delimiter line at ``delimiter``: the CRLF
    (or LF) preceding a delimiter belongs to it (RFC 2046 §5.1.1)."""
    if delimiter - 2 >= part_start and raw[delimiter - 2:delimiter] == b"\r\n":
        return delimiter - 2
    if delimiter - 1 >= part_start and raw[delimiter - 1] == 0x0A:
        return delimiter - 1
    return max(delimiter, part_start)


def _content_type(
    value: bytes | None, default: tuple[bytes, bytes],
) -> tuple[bytes, bytes, Params]:
    if value is None:
        media_type, media_subtype = default
        return media_type, media_subtype, _US_ASCII if default == _TEXT_PLAIN else ()
    main, params = parse_structured(value)
    if _MEDIA_TYPE.fullmatch(main) is None:
        # RFC 2045 §5.2: an invalid Content-Type means text/plain; keep
        # whatever parameters could be read.
        media_type, media_subtype = _TEXT_PLAIN
    else:
        media_type, _, media_subtype = main.lower().partition(b"/")
    if media_type == b"text" and param(params, b"charset") is None:
        params = params + _US_ASCII
    return media_type, media_subtype, params


def _encoding(value: bytes | None) -> bytes:
    if value is None:
        return b"7bit"
    match = _ENCODING.search(_strip_comments(value))
    return match.group().lower() if match else b"7bit"


def _disposition(value: bytes | None) -> Disposition | None:
    if value is None:
        return None
    kind, params = parse_structured(value)
    if not kind:
        return None
    return Disposition(kind.lower(), params)


def _language(value: bytes | None) -> tuple[bytes, ...] | None:
    if value is None:
        return None
    tags = tuple(_LANGUAGE_TAG.findall(_strip_comments(value)))
    return tags or None


def _strip_comments(value: bytes) -> bytes:
    if b"(" not in value:
        return value
    out = bytearray()
    pos = 0
    while pos < len(value):
        if value[pos] == 0x28:
            pos = skip_comment(value, pos)
            out += b" "
        else:
            out.append(value[pos])
            pos += 1
    return bytes(out)

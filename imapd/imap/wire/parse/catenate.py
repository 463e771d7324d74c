"""APPEND's CATENATE argument (RFC 4469 §5):

    append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"
    cat-part    = text-literal / url
    text-literal = "TEXT" SP literal
    url         = "URL" SP astring

The literal may also be a literal8 (RFC 4469 §5 with RFC 3516).
"""

from __future__ import annotations

import re

from imapd.imap.wire.catenate_command import CatenatePart, CatText, CatUrl
from imapd.imap.wire.lexer import ParseError, Reader

_CATENATE = re.compile(rb"CATENATE \(", re.IGNORECASE)
# More parts than this is a client error, not a message (bounds the work).
MAX_PARTS = 256


def at_catenate(reader: Reader) -> bool:
    """Does ``CATENATE (`` start here?"""
    return _CATENATE.match(reader.data, reader.pos) is not None


def parse_catenate(reader: Reader) -> tuple[CatenatePart, ...]:
    """``CATENATE (cat-part ...)``; the reader is at ``CATENATE``."""
    found = _CATENATE.match(reader.data, reader.pos)
    if found is None:
        raise ParseError("Expected CATENATE (")
    reader.pos = found.end()
    reader.enter()
    parts = [_cat_part(reader)]
    while not reader.skip(b")"):
        reader.expect(b" ", "Invalid CATENATE list: expected space or ')'")
        parts.append(_cat_part(reader))
        if len(parts) > MAX_PARTS:
            raise ParseError(f"Too many CATENATE parts (at most {MAX_PARTS})")
    reader.leave()
    return tuple(parts)


def _cat_part(reader: Reader) -> CatenatePart:
    kind = reader.keyword()
    reader.sp("CATENATE part")
    if kind == "TEXT":
        if reader.peek() not in (0x7B, 0x7E):
            raise ParseError("CATENATE TEXT must be a literal")
        return CatText(reader.literal_data("CATENATE text", binary_ok=True))
    if kind == "URL":
        raw = reader.astring("CATENATE URL")
        try:
            return CatUrl(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("Invalid CATENATE URL") from None
    raise ParseError(f"Unknown CATENATE part {kind[:40]}")

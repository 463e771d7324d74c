"""FETCH attributes and body sections (RFC 3501 §6.4.5, grammar §9).

    fetch       = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
                  fetch-att / "(" fetch-att *(SP fetch-att) ")")
    fetch-att   = "ENVELOPE" / "FLAGS" / "INTERNALDATE" /
                  "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] /
                  "BODY" ["STRUCTURE"] / "UID" /
                  "BODY" section ["<" number "." nz-number ">"] /
                  "BODY.PEEK" section ["<" number "." nz-number ">"]
    section     = "[" [section-spec] "]"
    section-spec = section-msgtext / (section-part ["." section-text])
    section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
    section-part = nz-number *("." nz-number)
    section-text = section-msgtext / "MIME"
    header-list = "(" header-fld-name *(SP header-fld-name) ")"

BINARY (RFC 3516 §6) adds, with part numbers only in the brackets:

    fetch-att   =/ "BINARY" [".PEEK"] section-binary [partial] /
                   "BINARY.SIZE" section-binary
    section-binary = "[" [section-part] "]"
"""

from __future__ import annotations

import re

from imapd.imap.wire.commands import (
    FetchAttribute,
    FetchKind,
    Partial,
    Section,
    SectionText,
)
from imapd.imap.wire.lexer import MAX_NUMBER, ParseError, Reader

# RFC 3501 §6.4.5 macros, in the order the RFC lists their expansion.
_FLAGS = FetchAttribute(FetchKind.FLAGS)
_INTERNALDATE = FetchAttribute(FetchKind.INTERNALDATE)
_SIZE = FetchAttribute(FetchKind.RFC822_SIZE)
_ENVELOPE = FetchAttribute(FetchKind.ENVELOPE)
_BODY = FetchAttribute(FetchKind.BODY)
MACROS: dict[str, tuple[FetchAttribute, ...]] = {
    "ALL": (_FLAGS, _INTERNALDATE, _SIZE, _ENVELOPE),
    "FAST": (_FLAGS, _INTERNALDATE, _SIZE),
    "FULL": (_FLAGS, _INTERNALDATE, _SIZE, _ENVELOPE, _BODY),
}

_SECTIONED = (FetchKind.BODY_SECTION, FetchKind.BINARY_SECTION, FetchKind.BINARY_SIZE)
_SIMPLE: dict[str, FetchKind] = {
    kind.value: kind for kind in FetchKind if kind not in _SECTIONED
}
# The attribute name runs up to "[", SP, ")" or the end of the line.
_ATTRIBUTE_NAME = re.compile(rb"[A-Za-z0-9.]+")
# Inside the brackets: the section part and text specifier, up to SP or "]".
_SECTION_SPEC = re.compile(rb"[A-Za-z0-9.]*")
_HEADER_TEXTS = {
    "HEADER": SectionText.HEADER,
    "TEXT": SectionText.TEXT,
    "MIME": SectionText.MIME,
    "HEADER.FIELDS": SectionText.HEADER_FIELDS,
    "HEADER.FIELDS.NOT": SectionText.HEADER_FIELDS_NOT,
}


def parse_fetch_items(reader: Reader) -> tuple[FetchAttribute, ...]:
    """The part after ``FETCH set SP``: a macro, one attribute or a list."""
    if reader.skip(b"("):
        reader.enter()
        attributes = [parse_fetch_attribute(reader)]
        while not reader.skip(b")"):
            reader.expect(b" ", "Invalid FETCH attribute list: expected space or ')'")
            attributes.append(parse_fetch_attribute(reader))
        reader.leave()
        return tuple(attributes)
    start = reader.pos
    found = _ATTRIBUTE_NAME.match(reader.data, reader.pos)
    if found is not None and found.group().upper().decode("ascii") in MACROS:
        reader.pos = found.end()
        if reader.peek() in (0x5B, 0x3C):  # "ALL[" is not a macro
            reader.pos = start
        else:
            return MACROS[found.group().upper().decode("ascii")]
    return (parse_fetch_attribute(reader),)


def parse_fetch_attribute(reader: Reader) -> FetchAttribute:
    found = _ATTRIBUTE_NAME.match(reader.data, reader.pos)
    if found is None:
        raise ParseError("Missing FETCH attribute" if reader.at_eol() else "Invalid FETCH attribute")
    name = found.group().decode("ascii").upper()
    reader.pos = found.end()
    if reader.peek() == 0x5B and name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        return _parse_binary(reader, name)
    if reader.peek() == 0x5B:  # "["
        if name not in ("BODY", "BODY.PEEK"):
            raise ParseError(f"Unknown FETCH attribute {name[:40]}[")
        section = parse_section(reader)
        partial = parse_partial(reader)
        return FetchAttribute(FetchKind.BODY_SECTION, section, name == "BODY.PEEK", partial)
    kind = _SIMPLE.get(name)
    if kind is None:
        if name in MACROS:
            raise ParseError(f"FETCH macro {name} cannot be used in a list")
        raise ParseError(f"Unknown FETCH attribute {name[:40]}")
    return FetchAttribute(kind)


def _parse_binary(reader: Reader, name: str) -> FetchAttribute:
    """``BINARY[.PEEK]`` or ``BINARY.SIZE`` ``section-binary`` (RFC 3516 §6):
    part numbers only; a partial only after BINARY[.PEEK]."""
    reader.expect(b"[", "Expected '[' to start a section")
    found = _SECTION_SPEC.match(reader.data, reader.pos)
    spec = found.group().decode("ascii").upper() if found else ""
    reader.pos += len(spec)
    part, text = _split_section_spec(spec)
    if text is not None:
        raise ParseError(f"{name} takes part numbers only")
    reader.expect(b"]", "Invalid section: expected ']'")
    if name == "BINARY.SIZE":
        return FetchAttribute(FetchKind.BINARY_SIZE, Section(part))
    partial = parse_partial(reader)
    return FetchAttribute(FetchKind.BINARY_SECTION, Section(part), name == "BINARY.PEEK", partial)


def parse_section(reader: Reader) -> Section:
    """``"[" [section-spec] "]"``; the reader is at the ``[``."""
    reader.expect(b"[", "Expected '[' to start a section")
    found = _SECTION_SPEC.match(reader.data, reader.pos)
    spec = found.group().decode("ascii").upper() if found else ""
    reader.pos += len(spec)
    part, text = _split_section_spec(spec)
    fields: tuple[str, ...] = ()
    if text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
        reader.expect(b" ", "Missing header list after HEADER.FIELDS")
        fields = parse_header_list(reader)
    reader.expect(b"]", "Invalid section: expected ']'")
    return Section(part, text, fields)


def _split_section_spec(spec: str) -> tuple[tuple[int, ...], SectionText | None]:
    """``1.2.HEADER.FIELDS`` -> ((1, 2), HEADER_FIELDS)."""
    if not spec:
        return (), None
    pieces = spec.split(".")
    part: list[int] = []
    while pieces and pieces[0].isdigit():
        number = int(pieces.pop(0)) if len(pieces[0]) <= 10 else 0
        if not 0 < number <= MAX_NUMBER:
            raise ParseError("Invalid section part number")
        part.append(number)
    if not pieces:
        return tuple(part), None
    text = _HEADER_TEXTS.get(".".join(pieces))
    if text is None:
        raise ParseError(f"Invalid section specifier {spec[:40]}")
    if text is SectionText.MIME and not part:
        raise ParseError("MIME section requires a part number")
    return tuple(part), text


def parse_header_list(reader: Reader) -> tuple[str, ...]:
    """``"(" header-fld-name *(SP header-fld-name) ")"``, upper-cased."""
    reader.expect(b"(", "Invalid header list: expected '('")
    reader.enter()
    names: list[str] = []
    while True:
        raw = reader.astring("header field name")
        if not raw or any(c <= 0x20 or c >= 0x7F or c == 0x3A for c in raw):
            raise ParseError("Invalid header field name")
        names.append(raw.decode("ascii").upper())
        if reader.skip(b")"):
            break
        reader.expect(b" ", "Invalid header list: expected space or ')'")
    reader.leave()
    return tuple(names)


def parse_partial(reader: Reader) -> Partial | None:
    """``"<" number "." nz-number ">"``, if present."""
    if not reader.skip(b"<"):
        return None
    origin = reader.number("partial origin")
    reader.expect(b".", "Invalid partial: expected '.'")
    count = reader.nz_number("partial length")
    reader.expect(b">", "Invalid partial: expected '>'")
    return Partial(origin, count)

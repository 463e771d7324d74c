"""The value of each FETCH data item (RFC 3501 §6.4.5, §7.4.2).

``fetch.py`` decides which messages and which items; this module answers
"what is item X of message M": the response item name as the client must
see it (``BODY[1.HEADER.FIELDS (FROM)]<0>``), and its value built from the
message's store record, its analysis (``imapd.message.MessageInfo``, kept as
the store's ``meta`` blob) and, for body data, byte ranges of the stored
message. Large ranges are returned as ``LiteralStream`` read from the store
in chunks, so a 20 MB body never sits in memory as one object (RFC 3501
§4.3 literals of any size).
"""

from __future__ import annotations

import datetime

from imapd.core.runtime import Runtime
from imapd.imap.commands.fetch_binary import binary_size_value, binary_value, body_range, name_of
from imapd.mail.watch import MailboxWatch
from imapd.mail.records import MessageRecord
from imapd.message import (
    MessageInfo, analyze, apply_partial, body_structure, envelope, filter_header,
    header_span, partial_span, section_span,
)
from imapd.message.infocache import decode_info
from imapd.imap.wire.commands import FetchAttribute, FetchKind, Section, SectionText
from imapd.imap.wire.encode import encode_string
from imapd.imap.wire.values import IString, Literal, LiteralStream, Value

# Ranges above this many octets are streamed from the store instead of read
# into memory in one piece.
STREAM_THRESHOLD = 256 * 1024

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# RFC 3501 §9 ATOM-CHAR (no atom-specials): header names made of these are
# echoed bare in the section spelling, others as quoted strings.
_ATOM_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('(){%*"\\]')

# Items that set \Seen when fetched (RFC 3501 §6.4.5): BODY[...] without
# .PEEK, RFC822 and RFC822.TEXT. RFC822.HEADER is BODY.PEEK[HEADER].
_SETS_SEEN_KINDS = frozenset({FetchKind.RFC822, FetchKind.RFC822_TEXT})
# Items answered from the message analysis (or sections that need it).
_BINARY_KINDS = frozenset({FetchKind.BINARY_SECTION, FetchKind.BINARY_SIZE})
_SECTIONED_KINDS = frozenset({FetchKind.BODY_SECTION, *_BINARY_KINDS})
_INFO_KINDS = frozenset({
    FetchKind.ENVELOPE, FetchKind.BODY, FetchKind.BODYSTRUCTURE,
    FetchKind.RFC822_HEADER, FetchKind.RFC822_TEXT,
})


def format_internal_date(value: datetime.datetime) -> str:
    """RFC 3501 §9 ``date-time`` without the quotes:
    ``17-Jul-1996 02:44:25 -0700`` (the time in the date's own zone)."""
    offset = value.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return (
        f"{value.day:02d}-{_MONTHS[value.month - 1]}-{value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} {sign}{hours:02d}{mins:02d}"
    )


def _header_name(name: str) -> str:
    if name and all(c in _ATOM_CHARS for c in name):
        return name
    return encode_string(name.encode("utf-8")).decode("utf-8")


def section_text(section: Section) -> str:
    """The section spelling between the brackets (RFC 3501 §9 ``section-spec``),
    header field names as the client sent them (upper-cased)."""
    pieces = [str(number) for number in section.part]
    if section.text is not None:
        pieces.append(section.text.value)
    spec = ".".join(pieces)
    if section.text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
        spec += " (" + " ".join(_header_name(f) for f in section.fields) + ")"
    return spec


def item_name(attribute: FetchAttribute) -> str:
    """The name of the item in the FETCH response (RFC 3501 §7.4.2): a body
    section loses ``.PEEK`` and a partial keeps only its origin
    (``BODY[]<0>``, RFC 3501 §6.4.5)."""
    if attribute.kind in _BINARY_KINDS:
        return name_of(attribute)
    if attribute.kind is not FetchKind.BODY_SECTION:
        return str(attribute.kind.value)
    name = "BODY[" + section_text(attribute.section or Section()) + "]"
    if attribute.partial is not None:
        name += f"<{attribute.partial.origin}>"
    return name


def sets_seen(attribute: FetchAttribute) -> bool:
    """Does fetching this item set ``\\Seen`` (RFC 3501 §6.4.5)?"""
    if attribute.kind in (FetchKind.BODY_SECTION, FetchKind.BINARY_SECTION):
        return not attribute.peek  # RFC 3516 §4.2: BINARY sets it, BINARY.PEEK not
    return attribute.kind in _SETS_SEEN_KINDS


def needs_info(attribute: FetchAttribute) -> bool:
    """Does the item need the message analysis (the store's ``meta``)?
    ``BODY[]`` and its partials are plain byte ranges and do not."""
    if attribute.kind in _SECTIONED_KINDS:
        section = attribute.section or Section()
        return bool(section.part) or section.text is not None
    return attribute.kind in _INFO_KINDS


class MessageSource:
    """Lazy access to one message for building FETCH items: its analysis
    (from ``meta``, or computed from the bytes when ``meta`` is missing or
    unreadable) and byte ranges of it (read, or streamed when large)."""

    def __init__(
        self, watch: MailboxWatch, record: MessageRecord, runtime: Runtime | None = None,
    ) -> None:
        self.watch = watch
        self.record = record
        self.runtime = runtime  # for work off the reactor thread (BINARY decoding)
        self._info: MessageInfo | None = None

    async def info(self) -> MessageInfo:
        if self._info is None:
            try:
                self._info = decode_info(self.record.meta)
            except ValueError:
                raw = await self.watch.read_message(self.record.uid)
                self._info = analyze(raw or b"")
        return self._info

    async def read(self, start: int, end: int) -> bytes:
        data = await self.watch.read_message(self.record.uid, start, end - start)
        return data or b""

    async def range_value(self, start: int, end: int) -> Value:
        """``[start, end)`` of the message as a literal (``""`` when empty);
        streamed from the store when larger than ``STREAM_THRESHOLD``."""
        size = end - start
        if size <= 0:
            return IString(b"")
        if size <= STREAM_THRESHOLD:
            return Literal(await self.read(start, end))
        body = await self.watch.open_message(self.record.uid)
        if body is None:  # expunged meanwhile: nothing left to stream
            return IString(b"")
        return LiteralStream(size, lambda: body_range(body, start, end))


async def section_value(source: MessageSource, attribute: FetchAttribute) -> Value:
    """``BODY[section]<partial>`` (RFC 3501 §6.4.5). A section that does not
    exist in this message (part out of range, HEADER of a non-message part)
    is the empty string, as Dovecot answers."""
    section = attribute.section or Section()
    if not section.part and section.text is None:
        span: tuple[int, int] | None = (0, source.record.size)
    else:
        info = await source.info()
        if section.text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
            block = header_span(info, section)
            if block is None:
                return IString(b"")
            fields = filter_header(
                await source.read(*block), section.fields,
                section.text is SectionText.HEADER_FIELDS_NOT,
            )
            data = apply_partial(fields, attribute.partial)
            return Literal(data) if data else IString(b"")
        span = section_span(info, section)
    if span is None:
        return IString(b"")
    return await source.range_value(*partial_span(span, attribute.partial))


async def item_value(source: MessageSource, attribute: FetchAttribute) -> Value:
    """The value of every item except FLAGS and UID (which depend on the
    session's view and are built by the FETCH handler)."""
    kind = attribute.kind
    record = source.record
    if kind is FetchKind.BODY_SECTION:
        return await section_value(source, attribute)
    if kind is FetchKind.BINARY_SECTION:
        return await binary_value(source, attribute)
    if kind is FetchKind.BINARY_SIZE:
        return await binary_size_value(source, attribute)
    if kind is FetchKind.INTERNALDATE:
        return IString(format_internal_date(record.internal_date).encode("ascii"))
    if kind is FetchKind.RFC822_SIZE:
        return record.size
    if kind is FetchKind.RFC822:
        return await source.range_value(0, record.size)
    info = await source.info()
    if kind is FetchKind.ENVELOPE:
        return envelope(info)
    if kind is FetchKind.BODY:
        return body_structure(info, extended=False)
    if kind is FetchKind.BODYSTRUCTURE:
        return body_structure(info, extended=True)
    if kind is FetchKind.RFC822_HEADER or kind is FetchKind.RFC822_TEXT:
        # RFC822.HEADER is BODY.PEEK[HEADER], RFC822.TEXT is BODY[TEXT].
        text = SectionText.HEADER if kind is FetchKind.RFC822_HEADER else SectionText.TEXT
        span = section_span(info, Section(text=text))
        return await source.range_value(*span) if span else IString(b"")
    raise ValueError(f"item {kind} is built by the FETCH handler")

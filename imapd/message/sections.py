"""Body sections (RFC 3501 §6.4.5 ``BODY[section]<partial>``): byte-exact
slices of the stored message.

Part numbering (RFC 3501 §6.4.5):

* A multipart entity's parts are numbered 1..n; a message/rfc822 part's
  numbers address the parts of the message it carries.
* A message (the whole message, or one carried by a message/rfc822 part)
  that is not multipart has only a part 1: its own body.  So ``BODY[1]`` of
  a non-multipart message is its body, and ``BODY[2.1]`` where part 2 is a
  message/rfc822 carrying a plain message is that message's body.
* ``BODY[n]`` is part n's body (for a message/rfc822 part: the whole
  carried message, header included); ``n.MIME`` its MIME header.
* ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT`` and ``TEXT`` apply to
  the message itself (no part numbers) or to a message/rfc822 part's carried
  message; on any other part they do not exist.

Every header section includes the header's terminating blank line, except
for a header that has none (a message without body and blank line).
HEADER.FIELDS[.NOT] keep the selected fields byte for byte in message order
(field names match without regard to case); they are the only sections that
are not one contiguous slice of the message.

A section that does not exist (part number out of range, HEADER of a
non-message part, MIME without part numbers) is None.  FETCH should then
answer with an empty string, as Dovecot does (``BODY[9] ""``): the section
is "empty" rather than a protocol error.
"""

from __future__ import annotations

from imapd.message.headers import split_fields
from imapd.message.model import MessageInfo, Part
from imapd.imap.wire.commands import Partial, Section, SectionText

_HEADER_SECTIONS = (
    SectionText.HEADER, SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT,
)


def find_part(info: MessageInfo, numbers: tuple[int, ...]) -> tuple[Part, bool] | None:
    """The entity addressed by ``numbers``, and whether it is addressed as a
    message (only for the empty path: the message itself).  None if absent."""
    part, as_message = info.root, True
    for number in numbers:
        if number < 1:
            return None
        if not as_message and not part.multipart:
            if part.message is None:
                return None  # a leaf part has no sub-parts
            part = part.message
        if part.multipart:
            if number > len(part.children):
                return None
            part = part.children[number - 1]
        elif number != 1:
            return None
        # else: part 1 of a non-multipart message is its own body
        as_message = False
    return part, as_message


def _target_message(info: MessageInfo, numbers: tuple[int, ...]) -> Part | None:
    """The message that HEADER/TEXT of ``numbers`` refer to."""
    found = find_part(info, numbers)
    if found is None:
        return None
    part, as_message = found
    if as_message:
        return part
    return part.message  # None unless part is message/rfc822


def section_span(info: MessageInfo, section: Section) -> tuple[int, int] | None:
    """(start, end) of ``section`` in the raw message, for every section that
    is one contiguous slice (all but HEADER.FIELDS[.NOT]), so large bodies
    can be streamed from disk.  None if the section does not exist or is not
    contiguous (use :func:`section_bytes` for those)."""
    text = section.text
    if text is None:
        if not section.part:
            return 0, info.size
        found = find_part(info, section.part)
        if found is None:
            return None
        return found[0].body_start, found[0].body_end
    if text is SectionText.MIME:
        found = find_part(info, section.part) if section.part else None
        if found is None:
            return None
        return found[0].header_start, found[0].body_start
    message = _target_message(info, section.part)
    if message is None:
        return None
    if text is SectionText.HEADER:
        return message.header_start, message.body_start
    if text is SectionText.TEXT:
        return message.body_start, message.body_end
    return None


def header_span(info: MessageInfo, section: Section) -> tuple[int, int] | None:
    """For HEADER / HEADER.FIELDS[.NOT] sections: the span of the header block
    the fields are taken from (so a caller can read only that much)."""
    if section.text not in _HEADER_SECTIONS:
        return None
    message = _target_message(info, section.part)
    if message is None:
        return None
    return message.header_start, message.body_start


def filter_header(block: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """HEADER.FIELDS (``exclude=False``) or HEADER.FIELDS.NOT of one header
    block: the matching fields as written, then the blank line."""
    wanted = {name.encode("utf-8", "replace").lower() for name in names}
    fields, blank = split_fields(block)
    kept = [
        field.raw for field in fields
        if (field.key in wanted and bool(field.name)) != exclude
    ]
    return b"".join(kept) + blank


def section_bytes(raw: bytes, info: MessageInfo, section: Section) -> bytes | None:
    """The bytes of ``section`` (RFC 3501 §6.4.5) or None if it does not exist.

    ``raw`` is the message exactly as stored (anything sliceable with the
    message's offsets, e.g. an ``mmap`` of the file, works too).  Partial
    fetches (``<origin.count>``) are applied by the caller with
    :func:`apply_partial`.
    """
    if section.text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
        span = header_span(info, section)
        if span is None:
            return None
        block = bytes(raw[span[0]:span[1]])
        return filter_header(
            block, section.fields, section.text is SectionText.HEADER_FIELDS_NOT,
        )
    span = section_span(info, section)
    if span is None:
        return None
    return bytes(raw[span[0]:span[1]])


def apply_partial(data: bytes, partial: Partial | None) -> bytes:
    """``<origin.count>``: at most ``count`` octets from ``origin``; empty if
    ``origin`` is past the end (RFC 3501 §6.4.5)."""
    if partial is None:
        return data
    return data[partial.origin:partial.origin + partial.count]


def partial_span(span: tuple[int, int], partial: Partial | None) -> tuple[int, int]:
    """:func:`apply_partial` for a (start, end) span, for streaming."""
    if partial is None:
        return span
    start, end = span
    first = min(end, start + partial.origin)
    return first, min(end, first + partial.count)

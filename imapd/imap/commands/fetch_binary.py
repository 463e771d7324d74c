"""FETCH BINARY[part]<partial>, BINARY.PEEK and BINARY.SIZE (RFC 3516).

``BINARY[part]`` is the part's body with its content-transfer-encoding
undone (RFC 3516 §4.2, decoders in ``imapd.message.transfer``);
``BINARY.SIZE[part]`` the size of that (§4.3). ``BINARY[]`` is the whole
message as stored: its header cannot be decoded, and a multipart or
message/rfc822 entity may only carry 7bit, 8bit or binary (RFC 2045 §6.4),
so those pass through unchanged as well. A part whose encoding the server
does not know fails the command with ``NO [UNKNOWN-CTE]`` (§4.1). A part
number that does not exist answers the empty string (size 0), as BODY[]
does (``imapd.message.sections``).

A decoded value that holds a NUL octet must be sent as ``literal8``
(``~{n}``, RFC 3516 §4.2). Small parts (up to ``STREAM_THRESHOLD`` octets
as stored) are read, decoded and checked in memory. Larger ones are
streamed: the decoded size is counted first in a worker thread (a pass
over the stored octets, memory bounded by the chunk size), then the
decoded octets are produced chunk by chunk as the client reads them, as
``literal8`` (always allowed for BINARY data: §4.2 grammar), so no scan
for NUL is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

from imapd.core.errors import ImapError
from imapd.imap.wire.commands import FetchAttribute, FetchKind, Partial, Section
from imapd.imap.wire.values import IString, Literal, LiteralStream, Value
from imapd.mail.records import MessageBody
from imapd.message import MessageInfo
from imapd.message.sections import apply_partial, find_part
from imapd.message.transfer import UnknownEncoding, decode, decode_chunks, decoder_for, is_identity

if TYPE_CHECKING:
    from imapd.imap.commands.fetch_items import MessageSource

# Ranges above this many stored octets are streamed (as in fetch_items).
STREAM_THRESHOLD = 256 * 1024
UNKNOWN_CTE = "UNKNOWN-CTE"  # RFC 3516 §4.1 response code
NO_UNKNOWN_CTE_TEXT = "Cannot decode the part's content-transfer-encoding"


def binary_span(info: MessageInfo | None, section: Section, size: int) -> tuple[int, int, bytes] | None:
    """(start, end, encoding) of the stored octets of ``section``; None when
    the part does not exist. ``info`` may be None for ``BINARY[]``."""
    if not section.part:
        return 0, size, b"binary"
    assert info is not None
    found = find_part(info, section.part)
    if found is None:
        return None
    part = found[0]
    return part.body_start, part.body_end, part.encoding


def check_encoding(encoding: bytes) -> None:
    """``NO [UNKNOWN-CTE]`` for an encoding the server cannot decode (RFC 3516 §4.1)."""
    try:
        decoder_for(encoding)
    except UnknownEncoding:
        raise ImapError.no(NO_UNKNOWN_CTE_TEXT, UNKNOWN_CTE) from None


def _slice(chunks: Iterable[bytes], start: int, end: int) -> Iterator[bytes]:
    """``chunks`` (a stream of octets) restricted to ``[start, end)``."""
    position = 0
    for chunk in chunks:
        chunk_end = position + len(chunk)
        if chunk_end > start and position < end:
            yield chunk[max(start - position, 0):min(end - position, len(chunk))]
        position = chunk_end
        if position >= end:
            break


def body_range(body: MessageBody, start: int, end: int) -> Iterator[bytes]:
    """The stored octets ``[start, end)`` of ``body``, released when done."""
    try:
        yield from _slice(body.chunks(), start, end)
    finally:
        body.close()


def decoded_size(body: MessageBody, start: int, end: int, encoding: bytes) -> int:
    """Octets of the decoded ``[start, end)``: one pass over the store
    (blocking: run it in a worker thread)."""
    return sum(len(chunk) for chunk in decode_chunks(encoding, body_range(body, start, end)))


def small_value(data: bytes, partial: Partial | None) -> Value:
    """Decoded octets in memory as the response value: ``~{n}`` when they
    hold a NUL (RFC 3516 §4.2), ``""`` when empty."""
    data = apply_partial(data, partial)
    if not data:
        return IString(b"")
    return Literal(data, binary=b"\x00" in data)


def decoded(data: bytes, encoding: bytes) -> bytes:
    return data if is_identity(encoding) else decode(encoding, data)


def _partial_bounds(size: int, partial: Partial | None) -> tuple[int, int]:
    """(first, last) of a value of ``size`` octets under ``partial``
    (RFC 3501 §6.4.5 partial rules)."""
    if partial is None:
        return 0, size
    first = min(size, partial.origin)
    return first, min(size, first + partial.count)


def decoded_stream(
    body: MessageBody, start: int, end: int, encoding: bytes, first: int, last: int,
) -> LiteralStream:
    """The decoded octets ``[first, last)`` of ``[start, end)``, produced as
    the client reads them, as ``literal8``."""
    return LiteralStream(
        last - first,
        lambda: _slice(decode_chunks(encoding, body_range(body, start, end)), first, last),
        binary=True,
    )


def name_of(attribute: FetchAttribute) -> str:
    """``BINARY[1.2]<0>`` / ``BINARY.SIZE[1.2]`` (RFC 3516 §6: .PEEK and the
    partial's count are dropped, as for BODY[])."""
    part = ".".join(str(n) for n in (attribute.section or Section()).part)
    if attribute.kind is FetchKind.BINARY_SIZE:
        return f"BINARY.SIZE[{part}]"
    name = f"BINARY[{part}]"
    if attribute.partial is not None:
        name += f"<{attribute.partial.origin}>"
    return name


async def _located(source: MessageSource, section: Section) -> tuple[int, int, bytes] | None:
    info = await source.info() if section.part else None
    span = binary_span(info, section, source.record.size)
    if span is not None:
        check_encoding(span[2])
    return span


async def _count(source: MessageSource, start: int, end: int, encoding: bytes) -> int | None:
    """Decoded size of a large range, counted off the reactor thread."""
    body = await source.watch.open_message(source.record.uid)
    if body is None:  # expunged meanwhile
        return None
    if source.runtime is None:
        return decoded_size(body, start, end, encoding)
    return await source.runtime.in_thread(decoded_size, body, start, end, encoding)


async def binary_value(source: MessageSource, attribute: FetchAttribute) -> Value:
    """``BINARY[part]<partial>`` (RFC 3516 §4.2)."""
    span = await _located(source, attribute.section or Section())
    if span is None:
        return IString(b"")
    start, end, encoding = span
    if end - start <= STREAM_THRESHOLD:
        return small_value(decoded(await source.read(start, end), encoding), attribute.partial)
    if is_identity(encoding):
        size: int | None = end - start
    else:
        size = await _count(source, start, end, encoding)
    body = await source.watch.open_message(source.record.uid)
    if size is None or body is None:
        return IString(b"")
    first, last = _partial_bounds(size, attribute.partial)
    if first >= last:
        body.close()
        return IString(b"")
    return decoded_stream(body, start, end, encoding, first, last)


async def binary_size_value(source: MessageSource, attribute: FetchAttribute) -> Value:
    """``BINARY.SIZE[part]`` (RFC 3516 §4.3): octets of the decoded part."""
    span = await _located(source, attribute.section or Section())
    if span is None:
        return 0
    start, end, encoding = span
    if is_identity(encoding):
        return end - start
    if end - start <= STREAM_THRESHOLD:
        return len(decode(encoding, await source.read(start, end)))
    return await _count(source, start, end, encoding) or 0

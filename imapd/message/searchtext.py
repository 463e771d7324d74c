"""Text for SEARCH (RFC 3501 §6.4.4).

String keys match as case-insensitive substrings of *decoded* text:

* header keys (HEADER, SUBJECT, FROM, TO, CC, BCC) look at the values of the
  message's top-level header fields with RFC 2047 words decoded and folding
  removed;
* BODY looks at the body: every text part (and parts without a
  Content-Type, which default to text/plain) with its transfer encoding
  (quoted-printable, base64) and charset decoded, plus the headers of
  attached messages, which are part of the body;
* TEXT looks at the message's header too.

Non-text parts (images, application/*) are not searched.  Both sides are
compared under the ``i;unicode-casemap`` collation (RFC 5051, the default
comparator of RFC 5255 §4.3 I18NLEVEL=1): each is folded with
``casemap.fold`` (titlecase + NFKD-style decomposition) and the needle must
be a substring of the text.  The folding happens once per text:
``searchable_text`` returns folded text and ``folded_header_texts`` folded
header values, for the caller to keep while it tests several strings.
"""

from __future__ import annotations

import binascii
import datetime
import re
from typing import Iterator, Literal, Union

from imapd.message.addresses import parse_address_list
from imapd.message.casemap import fold
from imapd.message.headers import (
    all_values,
    decode_charset,
    decode_words,
    param,
    split_fields,
    unfold,
)
from imapd.message.model import MessageInfo, Part
from imapd.message.structure import STRUCTURED_BUDGET
from imapd.imap.wire.commands import TextScope

Scope = Union[Literal["BODY", "TEXT"], TextScope]

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
# SEARCH FROM/TO/CC/BCC also match the addresses written plainly.
ADDRESS_FIELDS = frozenset({"FROM", "TO", "CC", "BCC"})


def _header_block(raw: bytes, info: MessageInfo) -> bytes:
    root = info.root
    return bytes(raw[root.header_start:root.body_start])


def header_values(raw: bytes, info: MessageInfo, name: str) -> list[str]:
    """Decoded values of every top-level header field called ``name`` (any
    case), in order.  An empty list means the header is absent; a present
    but empty header gives ``""`` (SEARCH HEADER with an empty string
    matches every message that has the field, RFC 3501 §6.4.4)."""
    key = name.encode("utf-8", "replace").lower()
    return [decode_words(unfold(value)) for value in all_values(_header_block(raw, info), key)]


def address_search_text(raw: bytes, info: MessageInfo, name: str) -> list[str]:
    """Text to search for FROM / TO / CC / BCC (RFC 3501 §6.4.4): each
    decoded header value, followed by its addresses written plainly as
    ``name mailbox@host``, so ``user@example.org`` matches even when the
    header spells it with comments or blanks."""
    key = name.encode("utf-8", "replace").lower()
    texts: list[str] = []
    for folded in all_values(_header_block(raw, info), key):
        value = unfold(folded)
        pieces = [decode_words(value)]
        # Parsing is Python-speed: bound it as analyze() does.
        for display, _, mailbox, host in parse_address_list(value[:STRUCTURED_BUDGET]):
            if display:
                pieces.append(decode_words(display))
            if mailbox is not None and host is not None:
                pieces.append(decode_words(mailbox + b"@" + host))
        texts.append("\n".join(pieces))
    return texts


def sent_date(info: MessageInfo) -> datetime.date | None:
    """The date written in the Date header, without time or zone (RFC 3501
    SENTBEFORE / SENTON / SENTSINCE); None when the header is missing or
    unparseable (such a message matches none of the SENT* keys)."""
    return info.sent_date


def _scope_name(scope: Scope) -> str:
    return scope.value if isinstance(scope, TextScope) else str(scope).upper()


def folded_header_texts(raw: bytes, info: MessageInfo, name: str) -> tuple[str, ...]:
    """What SEARCH HEADER / SUBJECT (``header_values``) or FROM / TO / CC /
    BCC (``address_search_text``) compare against, folded with RFC 5051's
    ``i;unicode-casemap``; ``name`` is the key's field, upper-cased for the
    address keys (RFC 3501 §6.4.4)."""
    if name in ADDRESS_FIELDS:
        return tuple(fold(text) for text in address_search_text(raw, info, name))
    return tuple(fold(value) for value in header_values(raw, info, name))


def searchable_text(raw: bytes, info: MessageInfo, scope: Scope) -> str:
    """All decoded text that BODY (or TEXT) searches, folded with RFC 5051's
    ``i;unicode-casemap``; a caller testing several strings against one
    message computes it once."""
    chunks: list[str] = []
    if _scope_name(scope) == "TEXT":
        chunks.append(_header_text(raw, info.root))
    for part in _walk(info.root):
        if part.envelope is not None and part is not info.root:
            chunks.append(_header_text(raw, part))
        if not part.multipart and part.message is None and part.media_type == b"text":
            chunks.append(_decoded_body(raw, part))
    return fold("\n".join(chunks))


def matches_text(raw: bytes, info: MessageInfo, needle: str, scope: Scope) -> bool:
    """SEARCH BODY / TEXT: is ``needle`` a substring of the decoded message
    text under ``i;unicode-casemap`` (RFC 5051)?  An empty needle matches
    every message."""
    return fold(needle) in searchable_text(raw, info, scope)


def _walk(part: Part) -> Iterator[Part]:
    yield part
    for child in part.children:
        yield from _walk(child)
    if part.message is not None:
        yield from _walk(part.message)


def _header_text(raw: bytes, part: Part) -> str:
    fields = split_fields(bytes(raw[part.header_start:part.body_start]))[0]
    return "\n".join(
        decode_words(field.name) + ": " + decode_words(unfold(field.value))
        if field.name else decode_words(unfold(field.raw))
        for field in fields
    )


def _decoded_body(raw: bytes, part: Part) -> str:
    data = bytes(raw[part.body_start:part.body_end])
    return decode_charset(decode_transfer(data, part.encoding), param(part.params, b"charset"))


def decode_transfer(data: bytes, encoding: bytes) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6), leniently: invalid
    base64 characters are skipped and a truncated group dropped; unknown
    encodings are returned as they are."""
    if encoding == b"base64":
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            cleaned = _NOT_BASE64.sub(b"", data)
            cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
            try:
                return binascii.a2b_base64(cleaned)
            except (binascii.Error, ValueError):
                return data
    if encoding == b"quoted-printable":
        try:
            return binascii.a2b_qp(data)
        except (binascii.Error, ValueError):
            return data
    return data

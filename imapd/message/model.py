"""What ``analyze`` keeps about a message, and its compact serialization.

A :class:`MessageInfo` is computed once at APPEND and stored beside the
message (``MessageInfo.to_bytes()`` is the store's opaque ``meta`` blob).
FETCH ENVELOPE / BODY / BODYSTRUCTURE are answered from it alone; body
sections are byte ranges of the stored message (``Part`` offsets).

Strings that come from the message are ``bytes`` exactly as written (after
unfolding), so 8-bit header bytes and RFC 2047 words are reported unchanged
(RFC 3501 §7.4.2).
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from imapd.message.addresses import Address
from imapd.message.headers import Params

#: Version of the serialized form; bump when the layout changes.
FORMAT_VERSION = 1

AddressList = tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class EnvelopeData:
    """The RFC 3501 §7.4.2 envelope fields of one message, as written.

    Each value is the unfolded header value, or None when the header is
    absent; address fields are parsed lists (``()`` when the header is
    present but holds no address).  Defaulting of sender / reply-to to from
    happens when the ENVELOPE is built, so the data stays faithful.
    """

    date: bytes | None = None
    subject: bytes | None = None
    from_: AddressList | None = None
    sender: AddressList | None = None
    reply_to: AddressList | None = None
    to: AddressList | None = None
    cc: AddressList | None = None
    bcc: AddressList | None = None
    in_reply_to: bytes | None = None
    message_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class Disposition:
    """Content-Disposition (RFC 2183): lower-cased type and parameters."""

    kind: bytes
    params: Params


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity and where it lies in the raw message.

    ``header_start <= body_start <= body_end`` are offsets into the raw
    message: the header runs from ``header_start`` to ``body_start``
    (including the blank line), the body from ``body_start`` to ``body_end``
    (for a multipart child, excluding the CRLF before the next boundary,
    which belongs to the boundary: RFC 2046 §5.1.1).

    ``media_type``/``media_subtype`` are lower-case; ``params`` have
    lower-case names.  ``multipart`` is True when the part was split into
    ``children`` (a multipart type without a usable boundary stays a leaf).
    ``message`` is the encapsulated message of a message/rfc822 part, whose
    ``envelope`` is set (as is the root's).  ``lines`` counts the body's text
    lines (a final line without a line break counts too).
    """

    header_start: int
    body_start: int
    body_end: int
    media_type: bytes = b"text"
    media_subtype: bytes = b"plain"
    params: Params = ()
    content_id: bytes | None = None
    description: bytes | None = None
    encoding: bytes = b"7bit"
    md5: bytes | None = None
    disposition: Disposition | None = None
    language: tuple[bytes, ...] | None = None
    location: bytes | None = None
    lines: int = 0
    multipart: bool = False
    children: tuple[Part, ...] = ()
    message: Part | None = None
    envelope: EnvelopeData | None = None

    @property
    def body_size(self) -> int:
        """Body octets as transmitted (RFC 3501 body-fld-octets)."""
        return self.body_end - self.body_start


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """The analysed structure of one message (see :func:`analyze`)."""

    size: int
    root: Part
    sent_date: datetime.date | None = None

    @property
    def envelope_data(self) -> EnvelopeData:
        return self.root.envelope or EnvelopeData()

    @property
    def date_header(self) -> bytes | None:
        """The unfolded Date header value as written, or None."""
        return self.envelope_data.date

    def to_bytes(self) -> bytes:
        """Compact, versioned JSON in UTF-8 (bytes as Latin-1 code points)."""
        doc = {
            "v": FORMAT_VERSION,
            "size": self.size,
            "sent": self.sent_date.isoformat() if self.sent_date else None,
            "root": _dump_part(self.root),
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageInfo:
        """Inverse of :meth:`to_bytes`; ValueError on foreign or corrupt data."""
        doc = _load_document(data)
        try:
            sent = doc.get("sent")
            return cls(
                size=_int(doc["size"]),
                root=_load_part(doc["root"]),
                sent_date=datetime.date.fromisoformat(sent) if sent else None,
            )
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"corrupt message info: {exc!r}") from exc


def envelope_from_bytes(data: bytes) -> EnvelopeData | None:
    """Only the message's own envelope from a :meth:`MessageInfo.to_bytes`
    blob (None when it has none): SORT and THREAD read nothing else, and
    skipping the parts halves the cost of :meth:`MessageInfo.from_bytes`.
    ValueError as ``from_bytes``."""
    doc = _load_document(data)
    try:
        root = doc["root"]
        if not isinstance(root, list) or len(root) != 18:
            raise ValueError("bad part")
        return _load_envelope(root[17])
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"corrupt message info: {exc!r}") from exc


# --- serialization helpers ----------------------------------------------------

def _load_document(data: bytes) -> dict[str, Any]:
    """The JSON object of a :meth:`MessageInfo.to_bytes` blob of this
    format version; ValueError otherwise."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"message info is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
        raise ValueError("unsupported message info version")
    return doc


# Parts are positional lists to keep the blob small; bytes are stored as
# Latin-1 strings (a lossless byte <-> code point mapping).

def _s(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _b(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value.encode("latin-1")


def _bb(value: Any) -> bytes:
    result = _b(value)
    if result is None:
        raise ValueError("unexpected null")
    return result


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("expected a non-negative integer")
    return value


def _dump_params(params: Params) -> list[str | None]:
    return [_s(item) for pair in params for item in pair]


def _load_params(value: Any) -> Params:
    if not isinstance(value, list) or len(value) % 2:
        raise ValueError("bad parameter list")
    return tuple((_bb(value[i]), _bb(value[i + 1])) for i in range(0, len(value), 2))


def _dump_addresses(addresses: AddressList | None) -> list[list[str | None]] | None:
    if addresses is None:
        return None
    return [[_s(field) for field in address] for address in addresses]


def _load_addresses(value: Any) -> AddressList | None:
    if value is None:
        return None
    out: list[Address] = []
    for item in value:
        if not isinstance(item, list) or len(item) != 4:
            raise ValueError("bad address")
        out.append((_b(item[0]), _b(item[1]), _b(item[2]), _b(item[3])))
    return tuple(out)


def _dump_envelope(env: EnvelopeData | None) -> list[Any] | None:
    if env is None:
        return None
    return [
        _s(env.date), _s(env.subject),
        _dump_addresses(env.from_), _dump_addresses(env.sender),
        _dump_addresses(env.reply_to), _dump_addresses(env.to),
        _dump_addresses(env.cc), _dump_addresses(env.bcc),
        _s(env.in_reply_to), _s(env.message_id),
    ]


def _load_envelope(value: Any) -> EnvelopeData | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 10:
        raise ValueError("bad envelope")
    return EnvelopeData(
        _b(value[0]), _b(value[1]),
        _load_addresses(value[2]), _load_addresses(value[3]),
        _load_addresses(value[4]), _load_addresses(value[5]),
        _load_addresses(value[6]), _load_addresses(value[7]),
        _b(value[8]), _b(value[9]),
    )


def _dump_part(part: Part) -> list[Any]:
    dsp = part.disposition
    return [
        part.header_start, part.body_start, part.body_end,
        _s(part.media_type), _s(part.media_subtype), _dump_params(part.params),
        _s(part.content_id), _s(part.description), _s(part.encoding), _s(part.md5),
        None if dsp is None else [_s(dsp.kind), _dump_params(dsp.params)],
        None if part.language is None else [_s(tag) for tag in part.language],
        _s(part.location), part.lines, 1 if part.multipart else 0,
        [_dump_part(child) for child in part.children],
        None if part.message is None else _dump_part(part.message),
        _dump_envelope(part.envelope),
    ]


def _load_part(value: Any) -> Part:
    if not isinstance(value, list) or len(value) != 18:
        raise ValueError("bad part")
    dsp, lang, message = value[10], value[11], value[16]
    header_start, body_start, body_end = _int(value[0]), _int(value[1]), _int(value[2])
    if not header_start <= body_start <= body_end:
        raise ValueError("bad part offsets")
    return Part(
        header_start=header_start, body_start=body_start, body_end=body_end,
        media_type=_bb(value[3]), media_subtype=_bb(value[4]),
        params=_load_params(value[5]),
        content_id=_b(value[6]), description=_b(value[7]),
        encoding=_bb(value[8]), md5=_b(value[9]),
        disposition=None if dsp is None else Disposition(_bb(dsp[0]), _load_params(dsp[1])),
        language=None if lang is None else tuple(_bb(tag) for tag in lang),
        location=_b(value[12]), lines=_int(value[13]), multipart=bool(value[14]),
        children=tuple(_load_part(child) for child in value[15]),
        message=None if message is None else _load_part(message),
        envelope=_load_envelope(value[17]),
    )

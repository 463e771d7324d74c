"""What SORT and THREAD need of a message, computed once at delivery
(RFC 5256 §2.1, §2.2, §3; RFC 5957 §3), in a compact byte form.

SORT and THREAD over 100,000 messages used to decode every message's stored
analysis (a JSON document, ~45 µs each) for a few header fields, and THREAD
REFERENCES read each header block again for Message-ID / References /
In-Reply-To. The store now keeps these *facts* beside each body (the
engines compute them where they index SEARCH's text, from the bytes and
the analysis) and the commands decode one short row per message:

* ``sort_date``: the Date header's instant (UTC seconds) as SORT's DATE
  reads it (``sortkeys.sent_instant``), None when missing or unparseable
  (the caller falls back to the internal date, RFC 5256 §2.2);
* ``thread_date``: the same for THREAD (``thread.sent_timestamp``, which
  accepts out-of-range dates the way ``calendar.timegm`` does); stored
  only when it differs, so the two commands keep exactly today's answers;
* ``subject``: the base subject (RFC 5256 §2.1) folded with
  ``i;unicode-casemap`` (RFC 5051), and ``is_reply`` (the extraction
  removed a reply/forward marker: REFERENCES step 4 / ORDEREDSUBJECT);
* ``from_``, ``to``, ``cc``: SORT's FROM/TO/CC keys (first addr-mailbox,
  folded); ``display_from``, ``display_to``: DISPLAYFROM/DISPLAYTO (RFC 5957);
* ``message_id`` and ``parents`` (``threading.parent_ids``: References, else
  the first In-Reply-To id) for THREAD=REFERENCES.

The encoding is a version byte, a fixed ``struct`` header (flags, two
doubles, the lengths) and the UTF-8 strings back to back: decoding is one
``unpack_from`` and a few slices (about 2 µs). A blob of another version
raises ValueError and the caller computes the facts as before, so the format
can evolve without a migration. Pure: no I/O, safe on any thread.
"""

from __future__ import annotations

import calendar
import datetime
import email.utils
import struct
from typing import Final, NamedTuple, Sequence

from imapd.imap.wire.sort_command import SortCriterion, SortKey
from imapd.message import analyze
from imapd.message.basesubject import base_subject
from imapd.message.casemap import fold
from imapd.message.headers import decode_8bit, first_values
from imapd.message.model import EnvelopeData, MessageInfo
from imapd.message.sortkeys import RECORD_KEYS, KeyValue, StoredFacts, display_key, mailbox_key
from imapd.message.threading import ThreadMessage, parent_ids, parse_msg_ids

VERSION = 1
#: Header octets looked at for Message-ID / References / In-Reply-To (as
#: THREAD reads them: a longer header is cut).
MAX_HEADER_BYTES = 256 * 1024
_ID_HEADERS = (b"message-id", b"references", b"in-reply-to")
_EPOCH = datetime.datetime(1970, 1, 1)

# version, flags, sort_date, thread_date, 7 string lengths, parent count.
_HEAD = struct.Struct("<BBdd8I")
_HAS_SORT_DATE = 1
_HAS_THREAD_DATE = 2  # differs from sort_date (else equal to it)
_IS_REPLY = 4
_HAS_MESSAGE_ID = 8
_NO_THREAD_DATE = 16  # THREAD found no date where SORT did


class NeedsRecord(ValueError):
    """A key needs the message's record (internal date, size), which the
    caller did not read: it reads the record and asks again. A ValueError,
    so callers that fall back on any unusable facts do so here too."""


class SortFacts(NamedTuple):
    """One message's SORT/THREAD facts (see the module docstring)."""

    sort_date: float | None = None
    thread_date: float | None = None
    subject: str = ""
    is_reply: bool = False
    from_: str = ""
    to: str = ""
    cc: str = ""
    display_from: str = ""
    display_to: str = ""
    message_id: bytes | None = None
    parents: tuple[bytes, ...] = ()


def sort_date(date_header: bytes | None) -> float | None:
    """The Date header's instant as SORT's DATE takes it (RFC 5256 §2.2;
    ``sortkeys.sent_instant`` without its internal-date fallback): the
    calendar fields must be valid; no zone is UTC."""
    if date_header:
        try:
            parsed = email.utils.parsedate_tz(decode_8bit(date_header))
            if parsed is not None:
                naive = datetime.datetime(*parsed[:6])  # validates the ranges
                return (naive - _EPOCH).total_seconds() - (parsed[9] or 0)
        except (ValueError, TypeError, OverflowError, IndexError):
            pass
    return None


def thread_date(date_header: bytes | None) -> float | None:
    """The Date header's instant as THREAD takes it (``thread.
    sent_timestamp`` without its fallback): out-of-range fields roll over
    as ``calendar.timegm`` does."""
    if date_header is not None:
        try:
            parsed = email.utils.parsedate_tz(decode_8bit(date_header))
            if parsed is not None:
                return float(calendar.timegm(parsed[:9]) - (parsed[9] or 0))
        except (ValueError, TypeError, OverflowError, IndexError):
            pass
    return None


def facts_of(envelope: EnvelopeData, header: bytes) -> SortFacts:
    """The facts of a message from its envelope and its header block."""
    fields = first_values(header, _ID_HEADERS)
    own = parse_msg_ids(fields.get(b"message-id"))
    base = base_subject(envelope.subject)
    return SortFacts(
        sort_date=sort_date(envelope.date),
        thread_date=thread_date(envelope.date),
        subject=fold(base.text),
        is_reply=base.is_reply_or_forward,
        from_=mailbox_key(envelope.from_),
        to=mailbox_key(envelope.to),
        cc=mailbox_key(envelope.cc),
        display_from=display_key(envelope.from_),
        display_to=display_key(envelope.to),
        message_id=own[0] if own else None,
        parents=parent_ids(fields.get(b"references"), fields.get(b"in-reply-to")),
    )


def facts_for(raw: object, meta: bytes) -> bytes | None:
    """The encoded facts of a message being stored (``raw`` its bytes,
    ``meta`` its stored analysis, analysed again when foreign); None for a
    body not held in memory (a spooled literal), which SORT and THREAD then
    read as before. CPU-bound: engines run it outside their write lock."""
    if not isinstance(raw, bytes):
        return None
    try:
        info = MessageInfo.from_bytes(meta)
    except ValueError:
        info = analyze(raw)
    header = raw[:min(info.root.body_start, MAX_HEADER_BYTES)]
    return encode(facts_of(info.envelope_data, header))


def _text(value: str) -> bytes:
    # surrogatepass: a folded string may hold lone surrogates; they must
    # come back exactly.
    return value.encode("utf-8", "surrogatepass")


def encode(facts: SortFacts) -> bytes:
    """The bytes ``decode`` reads back as ``facts``."""
    flags = 0
    if facts.sort_date is not None:
        flags |= _HAS_SORT_DATE
    if facts.thread_date is not None and facts.thread_date != facts.sort_date:
        flags |= _HAS_THREAD_DATE
    if facts.thread_date is None and facts.sort_date is not None:
        flags |= _NO_THREAD_DATE
    if facts.is_reply:
        flags |= _IS_REPLY
    if facts.message_id is not None:
        flags |= _HAS_MESSAGE_ID
    texts = [_text(facts.subject), _text(facts.from_), _text(facts.to), _text(facts.cc),
             _text(facts.display_from), _text(facts.display_to), facts.message_id or b""]
    head = _HEAD.pack(
        VERSION, flags, facts.sort_date or 0.0,
        facts.thread_date if flags & _HAS_THREAD_DATE else 0.0,
        *(len(text) for text in texts), len(facts.parents))
    lengths = struct.pack(f"<{len(facts.parents)}I", *(len(p) for p in facts.parents))
    return b"".join([head, lengths, *texts, *facts.parents])


def decode(data: bytes) -> SortFacts:
    """Inverse of ``encode``; ValueError for another version or a
    damaged blob."""
    if not data or data[0] != VERSION:
        raise ValueError("unsupported sort facts version")
    try:
        (_v, flags, sort_at, thread_at, *lengths) = _HEAD.unpack_from(data)
        count = lengths.pop()
        position = _HEAD.size
        if count:
            lengths.extend(struct.unpack_from(f"<{count}I", data, position))
            position += 4 * count
        pieces = []
        for length in lengths:
            pieces.append(data[position:position + length])
            position += length
        if position != len(data):
            raise ValueError("sort facts of the wrong length")
        strings = [piece.decode("utf-8", "surrogatepass") for piece in pieces[:6]]
    except (struct.error, UnicodeDecodeError) as error:
        raise ValueError(f"damaged sort facts: {error}") from None
    sort_value = sort_at if flags & _HAS_SORT_DATE else None
    thread_value = None if flags & _NO_THREAD_DATE else sort_value
    return SortFacts(
        sort_value, thread_at if flags & _HAS_THREAD_DATE else thread_value,
        strings[0], bool(flags & _IS_REPLY), strings[1], strings[2], strings[3],
        strings[4], strings[5], pieces[6] if flags & _HAS_MESSAGE_ID else None,
        tuple(pieces[7:]),
    )


def key_value(key: SortKey, record: StoredFacts, facts: SortFacts) -> KeyValue:
    """``sortkeys.key_value`` of one message from its facts (RFC 5256 §3,
    RFC 5957 §3): the same value the envelope gives."""
    if key is SortKey.ARRIVAL:
        return record.internal_date.timestamp()
    if key is SortKey.SIZE:
        return record.size
    if key is SortKey.DATE:
        if facts.sort_date is None:
            return record.internal_date.timestamp()  # RFC 5256 §2.2
        return facts.sort_date
    return getattr(facts, _TEXT_KEYS[key])  # type: ignore[no-any-return]


_TEXT_KEYS: Final = {
    SortKey.SUBJECT: "subject", SortKey.FROM: "from_", SortKey.TO: "to", SortKey.CC: "cc",
    SortKey.DISPLAYFROM: "display_from", SortKey.DISPLAYTO: "display_to",
}


def key_values(
    program: Sequence[SortCriterion], record: StoredFacts, facts: SortFacts,
) -> tuple[KeyValue, ...]:
    """The message's value for each criterion of ``program``, in order."""
    return tuple(key_value(criterion.key, record, facts) for criterion in program)


def thread_message(
    number: int, order: int, internal_date: datetime.datetime, facts: SortFacts,
    with_ids: bool,
) -> ThreadMessage:
    """What threading needs of one message (RFC 5256 §3), from its facts;
    the sent date falls back to the internal date (§2.2)."""
    sent = facts.thread_date
    if sent is None:
        sent = internal_date.timestamp()
    if not with_ids:
        return ThreadMessage(number, order, sent, facts.subject, facts.is_reply)
    return ThreadMessage(number, order, sent, facts.subject, facts.is_reply,
                         facts.message_id, facts.parents)


# Where each string key's text is among the encoded strings.
_STRING_AT: Final = {
    SortKey.SUBJECT: 0, SortKey.FROM: 1, SortKey.TO: 2, SortKey.CC: 3,
    SortKey.DISPLAYFROM: 4, SortKey.DISPLAYTO: 5,
}


def blob_key_values(
    program: Sequence[SortCriterion], record: StoredFacts | None, blob: bytes,
) -> tuple[KeyValue, ...]:
    """``key_values(program, record, decode(blob))`` reading only the parts
    of ``blob`` the keys need (SORT (DATE) over 100,000 messages: one
    ``unpack_from`` each, no string decoded). ValueError as ``decode``, and
    ``NeedsRecord`` when ``record`` is None (not read: SORT ALL) and a key
    needs it (ARRIVAL, SIZE, DATE of a message without a Date)."""
    if not blob or blob[0] != VERSION:
        raise ValueError("unsupported sort facts version")
    try:
        head = _HEAD.unpack_from(blob)
    except struct.error as error:
        raise ValueError(f"damaged sort facts: {error}") from None
    values: list[KeyValue] = []
    for criterion in program:
        key = criterion.key
        if key is SortKey.DATE and head[1] & _HAS_SORT_DATE:
            values.append(head[2])
        elif key in RECORD_KEYS or key is SortKey.DATE:
            if record is None:
                raise NeedsRecord(key.name)
            values.append(record.size if key is SortKey.SIZE
                          else record.internal_date.timestamp())
        else:
            index = _STRING_AT[key]
            start = _HEAD.size + 4 * head[11] + sum(head[4:4 + index])
            end = start + head[4 + index]
            if end > len(blob):
                raise ValueError("sort facts of the wrong length")
            try:
                values.append(blob[start:end].decode("utf-8", "surrogatepass"))
            except UnicodeDecodeError as error:
                raise ValueError(f"damaged sort facts: {error}") from None
    return tuple(values)


def blob_thread_message(
    number: int, order: int, internal_date: datetime.datetime | None, blob: bytes,
    with_ids: bool,
) -> ThreadMessage:
    """``thread_message(..., decode(blob), with_ids)`` reading only what
    threading needs (no address key is decoded). ValueError as ``decode``;
    ``NeedsRecord`` when the sent date is the internal date (RFC 5256
    §2.2) and ``internal_date`` is None (not read: THREAD ALL)."""
    if not blob or blob[0] != VERSION:
        raise ValueError("unsupported sort facts version")
    try:
        (_v, flags, sort_at, thread_at, subject_length, *others) = _HEAD.unpack_from(blob)
        count = others[6]
        start = _HEAD.size + 4 * count
        subject = blob[start:start + subject_length].decode("utf-8", "surrogatepass")
    except (struct.error, UnicodeDecodeError) as error:
        raise ValueError(f"damaged sort facts: {error}") from None
    if flags & _HAS_THREAD_DATE:
        sent = thread_at
    elif flags & _HAS_SORT_DATE and not flags & _NO_THREAD_DATE:
        sent = sort_at
    elif internal_date is None:
        raise NeedsRecord("internal date")
    else:
        sent = internal_date.timestamp()  # RFC 5256 §2.2
    if not with_ids:
        return ThreadMessage(number, order, sent, subject, bool(flags & _IS_REPLY))
    position = start + subject_length + sum(others[:5])
    id_end = position + others[5]
    message_id = blob[position:id_end] if flags & _HAS_MESSAGE_ID else None
    parents: tuple[bytes, ...] = ()
    if count:
        try:
            lengths = struct.unpack_from(f"<{count}I", blob, _HEAD.size)
        except struct.error as error:
            raise ValueError(f"damaged sort facts: {error}") from None
        pieces = []
        position = id_end
        for length in lengths:
            pieces.append(blob[position:position + length])
            position += length
        parents = tuple(pieces)
        id_end = position
    if id_end != len(blob):
        raise ValueError("sort facts of the wrong length")
    return ThreadMessage(number, order, sent, subject, bool(flags & _IS_REPLY),
                         message_id, parents)

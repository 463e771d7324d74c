"""Sort keys of one message (RFC 5256 §2.2, §3; RFC 5957 §3), and the
ordering of many messages by a list of keys.

Every string key is compared under ``i;unicode-casemap`` (RFC 5051; RFC
5256 §3 names ``i;ascii-casemap`` as the default, and RFC 5255 §4.2 makes the
server's collation apply once I18NLEVEL is advertised): each string is
folded once (``casemap.fold``) and the folded strings compare code point by
code point, which is the order of their UTF-8 octets (``i;octet`` on the
prepared strings, RFC 5051 §2). A missing field sorts as the empty string
(RFC 5256 §3: "If a key is missing, the empty string is used").

* ARRIVAL: the internal date (RFC 3501 INTERNALDATE), as an instant.
* DATE: the sent date (RFC 5256 §2.2): the Date header's instant in UTC, or
  the internal date when the header is missing or cannot be parsed; a date
  without a zone is taken as UTC.
* FROM, TO, CC: the ``addr-mailbox`` (local part) of the first address of
  the field (RFC 5256 §3); for a group that is the group's name.
* DISPLAYFROM, DISPLAYTO: the first address's display name, RFC 2047
  decoded; when it has none (or it is blank), its ``addr-spec``
  (``local@domain``; RFC 5957 §3), for a group its name.
* SIZE: RFC822.SIZE. SUBJECT: the base subject (RFC 5256 §2.1).

Ties keep the mailbox order (RFC 5256 §3: "sorted according to the order
in which they appear in the mailbox"), whatever REVERSE says.
"""

from __future__ import annotations

import datetime
import email.utils
from typing import Callable, Final, Protocol, Sequence, TypeVar

from imapd.imap.wire.sort_command import SortCriterion, SortKey
from imapd.message.addresses import MISSING_DOMAIN, Address
from imapd.message.basesubject import base_subject
from imapd.message.casemap import fold
from imapd.message.headers import decode_8bit, decode_words
from imapd.message.model import AddressList, EnvelopeData



KeyValue = int | float | str
T = TypeVar("T")

# Keys answered from the store record alone (no analysis needed).
RECORD_KEYS: Final = frozenset({SortKey.ARRIVAL, SortKey.SIZE})


def needs_info(program: Sequence[SortCriterion]) -> bool:
    """Does any key need the message's analysis (its header fields)?"""
    return any(criterion.key not in RECORD_KEYS for criterion in program)


def sent_instant(date_header: bytes | None, internal: datetime.datetime) -> float:
    """RFC 5256 §2.2 sent date as a POSIX timestamp (UTC-normalised)."""
    if date_header:
        try:
            parsed = email.utils.parsedate_tz(decode_8bit(date_header))
            if parsed is not None:
                offset = parsed[9] or 0  # no zone: UTC
                naive = datetime.datetime(*parsed[:6])  # validates the ranges
                return (naive - datetime.datetime(1970, 1, 1)).total_seconds() - offset
        except (ValueError, TypeError, OverflowError, IndexError):
            pass
    return internal.timestamp()


def _first_address(addresses: AddressList | None) -> Address | None:
    """The field's first address. A group's start marker counts: its
    ``addr-mailbox`` is the group's name (RFC 3501 §7.4.2), which is what
    the keys then use (as Dovecot's imaptest scripts expect: ``To: a: x@y;``
    sorts as "a")."""
    return addresses[0] if addresses else None


def mailbox_key(addresses: AddressList | None) -> str:
    """FROM / TO / CC: the first address's ``addr-mailbox``, folded."""
    first = _first_address(addresses)
    if first is None or first[2] is None:
        return ""
    return fold(decode_8bit(first[2]))


def display_key(addresses: AddressList | None) -> str:
    """DISPLAYFROM / DISPLAYTO (RFC 5957 §3): the first address's display
    name, RFC 2047 decoded; without one (or when it is blank), its
    addr-spec (a group: its name; no domain written: the local part)."""
    first = _first_address(addresses)
    if first is None:
        return ""
    name, _adl, local, host = first
    if name is not None:
        shown = " ".join(decode_words(name).split())
        if shown:
            return fold(shown)
    spec = decode_8bit(local or b"")
    if host is not None and host != MISSING_DOMAIN:
        spec += "@" + decode_8bit(host)
    return fold(spec)


def subject_key(subject: bytes | None) -> str:
    """SUBJECT: the base subject (RFC 5256 §2.1), folded."""
    return fold(base_subject(subject).text)


class StoredFacts(Protocol):
    """What the store knows of a message besides its analysis
    (``imapd.mail.records.MessageRecord`` has both)."""

    @property
    def internal_date(self) -> datetime.datetime: ...

    @property
    def size(self) -> int: ...


def key_value(key: SortKey, record: StoredFacts, env: EnvelopeData | None) -> KeyValue:
    """One sort key of one message; its envelope (``MessageInfo.
    envelope_data`` or ``model.envelope_from_bytes``) is needed unless the
    key is in ``RECORD_KEYS`` (None counts as every header field missing)."""
    if key is SortKey.ARRIVAL:
        return record.internal_date.timestamp()
    if key is SortKey.SIZE:
        return record.size
    if key is SortKey.DATE:
        return sent_instant(env.date if env else None, record.internal_date)
    if env is None:
        return ""
    if key is SortKey.SUBJECT:
        return subject_key(env.subject)
    if key is SortKey.FROM:
        return mailbox_key(env.from_)
    if key is SortKey.TO:
        return mailbox_key(env.to)
    if key is SortKey.CC:
        return mailbox_key(env.cc)
    if key is SortKey.DISPLAYFROM:
        return display_key(env.from_)
    return display_key(env.to)  # SortKey.DISPLAYTO


def key_values(
    program: Sequence[SortCriterion], record: StoredFacts, env: EnvelopeData | None,
) -> tuple[KeyValue, ...]:
    """The message's value for each criterion of ``program``, in order."""
    return tuple(key_value(criterion.key, record, env) for criterion in program)


def order(
    items: Sequence[T], keys: Callable[[T], tuple[KeyValue, ...]],
    program: Sequence[SortCriterion],
) -> list[T]:
    """``items`` (given in mailbox order) sorted by ``program``; ``keys``
    gives an item's ``key_values``. Ties stay in mailbox order (§3).

    One stable sort per criterion, the last criterion first: each pass
    keeps the order of the previous passes among equal keys, and Python's
    ``reverse=True`` is stable too, so REVERSE never reverses ties. Each
    pass sorts positions by one column of keys (a C-level lookup per
    comparison key, no Python function call). Pure: safe on a worker
    thread."""
    computed = [keys(item) for item in items]
    positions = list(range(len(computed)))
    for index in range(len(program) - 1, -1, -1):
        column = [values[index] for values in computed]
        positions.sort(key=column.__getitem__, reverse=program[index].reverse)
    return [items[position] for position in positions]

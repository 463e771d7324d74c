"""The identity of a message across stores, for resumable imports and
migrations: Message-ID + size + internal date (issue 17, as imapsync does).

Two messages with the same fingerprint are taken as the same message. The
importers count fingerprints (a multiset), so a source that really holds
the same message twice gets it twice, and a re-run after an interruption
imports each message exactly once: whatever was committed is counted and
skipped, whatever was not is imported.
"""

from __future__ import annotations

import datetime
from typing import NamedTuple

from imapd.message.model import MessageInfo

# Message-IDs longer than this are cut (a bound on memory per fingerprint;
# real ones are under 100 octets, RFC 5322 §3.6.4).
MAX_ID = 998


class Fingerprint(NamedTuple):
    message_id: bytes
    size: int
    internal_date: int  # seconds since the epoch: what every engine keeps


def normalize_id(message_id: bytes | None) -> bytes:
    """The Message-ID as compared: folding whitespace removed (RFC 5322
    §3.6.4 allows CFWS around the msg-id), at most ``MAX_ID`` octets; b""
    when the header is absent."""
    if not message_id:
        return b""
    return b"".join(message_id.split())[:MAX_ID]


def fingerprint(message_id: bytes | None, size: int,
                internal_date: datetime.datetime) -> Fingerprint:
    """The fingerprint of a message of ``size`` octets (as stored: CRLF line
    ends) received at ``internal_date`` (timezone-aware; whole seconds, the
    IMAP INTERNALDATE resolution of RFC 3501 §2.3.3)."""
    return Fingerprint(normalize_id(message_id), size, int(internal_date.timestamp()))


def fingerprint_of_meta(meta: bytes, size: int,
                        internal_date: datetime.datetime) -> Fingerprint:
    """The fingerprint of a stored message from its analysis blob (the
    ``meta`` of ``MessageRecord``); a blob that cannot be read counts as no
    Message-ID (size and date still tell most messages apart)."""
    try:
        message_id = MessageInfo.from_bytes(meta).envelope_data.message_id if meta else None
    except ValueError:
        message_id = None
    return fingerprint(message_id, size, internal_date)

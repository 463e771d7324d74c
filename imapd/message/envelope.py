"""ENVELOPE (RFC 3501 §7.4.2): collecting the fields and building the value.

RFC 3501 §7.4.2 rules applied here:

* fields in the order date, subject, from, sender, reply-to, to, cc, bcc,
  in-reply-to, message-id;
* date, subject, in-reply-to and message-id are NIL when the header is
  absent and the empty string when it is present but empty; values are the
  header text as written (unfolded, RFC 2047 words left encoded);
* an address list is NIL when absent or when it holds no address;
* "If the Sender or Reply-To lines are absent in the [RFC-2822] header, or
  are present but empty, the server sets the corresponding member of the
  envelope to be the same value as the from member";
* group syntax: ``(NIL NIL "group" NIL)`` ... ``(NIL NIL NIL NIL)``.

When a header occurs more than once, the first occurrence is used.
"""

from __future__ import annotations

from typing import Iterable

from imapd.message.addresses import parse_address_list
from imapd.message.headers import HeaderField, unfold
from imapd.message.model import AddressList, EnvelopeData, MessageInfo
from imapd.wire.values import PList, Value, nstring

_TEXT_FIELDS = frozenset((b"date", b"subject", b"in-reply-to", b"message-id"))
_ADDRESS_FIELDS = frozenset((b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc"))


def build_envelope_data(fields: Iterable[HeaderField]) -> EnvelopeData:
    """Collect the envelope fields of one message header (first occurrence
    of each header wins)."""
    texts: dict[bytes, bytes] = {}
    lists: dict[bytes, AddressList] = {}
    for field in fields:
        key = field.key
        if key in _TEXT_FIELDS:
            if key not in texts:
                texts[key] = unfold(field.value)
        elif key in _ADDRESS_FIELDS and key not in lists:
            lists[key] = parse_address_list(unfold(field.value))
    return EnvelopeData(
        date=texts.get(b"date"),
        subject=texts.get(b"subject"),
        from_=lists.get(b"from"),
        sender=lists.get(b"sender"),
        reply_to=lists.get(b"reply-to"),
        to=lists.get(b"to"),
        cc=lists.get(b"cc"),
        bcc=lists.get(b"bcc"),
        in_reply_to=texts.get(b"in-reply-to"),
        message_id=texts.get(b"message-id"),
    )


def _addresses(addresses: AddressList | None) -> Value:
    if not addresses:
        return None
    return PList(tuple(
        PList((nstring(name), nstring(adl), nstring(mailbox), nstring(host)))
        for name, adl, mailbox, host in addresses
    ))


def envelope_value(env: EnvelopeData | None) -> PList:
    """The ENVELOPE value of one (possibly encapsulated) message."""
    if env is None:
        env = EnvelopeData()
    from_ = _addresses(env.from_)
    sender = _addresses(env.sender) if env.sender else from_
    reply_to = _addresses(env.reply_to) if env.reply_to else from_
    return PList((
        nstring(env.date),
        nstring(env.subject),
        from_,
        sender,
        reply_to,
        _addresses(env.to),
        _addresses(env.cc),
        _addresses(env.bcc),
        nstring(env.in_reply_to),
        nstring(env.message_id),
    ))


def envelope(info: MessageInfo) -> Value:
    """FETCH ENVELOPE of the message (RFC 3501 §7.4.2)."""
    return envelope_value(info.root.envelope)


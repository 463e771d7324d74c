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

from typing import Callable, Mapping

from imapd.message.addresses import parse_address_list
from imapd.message.headers import unfold
from imapd.message.model import AddressList, EnvelopeData, MessageInfo
from imapd.imap.wire.values import PList, Value, nstring

#: The header fields an ENVELOPE is built from (lower-case).
ENVELOPE_FIELDS = (
    b"date", b"subject", b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc",
    b"in-reply-to", b"message-id",
)


def build_envelope_data(
    values: Mapping[bytes, bytes],
    budget: Callable[[bytes], bytes | None] = lambda value: value,
    max_text: int | None = None,
) -> EnvelopeData:
    """Build the envelope from the still-folded values of the first
    occurrence of each :data:`ENVELOPE_FIELDS` header (absent ones missing).

    ``budget`` may shorten address-list values before they are parsed and
    ``max_text`` caps the other values (hostile-input limits of the caller).
    """

    def text(name: bytes) -> bytes | None:
        value = values.get(name)
        return None if value is None else unfold(value)[:max_text]

    def addresses(name: bytes) -> AddressList | None:
        value = values.get(name)
        if value is None:
            return None
        return parse_address_list(budget(unfold(value)) or b"")

    return EnvelopeData(
        date=text(b"date"),
        subject=text(b"subject"),
        from_=addresses(b"from"),
        sender=addresses(b"sender"),
        reply_to=addresses(b"reply-to"),
        to=addresses(b"to"),
        cc=addresses(b"cc"),
        bcc=addresses(b"bcc"),
        in_reply_to=text(b"in-reply-to"),
        message_id=text(b"message-id"),
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


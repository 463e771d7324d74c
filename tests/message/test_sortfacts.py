"""SORT/THREAD facts stored at delivery (imapd.message.sortfacts): the keys
they give are exactly the ones the analysis gives (RFC 5256 §2.1, §2.2, §3;
RFC 5957 §3), and the byte form round-trips."""

from __future__ import annotations

import datetime
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.commands.thread import sent_timestamp
from imapd.imap.wire.sort_command import SortCriterion, SortKey
from imapd.mail.records import MessageRecord
from imapd.message import analyze, casemap, sortfacts
from imapd.message.basesubject import base_subject
from imapd.message.headers import first_values
from imapd.message.sortkeys import key_values
from imapd.message.threading import parent_ids, parse_msg_ids

UTC = datetime.timezone.utc
INTERNAL = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
PROGRAM = [SortCriterion(key) for key in SortKey]


class Stored(NamedTuple):
    internal_date: datetime.datetime
    size: int


def _analysis_keys(raw: bytes) -> tuple[object, ...]:
    """SORT's keys and THREAD's inputs as the commands computed them from
    the analysis and the header block before the facts existed."""
    info = analyze(raw)
    env = info.envelope_data
    record = MessageRecord(1, (), INTERNAL, len(raw), 1)
    block = raw[:info.root.body_start]
    fields = first_values(block, (b"message-id", b"references", b"in-reply-to"))
    own = parse_msg_ids(fields.get(b"message-id"))
    base = base_subject(env.subject)
    return (key_values(PROGRAM, Stored(INTERNAL, len(raw)), env),
            sent_timestamp(env.date, record), casemap.fold(base.text),
            base.is_reply_or_forward, own[0] if own else None,
            parent_ids(fields.get(b"references"), fields.get(b"in-reply-to")))


def _facts_keys(raw: bytes) -> tuple[object, ...]:
    blob = sortfacts.facts_for(raw, analyze(raw).to_bytes())
    assert blob is not None
    facts = sortfacts.decode(blob)
    message = sortfacts.thread_message(1, 1, INTERNAL, facts, True)
    return (sortfacts.key_values(PROGRAM, Stored(INTERNAL, len(raw)), facts),
            message.sent, message.subject, message.is_reply, message.message_id,
            message.references)


_DATES = st.sampled_from([
    b"Tue, 8 Feb 1994 01:00:00 +0900", b"8 Feb 1994 01:00", b"Tue, 31 Feb 1994 01:00:00 +0000",
    b"Tue, 8 Feb 1994 25:00:00 +0000", b"yesterday", b"", b"\xff\xfe 1994",
    b"Mon, 7 Feb 94 21:52:25 -0800", b"1 Jan 0001 00:00:00 +0000", b"Sat, 1 Jan 2000 00:00:60 GMT",
])
_SUBJECTS = st.sampled_from([
    b"Re: [list] Caf\xc3\xa9 (fwd)", b"Fwd: Re: re: hello", b"=?utf-8?q?R=C3=A9union?=",
    b"[a] [b] Re[2]: x", b"", b"   ", b"\xe9t\xe9", b"Fw: (fwd) (fwd)", b"plain subject",
])
_ADDRESSES = st.sampled_from([
    b"=?utf-8?q?=C3=89mile?= <Emile@Example.org>, second@example.org", b"\"  \" <Zoe@a.example>",
    b"team: carol@a.example;", b"undisclosed-recipients:;", b"nodomain", b"", b"B\xc3\xa9a <b@x>",
])
_IDS = st.sampled_from([
    b"<a@b>", b"<a@b> <c@d>", b"  <x@y>\r\n <z@w>", b"garbage", b"", b"<a@b> (comment) <e@f>",
])


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    fields = []
    for name, values in ((b"Date", _DATES), (b"Subject", _SUBJECTS), (b"From", _ADDRESSES),
                         (b"To", _ADDRESSES), (b"Cc", _ADDRESSES), (b"Message-ID", _IDS),
                         (b"References", _IDS), (b"In-Reply-To", _IDS)):
        if draw(st.booleans()):
            fields.append(name + b": " + draw(values) + b"\r\n")
    fields = draw(st.permutations(fields))
    return b"".join(fields) + b"\r\nbody\r\n"


@settings(max_examples=300, deadline=None)
@given(messages())
def test_facts_give_the_analysis_keys(raw: bytes) -> None:
    assert _facts_keys(raw) == _analysis_keys(raw)


@given(st.builds(
    sortfacts.SortFacts,
    st.none() | st.floats(allow_nan=False), st.none() | st.floats(allow_nan=False),
    st.text(), st.booleans(), st.text(), st.text(), st.text(), st.text(), st.text(),
    st.none() | st.binary(), st.lists(st.binary()).map(tuple)))
def test_encoding_round_trips(facts: sortfacts.SortFacts) -> None:
    assert sortfacts.decode(sortfacts.encode(facts)) == facts


def test_foreign_analysis_is_computed_again() -> None:
    raw = b"Subject: Re: x\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n"
    blob = sortfacts.facts_for(raw, b"not an analysis")
    assert blob is not None
    facts = sortfacts.decode(blob)
    assert (facts.subject, facts.is_reply, facts.message_id) == ("X", True, b"m@x")


def test_spooled_bodies_have_no_facts() -> None:
    assert sortfacts.facts_for(bytearray(b"Subject: x\r\n\r\n"), b"") is None


@pytest.mark.parametrize("blob", [b"", b"\x02", b"\x01", b"\x01" + bytes(60),
                                  sortfacts.encode(sortfacts.SortFacts(subject="ab"))[:-1]])
def test_damaged_or_foreign_blobs_are_refused(blob: bytes) -> None:
    with pytest.raises(ValueError):
        sortfacts.decode(blob)


@given(st.builds(
    sortfacts.SortFacts,
    st.none() | st.floats(allow_nan=False), st.none() | st.floats(allow_nan=False),
    st.text(), st.booleans(), st.text(), st.text(), st.text(), st.text(), st.text(),
    st.none() | st.binary(), st.lists(st.binary(), max_size=3).map(tuple)),
    st.lists(st.sampled_from(list(SortKey)), min_size=1, max_size=4),
    st.integers(0, 10**6))
def test_keys_read_from_the_blob_are_the_decoded_ones(
    facts: sortfacts.SortFacts, keys: list[SortKey], size: int,
) -> None:
    program = [SortCriterion(key) for key in keys]
    blob = sortfacts.encode(facts)
    stored = Stored(INTERNAL, size)
    assert (sortfacts.blob_key_values(program, stored, blob)
            == sortfacts.key_values(program, stored, facts))


def test_keys_from_a_damaged_blob_are_refused() -> None:
    blob = sortfacts.encode(sortfacts.SortFacts(subject="abc"))
    with pytest.raises(ValueError):
        sortfacts.blob_key_values([SortCriterion(SortKey.SUBJECT)], Stored(INTERNAL, 1), blob[:-1])
    with pytest.raises(ValueError):
        sortfacts.blob_key_values([SortCriterion(SortKey.DATE)], Stored(INTERNAL, 1), b"\x02")


@given(st.builds(
    sortfacts.SortFacts,
    st.none() | st.floats(allow_nan=False), st.none() | st.floats(allow_nan=False),
    st.text(), st.booleans(), st.text(), st.text(), st.text(), st.text(), st.text(),
    st.none() | st.binary(), st.lists(st.binary(), max_size=3).map(tuple)),
    st.booleans())
def test_thread_messages_read_from_the_blob_are_the_decoded_ones(
    facts: sortfacts.SortFacts, with_ids: bool,
) -> None:
    blob = sortfacts.encode(facts)
    assert (sortfacts.blob_thread_message(3, 2, INTERNAL, blob, with_ids)
            == sortfacts.thread_message(3, 2, INTERNAL, facts, with_ids))


@pytest.mark.parametrize("cut", [1, 5, 60])
def test_thread_message_from_a_damaged_blob_is_refused(cut: int) -> None:
    blob = sortfacts.encode(sortfacts.SortFacts(subject="abc", message_id=b"<m@x>",
                                                parents=(b"<p@x>",)))
    with pytest.raises(ValueError):
        sortfacts.blob_thread_message(1, 1, INTERNAL, blob[:-cut], True)

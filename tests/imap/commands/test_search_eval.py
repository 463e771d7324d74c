"""The SEARCH evaluator: three-valued evaluation never contradicts the full
answer, the full answer equals a plain reference evaluator, and cheap keys
keep SEARCH from reading message bytes it does not need."""

from __future__ import annotations

import datetime
from typing import Any, Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.commands.search_eval import Candidate, Evaluator
from imapd.mail.records import MessageRecord
from imapd.message import MessageInfo, address_search_text, analyze, header_values, matches_text
from imapd.message.casemap import contains
from imapd.core.model import SeqRange, SequenceSet
from imapd.imap.wire.commands import (
    DateField, DateOp, SearchAll, SearchAnd, SearchDate, SearchFlag, SearchHeader, SearchKey,
    SearchNot, SearchOr, SearchSeq, SearchSize, SearchText, SearchUid, TextScope,
)
from tests.imap.commands.harness import Client, MailServer

RAWS = [
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nFrom: Ann <ann@example.org>\r\n"
    b"Subject: lunch\r\n\r\nSee you at noon\r\n",
    b"From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>\r\nTo: ann@example.org\r\n"
    b"Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"aGVsbG8gd29ybGQ=\r\n",
    b"Subject: none\r\n\r\nnoon meeting\r\n",
]
INFOS = [analyze(raw) for raw in RAWS]
FLAG_NAMES = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Work", "Later"]
WORDS = ["", "noon", "ann", "WORLD", "gr\u00fc\u00dfe", "j\u00f6rg", "lunch", "zzz", "example"]
DAYS = [datetime.date(1994, 2, d) for d in (6, 7, 8)]

seqsets = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(1, 6)), st.one_of(st.none(), st.integers(1, 6))),
    min_size=1, max_size=3,
).map(lambda rs: SequenceSet(tuple(SeqRange(a, b) for a, b in rs)))
leaf_keys: st.SearchStrategy[SearchKey] = st.one_of(
    st.just(SearchAll()),
    st.builds(SearchFlag, st.sampled_from(FLAG_NAMES + ["\\Recent", "\\SEEN", "$work"]), st.booleans()),
    st.builds(SearchSize, st.booleans(), st.integers(0, 200)),
    st.builds(SearchSeq, seqsets),
    st.builds(SearchUid, seqsets),
    st.builds(SearchDate, st.sampled_from(DateField), st.sampled_from(DateOp), st.sampled_from(DAYS)),
    st.builds(SearchHeader, st.sampled_from(["FROM", "TO", "SUBJECT", "X-NONE"]), st.sampled_from(WORDS)),
    st.builds(SearchText, st.sampled_from(TextScope), st.sampled_from(WORDS)),
)
keys: st.SearchStrategy[SearchKey] = st.recursive(
    leaf_keys,
    lambda inner: st.one_of(
        st.builds(SearchNot, inner),
        st.builds(SearchOr, inner, inner),
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: SearchAnd(tuple(ks))),
    ),
    max_leaves=8,
)


@st.composite
def candidates(draw: Callable[[Any], Any]) -> tuple[Candidate, int]:
    index = draw(st.integers(0, len(RAWS) - 1))
    zone = datetime.timezone(datetime.timedelta(hours=draw(st.integers(-12, 12))))
    record = MessageRecord(
        uid=draw(st.integers(1, 6)),
        flags=tuple(draw(st.lists(st.sampled_from(FLAG_NAMES), unique=True))),
        internal_date=datetime.datetime(1994, 2, 7, draw(st.integers(0, 23)), tzinfo=zone),
        size=len(RAWS[index]),
        modseq=1,
    )
    seq = draw(st.integers(1, 6))
    return Candidate(seq, record, draw(st.booleans())), index


def reference(key: SearchKey, c: Candidate, raw: bytes, info: MessageInfo) -> bool:
    """RFC 3501 §6.4.4 read plainly, two-valued, with everything loaded."""
    if isinstance(key, SearchAnd):
        return all(reference(k, c, raw, info) for k in key.keys)
    if isinstance(key, SearchOr):
        return reference(key.left, c, raw, info) or reference(key.right, c, raw, info)
    if isinstance(key, SearchNot):
        return not reference(key.key, c, raw, info)
    if isinstance(key, SearchAll):
        return True
    if isinstance(key, SearchFlag):
        if key.flag.lower() == "\\recent":
            has = c.recent
        else:
            has = key.flag.lower() in {f.lower() for f in c.record.flags}
        return has == key.present
    if isinstance(key, SearchSize):
        return c.record.size > key.size if key.larger else c.record.size < key.size
    if isinstance(key, SearchSeq):
        return key.seqset.contains(c.seq, 6)
    if isinstance(key, SearchUid):
        return key.seqset.contains(c.record.uid, 6)
    if isinstance(key, SearchDate):
        day = c.record.internal_date.date() if key.field is DateField.INTERNAL else info.sent_date
        if day is None:
            return False
        return {DateOp.BEFORE: day < key.date, DateOp.ON: day == key.date,
                DateOp.SINCE: day >= key.date}[key.op]
    if isinstance(key, SearchHeader):
        if key.field in ("FROM", "TO"):
            values = address_search_text(raw, info, key.field)
        else:
            values = header_values(raw, info, key.field)
        return any(contains(v, key.value) for v in values)  # RFC 5051 substring
    assert isinstance(key, SearchText)
    return matches_text(raw, info, key.value, key.scope)


@settings(max_examples=400, deadline=None)
@given(key=keys, drawn=candidates())
def test_partial_answers_agree_with_the_full_answer(key: SearchKey, drawn: tuple[Candidate, int]) -> None:
    candidate, index = drawn
    evaluator = Evaluator(exists=6, largest_uid=6)
    cheap = evaluator.evaluate(key, candidate)
    candidate.info = INFOS[index]
    with_info = evaluator.evaluate(key, candidate)
    candidate.raw = RAWS[index]
    full = evaluator.evaluate(key, candidate)
    assert full is not None
    assert full == reference(key, candidate, RAWS[index], INFOS[index])
    assert cheap in (None, full) and with_info in (None, full)
    if cheap is not None:
        assert with_info == cheap


def test_false_and_unknown_is_false() -> None:
    record = MessageRecord(1, (), datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), 10, 1)
    candidate = Candidate(1, record, False)
    evaluator = Evaluator(1, 1)
    text = SearchText(TextScope.TEXT, "x")
    assert evaluator.evaluate(SearchAnd((SearchFlag("\\Seen", True), text)), candidate) is False
    assert evaluator.evaluate(SearchOr(SearchFlag("\\Seen", False), text), candidate) is True
    assert evaluator.evaluate(SearchAnd((SearchFlag("\\Seen", False), text)), candidate) is None
    assert evaluator.evaluate(SearchNot(text), candidate) is None


@pytest.fixture
def counted_reads(server: MailServer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    original = server.backend.read_message

    async def counting(sel: Any, uid: int, offset: int = 0, length: int | None = None) -> bytes | None:
        reads.append(uid)
        return await original(sel, uid, offset, length)

    # SEARCH reads small messages in batches: each UID of a batch counts.
    batched = server.backend.read_messages

    async def counting_batch(sel: Any, uids: Sequence[int]) -> dict[int, bytes]:
        reads.extend(uids)
        return await batched(sel, uids)

    monkeypatch.setattr(server.backend, "read_message", counting)
    monkeypatch.setattr(server.backend, "read_messages", counting_batch)
    return reads


def test_cheap_keys_spare_the_message_bytes(
    server: MailServer, client: Client, counted_reads: list[int]
) -> None:
    for n in range(1, 11):
        flags = [] if n in (3, 7) else ["\\Seen"]
        message = b"Date: 1 Jan 1990 10:00 +0000\r\nSubject: s%d\r\n\r\nword%d here\r\n" % (n, n)
        server.append("INBOX", message, flags)
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: a SEARCH UNSEEN BODY here
        S: * SEARCH 3 7
        S: a OK SEARCH completed
    """)
    # BODY (TEXT is confirmed by the index alone) needs the bytes of the
    # unseen messages only.
    assert sorted(counted_reads) == [3, 7]
    counted_reads.clear()
    client.transcript("""
        C: b SEARCH OR SEEN BODY word3 SENTBEFORE 1-Jan-2000
        S: * SEARCH 1 2 3 4 5 6 8 9 10
        S: b OK SEARCH completed
        C: c UID SEARCH 2:4 FLAGGED SUBJECT s
        S: * SEARCH
        S: c OK UID SEARCH completed
    """)
    # SENTBEFORE is decided from the analysis; BODY then needs the bytes of
    # the two unseen messages only; FLAGGED rules out everything cheaply.
    assert sorted(counted_reads) == [3, 7]

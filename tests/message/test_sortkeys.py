"""SORT keys (RFC 5256 §2.2, §3; RFC 5957 §3) of single messages, and the
ordering of many: zones normalised, fallbacks to the internal date, first
address (groups by name), display names decoded, base subjects folded,
ties in mailbox order whatever REVERSE says."""

from __future__ import annotations

import datetime
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.wire.sort_command import SortCriterion, SortKey
from imapd.message import MessageInfo, analyze
from imapd.message.model import EnvelopeData, envelope_from_bytes
from imapd.message.sortkeys import (
    display_key, key_value, key_values, mailbox_key, needs_info, order, sent_instant, subject_key,
)

UTC = datetime.timezone.utc
INTERNAL = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)


class Facts(NamedTuple):
    internal_date: datetime.datetime
    size: int


@pytest.mark.parametrize(("header", "expected"), [
    # Zones normalised to UTC (§2.2).
    (b"Mon, 7 Feb 1994 21:52:25 -0800", datetime.datetime(1994, 2, 8, 5, 52, 25, tzinfo=UTC)),
    (b"Tue, 8 Feb 1994 01:00:00 +0900", datetime.datetime(1994, 2, 7, 16, 0, tzinfo=UTC)),
    (b"8 Feb 1994 01:00 +0000", datetime.datetime(1994, 2, 8, 1, 0, tzinfo=UTC)),
    # No zone (or "-0000"): taken as UTC, not as the server's local time.
    (b"Tue, 8 Feb 1994 01:00:00", datetime.datetime(1994, 2, 8, 1, 0, tzinfo=UTC)),
    (b"Tue, 8 Feb 1994 01:00:00 -0000", datetime.datetime(1994, 2, 8, 1, 0, tzinfo=UTC)),
    # Missing or unusable: the internal date.
    (None, INTERNAL), (b"", INTERNAL), (b"yesterday", INTERNAL),
    (b"Tue, 31 Feb 1994 01:00:00 +0000", INTERNAL),
    (b"Tue, 8 Feb 1994 25:00:00 +0000", INTERNAL),
    (b"\xff\xfe 1994", INTERNAL),
])
def test_sent_date(header: bytes | None, expected: datetime.datetime) -> None:
    assert sent_instant(header, INTERNAL) == expected.timestamp()


def _env(raw: bytes) -> tuple[Facts, EnvelopeData]:
    return Facts(INTERNAL, len(raw)), analyze(raw).envelope_data


def test_keys_of_one_message() -> None:
    raw = (b"Date: Tue, 8 Feb 1994 01:00:00 +0900\r\n"
           b"From: =?utf-8?q?=C3=89mile?= <Emile@Example.org>, second@example.org\r\n"
           b"To: \"  \" <Zoe@a.example>\r\n"
           b"Cc: team: carol@a.example;\r\n"
           b"Subject: Re: [list] Caf\xc3\xa9 (fwd)\r\n\r\nbody\r\n")
    facts, info = _env(raw)
    program = [SortCriterion(key) for key in SortKey]
    values = dict(zip(SortKey, key_values(program, facts, info)))
    assert values == {
        SortKey.ARRIVAL: INTERNAL.timestamp(),
        SortKey.CC: "TEAM",  # a group: its name
        SortKey.DATE: datetime.datetime(1994, 2, 7, 16, 0, tzinfo=UTC).timestamp(),
        SortKey.FROM: "EMILE",
        SortKey.SIZE: len(raw),
        SortKey.SUBJECT: "CAFE\u0301",
        SortKey.TO: "ZOE",
        SortKey.DISPLAYFROM: "E\u0301MILE",
        SortKey.DISPLAYTO: "ZOE@A.EXAMPLE",  # a blank display name: the addr-spec
    }


def test_missing_fields_are_empty_and_date_falls_back() -> None:
    facts, info = _env(b"X-Other: 1\r\n\r\nbody\r\n")
    for key in (SortKey.CC, SortKey.FROM, SortKey.TO, SortKey.SUBJECT,
                SortKey.DISPLAYFROM, SortKey.DISPLAYTO):
        assert key_value(key, facts, info) == ""
    assert key_value(SortKey.DATE, facts, info) == INTERNAL.timestamp()
    # Without any analysis (an expunged message): record keys still work.
    assert key_value(SortKey.DATE, facts, None) == INTERNAL.timestamp()
    assert key_value(SortKey.SUBJECT, facts, None) == ""


def test_address_keys() -> None:
    assert mailbox_key(None) == "" and display_key(None) == ""
    assert mailbox_key(()) == "" and display_key(()) == ""
    assert mailbox_key(((b"Name", None, b"local", b"host"),)) == "LOCAL"
    assert display_key(((None, None, b"d", b"MISSING_DOMAIN"),)) == "D"
    assert display_key(((None, None, b"a", b"b.c"),)) == "A@B.C"
    assert display_key(((b"=?iso-8859-1?q?foo_aar?=", None, b"e", b"f.g"),)) == "FOO AAR"
    assert display_key(((None, None, b"grp", None), (None, None, b"x", b"y"))) == "GRP"


def test_subject_key_is_the_folded_base_subject() -> None:
    assert subject_key(b"Re: Fwd: [x] Hello (fwd)") == "HELLO"
    assert subject_key(None) == ""


def test_needs_info() -> None:
    assert not needs_info([SortCriterion(SortKey.ARRIVAL), SortCriterion(SortKey.SIZE, True)])
    assert needs_info([SortCriterion(SortKey.SIZE), SortCriterion(SortKey.DATE)])


def _reference_order(items: list[tuple[int, tuple[int, ...]]],
                     program: list[SortCriterion]) -> list[int]:
    """Compare-by-compare: keys in order (negated when REVERSE), then seq."""
    def key(item: tuple[int, tuple[int, ...]]) -> tuple[int, ...]:
        seq, values = item
        return tuple(-v if c.reverse else v for c, v in zip(program, values)) + (seq,)
    return [seq for seq, _ in sorted(items, key=key)]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_order_is_lexicographic_with_ties_in_mailbox_order(data: st.DataObject) -> None:
    width = data.draw(st.integers(1, 3))
    program = [SortCriterion(SortKey.SIZE, data.draw(st.booleans())) for _ in range(width)]
    rows = data.draw(st.lists(st.tuples(*[st.integers(0, 3)] * width), max_size=30))
    items = [(seq, tuple(values)) for seq, values in enumerate(rows, start=1)]
    result = order(items, lambda item: item[1], program)
    assert [seq for seq, _ in result] == _reference_order(items, program)


def test_reverse_keeps_ties_in_mailbox_order() -> None:
    items = [(1, ("B",)), (2, ("A",)), (3, ("B",)), (4, ("A",))]
    reverse = [SortCriterion(SortKey.SUBJECT, True)]
    assert [s for s, _ in order(items, lambda i: i[1], reverse)] == [1, 3, 2, 4]


@pytest.mark.parametrize("raw", [
    b"Date: Tue, 8 Feb 1994 01:00:00 +0900\r\nFrom: A <a@b.c>, g: x@y;\r\nTo: d@e\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\nSubject: parts\r\n\r\n--b\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n--b--\r\n",
    b"no header at all",
])
def test_envelope_from_bytes_reads_only_the_envelope(raw: bytes) -> None:
    info = analyze(raw)
    assert envelope_from_bytes(info.to_bytes()) == info.envelope_data
    assert MessageInfo.from_bytes(info.to_bytes()).envelope_data == info.envelope_data


@pytest.mark.parametrize("blob", [b"", b"{", b"[]", b'{"v": 99}', b'{"v": 1}', b'{"v": 1, "root": [1]}'])
def test_envelope_from_bytes_refuses_foreign_blobs(blob: bytes) -> None:
    with pytest.raises(ValueError):
        envelope_from_bytes(blob)

"""Large FETCH bodies are streamed from the store (RFC 3501 §4.3 literals),
and the streamed bytes are exactly the requested range; INTERNALDATE's
text form round-trips."""

from __future__ import annotations

import datetime
from typing import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.commands.fetch_binary import body_range
from imapd.imap.commands.fetch_items import STREAM_THRESHOLD, MessageSource, format_internal_date
from imapd.mail.records import MessageBody
from imapd.message import analyze
from imapd.imap.wire.values import Literal, LiteralStream
from tests.imap.commands.harness import Client, MailServer, run


def big_message(body_size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n"
    body = (line * (body_size // len(line) + 1))[:body_size]
    return b"From: big@example.com\r\nSubject: big\r\n\r\n" + body


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=8),
    start=st.integers(0, 220),
    length=st.integers(0, 220),
)
def test_slice_chunks_is_the_byte_range(
    data: bytes, cuts: list[int], start: int, length: int
) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    closed: list[bool] = []

    def chunks() -> Iterator[bytes]:
        return iter(pieces)

    body = MessageBody(len(data), chunks, lambda: closed.append(True))
    end = min(len(data), start + length)
    start = min(start, end)
    assert b"".join(body_range(body, start, end)) == data[start:end]
    assert closed == [True]


def test_large_ranges_become_literal_streams(server: MailServer) -> None:
    message = big_message(3 * 1024 * 1024)
    server.append("INBOX", message)
    watch = run(server.mail.open("alice", "INBOX", readonly=True))
    (record,) = run(watch.fetch_records(with_meta=True))
    source = MessageSource(watch, record)
    whole = run(source.range_value(0, len(message)))
    assert isinstance(whole, LiteralStream) and whole.size == len(message)
    assert b"".join(whole.chunks()) == message
    start, end = 1_000_003, 1_000_003 + STREAM_THRESHOLD + 17
    part = run(source.range_value(start, end))
    assert isinstance(part, LiteralStream)
    assert b"".join(part.chunks()) == message[start:end]
    small = run(source.range_value(5, 5 + STREAM_THRESHOLD))
    assert isinstance(small, Literal) and small.value == message[5:5 + STREAM_THRESHOLD]
    watch.close()


def test_fetch_of_large_message_is_byte_exact(server: MailServer, client: Client) -> None:
    message = big_message(2 * 1024 * 1024 + 123)
    server.append("INBOX", message)
    client.ok("s SELECT INBOX")
    out = client.command("a FETCH 1 (BODY.PEEK[] RFC822.SIZE)")
    prefix = b"* 1 FETCH (BODY[] {%d}\r\n" % len(message)
    assert out == prefix + message + b" RFC822.SIZE %d)\r\na OK FETCH completed\r\n" % len(message)
    body_start = analyze(message).root.body_start
    origin, count = 1_500_000, 400_000
    out = client.command(f"b FETCH 1 BODY.PEEK[TEXT]<{origin}.{count}>")
    expected = message[body_start + origin:body_start + origin + count]
    assert out == (
        b"* 1 FETCH (BODY[TEXT]<%d> {%d}\r\n" % (origin, count) + expected
        + b")\r\nb OK FETCH completed\r\n"
    )


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(9999, 12, 31)
    ),
    minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_internal_date_format_round_trips(moment: datetime.datetime, minutes: int) -> None:
    """RFC 3501 §9 date-time, e.g. ``17-Jul-1996 02:44:25 -0700``; parsed
    back (C-locale month names) it is the same instant in the same zone."""
    value = moment.replace(microsecond=0, tzinfo=datetime.timezone(datetime.timedelta(minutes=minutes)))
    text = format_internal_date(value)
    day, month, rest = text.split("-", 2)
    assert len(day) == 2 and month in MONTHS
    parsed = datetime.datetime.strptime(
        f"{day}-{MONTHS.index(month) + 1:02d}-{rest}", "%d-%m-%Y %H:%M:%S %z"
    )
    assert parsed == value and parsed.utcoffset() == value.utcoffset()


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

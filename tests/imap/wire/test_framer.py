"""Framer: lines, literals (RFC 3501 §4.3, §7.5), LITERAL+ (RFC 7888),
literal8 (RFC 3516), limits and resynchronisation."""

from __future__ import annotations

import pytest

from imapd.core.config import Limits
from imapd.imap.wire.framer import (
    TOOBIG,
    CommandFrame,
    FrameError,
    FrameEvent,
    Framer,
    NeedContinuation,
    extract_tag,
)


def feed_all(data: bytes, limits: Limits | None = None) -> list[FrameEvent]:
    return Framer(limits or Limits()).feed(data)


def feed_bytewise(data: bytes, limits: Limits | None = None) -> list[FrameEvent]:
    framer = Framer(limits or Limits())
    events: list[FrameEvent] = []
    for index in range(len(data)):
        events += framer.feed(data[index:index + 1])
    return events


FRAME = CommandFrame
CONT = NeedContinuation()


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"a NOOP\r\n", [FRAME(b"a NOOP\r\n")]),
        (b"a NOOP\r\nb LOGOUT\r\n", [FRAME(b"a NOOP\r\n"), FRAME(b"b LOGOUT\r\n")]),
        (b"a NOOP", []),
        (b"a NOOP\r", []),
        # Bare LF ends a line too (documented leniency); bytes are kept as sent.
        (b"a NOOP\nb NOOP\r\n", [FRAME(b"a NOOP\n"), FRAME(b"b NOOP\r\n")]),
        (b"\r\n", [FRAME(b"\r\n")]),
        # RFC 3501 §6.3.11 APPEND with a synchronizing literal.
        (
            b"A003 APPEND saved-messages (\\Seen) {5}\r\nhello\r\n",
            [CONT, FRAME(b"A003 APPEND saved-messages (\\Seen) {5}\r\nhello\r\n")],
        ),
        # RFC 3501 §7.5: two literals in one command, each asks for "+".
        (
            b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n",
            [CONT, CONT, FRAME(b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n")],
        ),
        # LITERAL+ never asks for a continuation.
        (b"a LOGIN {3+}\r\nfoo {3+}\r\nbar\r\n", [FRAME(b"a LOGIN {3+}\r\nfoo {3+}\r\nbar\r\n")]),
        # literal8 (RFC 3516) is framed the same way.
        (b"a APPEND x ~{3}\r\n\x00\x01\x02\r\n", [CONT, FRAME(b"a APPEND x ~{3}\r\n\x00\x01\x02\r\n")]),
        # Literal content containing CRLF and "{5}" is not interpreted.
        (
            b"a APPEND x {9}\r\nab {5}\r\n\r\n",
            [CONT, FRAME(b"a APPEND x {9}\r\nab {5}\r\n\r\n")],
        ),
        # Zero-length literals.
        (b"a LOGIN {0}\r\n {0+}\r\n\r\n", [CONT, FRAME(b"a LOGIN {0}\r\n {0+}\r\n\r\n")]),
        # Not a literal: braces not at the end of the line.
        (b"a SEARCH {5} x\r\n", [FRAME(b"a SEARCH {5} x\r\n")]),
    ],
)
def test_known_frames(data: bytes, expected: list[FrameEvent]) -> None:
    assert feed_all(data) == expected
    assert feed_bytewise(data) == expected


def test_continuation_is_asked_before_literal_bytes_arrive() -> None:
    framer = Framer(Limits())
    assert framer.feed(b"a APPEND INBOX {5}\r\n") == [CONT]
    assert framer.feed(b"hel") == []
    assert framer.feed(b"lo") == []
    assert framer.feed(b" more\r\n") == [FRAME(b"a APPEND INBOX {5}\r\nhello more\r\n")]


PIPELINE = (
    b"a1 LOGIN {4}\r\nuser {6+}\r\npa\r\nss\r\n"
    b"a2 SELECT INBOX\n"
    b"a3 APPEND INBOX (\\Seen) {12}\r\nline1\r\nline2\r\n"
    b"a4 APPEND INBOX ~{4+}\r\n\x00\r\n\xff\r\n"
    b"a5 UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM TO)])\r\n"
)


def test_pipelined_byte_at_a_time_equals_whole_buffer() -> None:
    whole = feed_all(PIPELINE)
    assert feed_bytewise(PIPELINE) == whole
    frames = [e.data for e in whole if isinstance(e, CommandFrame)]
    assert b"".join(frames) == PIPELINE
    assert len(frames) == 5
    assert sum(isinstance(e, NeedContinuation) for e in whole) == 2


@pytest.mark.parametrize("split", range(1, 40, 3))
def test_pipelined_any_chunk_size(split: int) -> None:
    framer = Framer(Limits())
    events: list[FrameEvent] = []
    for start in range(0, len(PIPELINE), split):
        events += framer.feed(PIPELINE[start:start + split])
    assert events == feed_all(PIPELINE)


# --- limits -------------------------------------------------------------------

SMALL = Limits(max_line=40, max_literal=10, max_command=100)


def test_line_too_long_then_next_command_parses() -> None:
    data = b"t1 NOOP " + b"x" * 100 + b"\r\nt2 NOOP\r\n"
    expected = [FrameError("t1", "Line too long"), FRAME(b"t2 NOOP\r\n")]
    assert feed_all(data, SMALL) == expected
    assert feed_bytewise(data, SMALL) == expected


def test_line_too_long_is_reported_before_its_end_arrives() -> None:
    framer = Framer(SMALL)
    events = framer.feed(b"t1 NOOP " + b"x" * 60)
    assert events == [FrameError("t1", "Line too long")]
    assert framer.feed(b"y" * 10_000) == []  # dropped, not buffered
    assert framer.feed(b"\r\nt2 NOOP\r\n") == [FRAME(b"t2 NOOP\r\n")]


def test_line_exactly_at_limit_is_accepted() -> None:
    line = b"t NOOP " + b"x" * (SMALL.max_line - 7)
    assert len(line) == SMALL.max_line
    assert feed_all(line + b"\r\n", SMALL) == [FRAME(line + b"\r\n")]
    assert feed_all(line + b"x\r\n", SMALL)[0] == FrameError("t", "Line too long")


def test_overlong_line_without_readable_tag() -> None:
    assert feed_all(b"(" * 100 + b"\r\n", SMALL) == [FrameError(None, "Line too long")]


def test_overlong_line_ending_in_nonsync_literal_skips_the_literal() -> None:
    data = b"t1 APPEND x " + b"y" * 60 + b" {5+}\r\nHELLO rest\r\nt2 NOOP\r\n"
    expected = [FrameError("t1", "Line too long"), FRAME(b"t2 NOOP\r\n")]
    assert feed_all(data, SMALL) == expected
    assert feed_bytewise(data, SMALL) == expected


def test_synchronizing_literal_too_big_is_refused_before_continuation() -> None:
    framer = Framer(SMALL)
    events = framer.feed(b"t1 APPEND INBOX {11}\r\n")
    assert events == [FrameError("t1", "Literal too big", TOOBIG)]
    assert not any(isinstance(e, NeedContinuation) for e in events)
    # The client does not send the literal; its next command works.
    assert framer.feed(b"t2 NOOP\r\n") == [FRAME(b"t2 NOOP\r\n")]


def test_literal_at_limit_is_accepted() -> None:
    data = b"t1 APPEND INBOX {10}\r\n0123456789\r\n"
    assert feed_all(data, SMALL) == [CONT, FRAME(data)]


def test_nonsync_literal_too_big_is_skipped_when_bounded() -> None:
    data = b"t1 APPEND INBOX {20+}\r\n" + b"Z" * 20 + b" {2+}\r\nzz\r\nt2 NOOP\r\n"
    expected = [FrameError("t1", "Literal too big", TOOBIG), FRAME(b"t2 NOOP\r\n")]
    assert feed_all(data, SMALL) == expected
    assert feed_bytewise(data, SMALL) == expected


def test_nonsync_literal_beyond_max_command_is_fatal() -> None:
    framer = Framer(SMALL)
    events = framer.feed(b"t1 APPEND INBOX {101+}\r\nt2 NOOP\r\n")
    assert events == [
        FrameError("t1", "Literal too big", TOOBIG),
        FrameError("t1", "Literal too big to skip", TOOBIG, fatal=True),
    ]
    assert framer.feed(b"t3 NOOP\r\n") == []  # nothing more is framed


def test_absurd_literal_size_is_too_big_not_text() -> None:
    events = feed_all(b"t1 APPEND INBOX {99999999999999999999}\r\n")
    assert events == [FrameError("t1", "Literal too big", TOOBIG)]


def test_command_too_long_across_literals() -> None:
    limits = Limits(max_line=100, max_literal=50, max_command=80)
    framer = Framer(limits)
    first = b"t1 LOGIN {40}\r\n"
    assert framer.feed(first) == [CONT]
    events = framer.feed(b"u" * 40 + b" {40}\r\n")
    assert events == [FrameError("t1", "Command too long", TOOBIG)]
    assert framer.feed(b"t2 NOOP\r\n") == [FRAME(b"t2 NOOP\r\n")]


def test_second_literal_line_too_long_drops_whole_command() -> None:
    framer = Framer(SMALL)
    assert framer.feed(b"t1 LOGIN {3}\r\n") == [CONT]
    events = framer.feed(b"abc " + b"p" * 60 + b"\r\nt2 NOOP\r\n")
    assert events == [FrameError("t1", "Line too long"), FRAME(b"t2 NOOP\r\n")]


def test_discard_buffer_drops_pending_input() -> None:
    framer = Framer(Limits())
    assert framer.feed(b"a STARTTLS\r\nb LOGIN evil injected") == [FRAME(b"a STARTTLS\r\n")]
    framer.discard_buffer()
    assert framer.feed(b"\r\nc NOOP\r\n") == [FRAME(b"\r\n"), FRAME(b"c NOOP\r\n")]


def test_discard_buffer_mid_literal_resets_state() -> None:
    framer = Framer(Limits())
    assert framer.feed(b"a LOGIN {10}\r\nabc") == [CONT]
    framer.discard_buffer()
    assert framer.feed(b"b NOOP\r\n") == [FRAME(b"b NOOP\r\n")]


def test_many_small_feeds_are_linear() -> None:
    """A 200 KB literal fed one byte at a time must not rescan the buffer
    (quadratic behaviour would take minutes here)."""
    body = b"x" * 200_000
    data = b"a APPEND INBOX {%d}\r\n" % len(body) + body + b"\r\n"
    framer = Framer(Limits())
    events: list[FrameEvent] = []
    for index in range(len(data)):
        events += framer.feed(data[index:index + 1])
    assert events == [CONT, FRAME(data)]


def test_long_line_fed_bytewise_is_linear() -> None:
    line = b"a SEARCH " + b"ALL " * 15_000 + b"ALL\r\n"
    assert feed_bytewise(line) == [FRAME(line)]


@pytest.mark.parametrize(
    "line, tag",
    [
        (b"a1 NOOP", "a1"),
        (b"A.B-C_d NOOP", "A.B-C_d"),
        (b"x] NOOP", "x]"),
        (b"}{ NOOP", None),
        (b"a}b NOOP", "a}b"),
        (b"+ NOOP", None),
        (b"a+b NOOP", None),
        (b"* NOOP", None),
        (b"a{ NOOP", None),
        (b"NOOP", None),
        (b"", None),
    ],
)
def test_extract_tag(line: bytes, tag: str | None) -> None:
    assert extract_tag(line) == tag


def test_command_text_is_bounded_apart_from_literal_octets() -> None:
    """Many tiny literals make a command mostly text for the parser: the
    text alone is bounded (max_command_text), the literals' octets are not
    counted against it, and the next command is framed normally."""
    limits = Limits(max_command_text=64)
    framer = Framer(limits)
    assert framer.feed(b"t1 APPEND INBOX {3+}\r\nabc") == []
    # 22 + 3 literal octets + 20 = 42 text octets so far: still accepted.
    assert framer.feed(b" (\\Seen) {2+}\r\nxy") == []
    events = framer.feed(b" (\\Seen) \"1-Jan-2020 00:00:00 +0000\" {1+}\r\n")
    assert events == [FrameError("t1", "Command text too long", TOOBIG)]
    assert framer.feed(b"z\r\nt2 NOOP\r\n") == [FRAME(b"t2 NOOP\r\n")]


def test_command_text_limit_counts_text_not_literals() -> None:
    limits = Limits(max_command_text=40)
    data = b"t1 APPEND INBOX {100+}\r\n" + b"m" * 100 + b"\r\n"
    assert feed_all(data, limits) == [FRAME(data)]

"""Hostile input: arbitrary bytes, arbitrarily split, must only ever produce
frame events and command/syntax-error values, never an exception, and the
split must not matter (RFC 3501 §2.2.1: TCP delivers a byte stream; where a
read ends is not part of the protocol): the same bytes fed in any pieces give
exactly the events and commands they give when fed whole."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.core.config import Limits
from imapd.imap.wire import commands as c
from imapd.imap.wire.encode_command import encode_command
from imapd.imap.wire.framer import CommandFrame, FrameError, FrameEvent, Framer, NeedContinuation
from imapd.imap.wire.parse import parse_command

from . import strategies as gen

COMMAND_TYPES = tuple(c.Command.__args__)  # type: ignore[attr-defined]
TINY = Limits(max_line=64, max_literal=32, max_command=200, max_nesting=4)

# Bytes that matter to the grammar, so random input reaches deep paths.
interesting = st.sampled_from([
    b" ", b"\r\n", b"\n", b"\r", b"(", b")", b"[", b"]", b"<", b">", b"{", b"}", b"{3}\r\n",
    b"{2+}\r\n", b"~{1}\r\n", b"{99999999999}\r\n", b'"', b"\\", b"*", b"%", b"+", b"-", b":", b",",
    b".", b"$", b"&", b"&AOQ-", b"\x00", b"\xff", b"a1 ", b"UID ", b"FETCH ", b"SEARCH ", b"STORE ",
    b"APPEND ", b"LOGIN ", b"SELECT ", b"LIST ", b"STATUS ", b"AUTHENTICATE ", b"COPY ", b"NOT ",
    b"OR ", b"BODY.PEEK[", b"HEADER.FIELDS ", b"1:*", b"CHARSET ", b"NIL", b"FLAGS.SILENT ", b"\\Seen",
    b'"1-Jan-2000 00:00:00 +0000"', b"1-Feb-1994",
])
soup = st.lists(interesting | st.binary(max_size=8), max_size=40).map(b"".join)


def check_events(events: list[FrameEvent]) -> None:
    for event in events:
        assert isinstance(event, (CommandFrame, NeedContinuation, FrameError))
        if isinstance(event, CommandFrame):
            result = parse_command(event.data, TINY.max_nesting)
            assert isinstance(result, COMMAND_TYPES + (c.CommandSyntaxError,))
            if isinstance(result, c.CommandSyntaxError):
                assert result.reason


def feed_in_pieces(limits: Limits, data: bytes, cuts: list[int]) -> list[FrameEvent]:
    framer = Framer(limits)
    events: list[FrameEvent] = []
    previous = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events += framer.feed(data[previous:cut])
        previous = cut
    return events


Outcome = list[tuple[FrameEvent, object]]


def outcome(events: list[FrameEvent], limits: Limits) -> Outcome:
    """Each event with, for a complete frame, the command it parses to."""
    return [
        (e, parse_command(e.data, limits.max_nesting) if isinstance(e, CommandFrame) else None)
        for e in events
    ]


def assert_split_invariant(limits: Limits, data: bytes, cuts: list[int]) -> list[FrameEvent]:
    """Feed ``data`` whole, cut at ``cuts``, and one byte at a time: the
    events and parsed commands must be identical. Returns the events."""
    whole = feed_in_pieces(limits, data, [])
    expected = outcome(whole, limits)
    assert outcome(feed_in_pieces(limits, data, [x for x in cuts if x <= len(data)]), limits) == expected
    assert outcome(feed_in_pieces(limits, data, list(range(len(data)))), limits) == expected
    return whole


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=10))
def test_arbitrary_bytes_arbitrarily_split(data: bytes, cuts: list[int]) -> None:
    for limits in (TINY, Limits()):
        check_events(assert_split_invariant(limits, data, cuts))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(soup, st.lists(st.integers(0, 400), max_size=10))
def test_grammar_soup_arbitrarily_split(data: bytes, cuts: list[int]) -> None:
    for limits in (TINY, Limits()):
        check_events(assert_split_invariant(limits, data, cuts))


@settings(max_examples=300)
@given(soup)
def test_parser_on_raw_soup_never_raises(data: bytes) -> None:
    for frame in (data, b"a1 " + data + b"\r\n", b"a1 SEARCH " + data + b"\r\n", b"a1 FETCH 1 " + data + b"\r\n"):
        result = parse_command(frame)
        assert isinstance(result, COMMAND_TYPES + (c.CommandSyntaxError,))


@settings(max_examples=300)
@given(gen.commands, st.data())
def test_mutated_valid_commands_never_raise(command: c.Command, data: st.DataObject) -> None:
    frame = bytearray(encode_command(command))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(frame)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(interesting | st.binary(min_size=1, max_size=1))
        if action == "insert":
            frame[position:position] = byte
        elif action == "delete":
            del frame[position:position + 1]
        else:
            frame[position:position + 1] = byte
    result = parse_command(bytes(frame))
    assert isinstance(result, COMMAND_TYPES + (c.CommandSyntaxError,))
    cuts = data.draw(st.lists(st.integers(0, len(frame)), max_size=6))
    check_events(assert_split_invariant(TINY, bytes(frame), cuts))


@settings(max_examples=100)
@given(st.integers(0, 80), st.sampled_from([b"(", b"NOT ", b"OR ALL "]))
def test_nesting_is_bounded(depth: int, opener: bytes) -> None:
    closer = b")" if opener == b"(" else b""
    frame = b"a SEARCH " + opener * depth + b"ALL" + closer * depth + b"\r\n"
    result = parse_command(frame, max_nesting=8)
    if depth <= 8:
        assert isinstance(result, c.Search)
    else:
        assert result == c.CommandSyntaxError("a", "Too deeply nested")

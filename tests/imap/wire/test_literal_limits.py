"""Literals of commands other than APPEND are small (issue 13: a 50 MB
CREATE name cost 12 s of CPU before it was refused). The framer refuses
one over ``SMALL_LITERAL`` before the client sends it (a synchronizing
literal gets ``NO [TOOBIG]`` instead of ``+``, RFC 3501 §7.5) or reads and
discards it (non-synchronizing, RFC 7888 §4); APPEND keeps ``max_literal``.
A mailbox name too long to be valid is refused before it is decoded."""

from __future__ import annotations

import time

import pytest

from imapd.core.config import Limits
from imapd.imap.wire.commands import CommandSyntaxError
from imapd.imap.wire.framer import (
    SMALL_LITERAL, TOOBIG, CommandFrame, FrameError, FrameEvent, Framer, NeedContinuation,
)
from imapd.imap.wire.lexer import MAX_MAILBOX_OCTETS
from imapd.imap.wire.mutf7 import decode_mutf7
from imapd.imap.wire.parse import parse_command

BIG = SMALL_LITERAL + 1


def feed(framer: Framer, *pieces: bytes) -> list[FrameEvent]:
    events: list[FrameEvent] = []
    for piece in pieces:
        events += framer.feed(piece)
    return events


@pytest.mark.parametrize("command", [b"CREATE", b"SELECT", b"SEARCH TEXT", b"LOGIN",
                                     b"UID SEARCH BODY", b"RENAME x"])
def test_a_big_synchronizing_literal_is_refused_before_the_continuation(command: bytes) -> None:
    framer = Framer(Limits())
    events = framer.feed(b"t1 %s {%d}\r\n" % (command, BIG))
    assert events == [FrameError("t1", "Literal too big for this command", TOOBIG)]
    # The client sends nothing more of it: the next command is framed.
    assert framer.feed(b"t2 NOOP\r\n") == [CommandFrame(b"t2 NOOP\r\n")]


def test_a_big_nonsync_literal_is_read_and_discarded() -> None:
    framer = Framer(Limits())
    events = feed(framer, b"t1 CREATE {%d+}\r\n" % BIG, b"a" * BIG, b"\r\nt2 NOOP\r\n")
    assert events == [FrameError("t1", "Literal too big for this command", TOOBIG),
                      CommandFrame(b"t2 NOOP\r\n")]


def test_append_keeps_its_large_literals() -> None:
    framer = Framer(Limits())
    data = b"t1 APPEND INBOX {%d+}\r\n" % BIG + b"m" * BIG + b"\r\n"
    events = framer.feed(data)
    assert len(events) == 1 and isinstance(events[0], CommandFrame)
    assert events[0].inline() == data
    events[0].close()
    assert framer.feed(b"t2 append INBOX {%d}\r\n" % BIG) == [NeedContinuation()]


def test_a_small_literal_is_accepted_and_counts_as_command_text() -> None:
    framer = Framer(Limits(max_command_text=100))
    ok = b"t1 CREATE {40}\r\n" + b"n" * 40 + b"\r\n"
    assert feed(framer, ok) == [NeedContinuation(), CommandFrame(ok)]
    # Two literals of 60 octets: each is small, together over the text bound.
    events = feed(framer, b"t2 RENAME {60}\r\n")
    assert events == [NeedContinuation()]
    events = feed(framer, b"a" * 60 + b" {60}\r\n")
    assert events == [FrameError("t2", "Literal too big for this command", TOOBIG)]


def test_an_overlong_mailbox_name_is_refused_before_decoding() -> None:
    name = b"&AOk-" * (MAX_MAILBOX_OCTETS // 5 + 1)  # valid modified UTF-7, too long
    parsed = parse_command(b"t CREATE {%d}\r\n%s\r\n" % (len(name), name))
    assert isinstance(parsed, CommandSyntaxError) and parsed.invalid_name
    assert "too long" in parsed.reason


def test_plain_ascii_names_decode_in_one_pass() -> None:
    """A long plain name is decoded at C speed (it was a Python step per
    octet: 0.2 us each, 0.8 s of CPU for these 4 MB; now 10 ms); the
    result is the same as before."""
    name = b"Archive/2026 (old) ~ %$#!" * 160_000  # 4 MB
    start = time.process_time()
    assert decode_mutf7(name) == name.decode("ascii")
    assert time.process_time() - start < 0.25
    assert decode_mutf7(b"a&-b") == "a&b"
    assert decode_mutf7(b"Entw&APw-rfe") == "Entwürfe"
    with pytest.raises(ValueError):
        decode_mutf7(b"bad\x7f")

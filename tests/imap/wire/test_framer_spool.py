"""Large literals are spooled to files by the framer (issue 6): the frame
then holds them as ``SpooledPart`` values instead of inline octets, the
parser reads them from there, APPEND keeps them spooled, and every spool
file is closed when its command is dropped or the framer is closed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.core.config import Limits
from imapd.core.spool import SpooledLiteral, SpoolWriter
from imapd.imap.wire import commands as c
from imapd.imap.wire.encode_command import encode_command
from imapd.imap.wire.framer import (
    OVERQUOTA, TOOBIG, UNAVAILABLE, CommandFrame, FrameError, FrameEvent, Framer, NeedContinuation,
)
from imapd.imap.wire.parse import parse_command
from tests.support.spool import spool_handles

from . import strategies as gen

CONT = NeedContinuation()


def spooling(threshold: int, **limits: int) -> Limits:
    return dataclasses.replace(Limits(), literal_spool_threshold=threshold, **limits)


def feed_in_pieces(framer: Framer, data: bytes, cuts: list[int]) -> list[FrameEvent]:
    events: list[FrameEvent] = []
    start = 0
    for cut in sorted({min(max(cut, 0), len(data)) for cut in cuts}) + [len(data)]:
        events += framer.feed(data[start:cut])
        start = cut
    return events


def parsed(frame: CommandFrame) -> c.Command | c.CommandSyntaxError:
    return parse_command(frame.data, spooled={p.offset: p.content for p in frame.spooled})


def test_literal_over_the_threshold_is_spooled_not_inline(tmp_path: Path) -> None:
    framer = Framer(spooling(4), tmp_path)
    message = b"Subject: x\r\n\r\nbody"
    events = framer.feed(b"a APPEND INBOX {%d}\r\n" % len(message))
    assert events == [CONT]
    assert len(spool_handles(tmp_path)) == 1  # opened when announced
    events = framer.feed(message[:5]) + framer.feed(message[5:] + b"\r\n")
    (frame,) = events
    assert isinstance(frame, CommandFrame)
    assert frame.data == b"a APPEND INBOX {%d}\r\n\r\n" % len(message)
    (part,) = frame.spooled
    assert part.offset == len(b"a APPEND INBOX {%d}\r\n" % len(message))
    assert isinstance(part.content, SpooledLiteral) and part.content == message
    assert frame.inline() == b"a APPEND INBOX {%d}\r\n%s\r\n" % (len(message), message)
    command = parsed(frame)
    assert isinstance(command, c.Append) and isinstance(command.message, SpooledLiteral)
    assert command == c.Append("a", "INBOX", (), None, message)
    frame.close()
    assert spool_handles(tmp_path) == []


def test_small_literals_stay_inline_and_frames_compare_as_before(tmp_path: Path) -> None:
    framer = Framer(spooling(5), tmp_path)
    data = b"a LOGIN {5}\r\nalice {5+}\r\nwonde\r\n"
    assert framer.feed(data) == [CONT, CommandFrame(data)]
    assert spool_handles(tmp_path) == []


def test_multiappend_spools_each_large_literal(tmp_path: Path) -> None:
    framer = Framer(spooling(3), tmp_path)
    data = b"t APPEND Sent (\\Seen) {6+}\r\nfirst! {2+}\r\nok (\\Draft) {7+}\r\nthird!!\r\n"
    (frame,) = framer.feed(data)
    assert isinstance(frame, CommandFrame)
    assert [bytes(p.content) for p in frame.spooled] == [b"first!", b"third!!"]
    assert frame.inline() == data
    command = parsed(frame)
    assert isinstance(command, c.Append)
    assert [m.message for m in command.messages] == [b"first!", b"ok", b"third!!"]
    assert command == parse_command(data)
    frame.close()


def test_nul_in_a_spooled_literal_is_refused_unless_literal8(tmp_path: Path) -> None:
    framer = Framer(spooling(2), tmp_path)
    (plain,) = framer.feed(b"a APPEND x {4+}\r\nab\x00c\r\n")
    (binary,) = framer.feed(b"b APPEND x ~{4+}\r\nab\x00c\r\n")
    assert isinstance(plain, CommandFrame) and isinstance(binary, CommandFrame)
    assert parsed(plain) == c.CommandSyntaxError("a", "NUL octet in literal for message")
    command = parsed(binary)
    assert isinstance(command, c.Append) and command.message == b"ab\x00c"
    plain.close()
    binary.close()


def test_other_commands_get_spooled_literals_as_bytes(tmp_path: Path) -> None:
    framer = Framer(spooling(2), tmp_path)
    (frame,) = framer.feed(b"a SEARCH TEXT {6+}\r\nneedle\r\n")
    assert isinstance(frame, CommandFrame) and frame.spooled
    command = parsed(frame)
    assert command == parse_command(frame.inline())
    frame.close()


def test_dropped_commands_and_lost_connections_close_their_spool_files(tmp_path: Path) -> None:
    framer = Framer(spooling(2, max_line=40), tmp_path)
    # A literal, then the command line goes on far too long: dropped.
    events = framer.feed(b"a APPEND x {5+}\r\nhello" + b" " * 60)
    assert events == [FrameError("a", "Line too long")]
    assert spool_handles(tmp_path) == []
    assert framer.feed(b"\r\nb NOOP\r\n") == [CommandFrame(b"b NOOP\r\n")]
    # Half a literal, then STARTTLS-style discard.
    framer.feed(b"c APPEND x {10+}\r\nhalf")
    assert len(spool_handles(tmp_path)) == 1  # the file being written
    framer.discard_buffer()
    assert spool_handles(tmp_path) == []
    # Half of the second literal of a command whose first one is complete,
    # then the connection goes away.
    framer.feed(b"d APPEND x {3+}\r\none {10+}\r\nhal")
    assert len(spool_handles(tmp_path)) == 3  # map (+ its descriptor) and a file
    framer.close()
    assert spool_handles(tmp_path) == []
    assert framer.feed(b"e NOOP\r\n") == []


def test_too_big_is_still_refused_before_spooling(tmp_path: Path) -> None:
    framer = Framer(spooling(2, max_literal=10), tmp_path)
    assert framer.feed(b"a APPEND x {11}\r\n") == [FrameError("a", "Literal too big", TOOBIG)]
    assert spool_handles(tmp_path) == []


def test_spool_failure_is_answered_before_the_upload(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")
    framer = Framer(spooling(2), blocked / "spool")
    assert framer.feed(b"a APPEND x {5}\r\n") == [
        FrameError("a", "Cannot store the literal now", UNAVAILABLE)
    ]
    # A non-synchronizing one is already coming: it is skipped.
    assert framer.feed(b"b APPEND x {5+}\r\nhello\r\nc NOOP\r\n") == [
        FrameError("b", "Cannot store the literal now", UNAVAILABLE),
        CommandFrame(b"c NOOP\r\n"),
    ]


def test_spool_open_on_a_full_disk_is_overquota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SpoolWriter, "__init__", disk_full)
    framer = Framer(spooling(2), tmp_path)
    assert framer.feed(b"a APPEND x {5}\r\n") == [
        FrameError("a", "Cannot store the literal now", OVERQUOTA)
    ]


def test_write_failure_mid_literal_drops_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    framer = Framer(spooling(2), tmp_path)
    assert framer.feed(b"a APPEND x {8+}\r\nabc") == []

    def disk_full(self: SpoolWriter, data: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(SpoolWriter, "write", disk_full)
        events = framer.feed(b"de")
    # A full disk is answered as the store answers it (RFC 5530 OVERQUOTA).
    assert events == [FrameError("a", "Cannot store the literal now", OVERQUOTA)]
    assert spool_handles(tmp_path) == []
    assert framer.feed(b"fgh\r\nb NOOP\r\n") == [CommandFrame(b"b NOOP\r\n")]


@settings(max_examples=200, deadline=None)
@given(
    command=gen.commands,
    threshold=st.integers(0, 64),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_spooling_changes_nothing_a_command_means(
    command: c.Command, threshold: int, cuts: list[int],
) -> None:
    """Through a spooling framer in pieces, every command parses to itself
    (spooled APPEND messages compare equal to their bytes) and its frame
    inlined is what a framer without spooling yields."""
    data = encode_command(command)
    inline = Framer(Limits()).feed(data)
    framer = Framer(spooling(threshold))
    events = feed_in_pieces(framer, data, cuts)
    frames = [e for e in events if isinstance(e, CommandFrame)]
    assert [e for e in events if not isinstance(e, CommandFrame)] == [
        e for e in inline if not isinstance(e, CommandFrame)
    ]
    (frame,) = frames
    try:
        assert frame.inline() == data
        assert parsed(frame) == command
    finally:
        frame.close()

"""The fault engine on the client's octets (``imapd.testing.tap_input``),
without sockets: whatever TCP does to the octets, the server gets the same
stream, less exactly what a fault answered (hypothesis)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.testing import faults
from imapd.testing.tap_input import ClientFaults


class FakeTap:
    """What ``ClientFaults`` calls on its connection, recorded."""

    def __init__(self, protocol: str) -> None:
        self.tap = SimpleNamespace(protocol=protocol)
        self.forwarded = bytearray()
        self.answers: list[bytes] = []
        self.clock: Any = SimpleNamespace(callLater=lambda delay, fn, *a: fn(*a))

    def forward(self, data: bytes) -> None:
        self.forwarded += data

    def answer(self, data: bytes, bye: bool) -> None:
        self.answers.append(data)

    def note(self, text: str) -> None:
        pass

    def hold_reading(self, held: bool) -> None:
        pass

    def delay_response(self, tag: str, seconds: float) -> None:
        pass

    def close_after_answer(self, tag: str) -> None:
        pass

    def command_forwarded(self) -> None:
        pass


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


IMAP_COMMANDS = st.sampled_from([
    b"a NOOP\r\n", b"b FETCH 1 (FLAGS)\r\n", b"c APPEND INBOX {5+}\r\nx\r\ny\n LITERAL {0}\r\n\r\n",
    b"d LOGIN {4+}\r\nuser pass\r\n", b"e IDLE\r\nDONE\r\n", b"f UID FETCH 1:* BODY[]\n",
    b"g APPEND INBOX ~{3+}\r\n\r\n{\r\n",
])


@settings(max_examples=150, deadline=None)
@given(commands=st.lists(IMAP_COMMANDS, min_size=1, max_size=8), cuts=st.lists(st.integers(0, 400), max_size=10))
def test_imap_octets_pass_unchanged_whatever_the_cuts(commands: list[bytes], cuts: list[int]) -> None:
    tap = FakeTap("imap")
    engine = ClientFaults(tap, [faults.delay(1, "FETCH")])  # follows commands, holds none
    data = b"".join(commands)
    for chunk in split(data, cuts):
        engine.received(chunk)
    assert bytes(tap.forwarded) == data


POP3_LINES = st.sampled_from([b"STAT\r\n", b"LIST\r\n", b"RETR 1\r\n", b"NOOP\n", b"stat\r\n"])


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(POP3_LINES, min_size=1, max_size=10), cuts=st.lists(st.integers(0, 100), max_size=10))
def test_pop3_the_second_stat_is_answered_and_nothing_else_changes(lines: list[bytes], cuts: list[int]) -> None:
    tap = FakeTap("pop3")
    engine = ClientFaults(tap, [faults.respond("STAT", "NO", "busy", occurrence=2, protocol="pop3")])
    for chunk in split(b"".join(lines), cuts):
        engine.received(chunk)
    stats = [i for i, line in enumerate(lines) if line.upper().startswith(b"STAT")]
    expected = [line for i, line in enumerate(lines) if stats[1:2] != [i]]
    assert bytes(tap.forwarded) == b"".join(expected)
    assert tap.answers == ([b"-ERR busy\r\n"] if len(stats) > 1 else [])

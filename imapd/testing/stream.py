"""Follow an IMAP conversation from the outside, one direction at a time.

The test kit's wiretap (``imapd.testing.wiretap``) sits between a client and
the server and sees two byte streams. Faults and strict checks need to know
where commands and responses begin and end without parsing them fully:
RFC 3501 §2.2 frames both directions as CRLF-terminated lines, except that
a line ending in a literal announcement ``{n}`` (or ``{n+}``, ``~{n}``;
RFC 7888, RFC 3516) is followed by exactly n octets of data and then by the
rest of the same command or response (§4.3).

``ClientStream`` and ``ServerStream`` turn chunks, cut anywhere, into
events in order: whole lines and literal data. They keep at most one
line's bytes (capped at ``MAX_LINE``: a longer line is passed on in pieces
marked ``truncated``), so their memory is bounded whatever the peer sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lines longer than this are not kept whole (the server refuses them anyway).
MAX_LINE = 64 * 1024

# A literal announcement at the end of a line: {n}, {n+} (RFC 7888) and the
# literal8 form ~{n} (RFC 3516 §4.2).
_LITERAL = re.compile(rb"~?\{(\d{1,20})(\+?)\}\Z")


@dataclass(frozen=True)
class Line:
    """One line, without its CRLF. ``literal``: the octet count it announces
    at its end (None: none); ``sync``: the announcement waits for ``+``
    (RFC 3501 §7.5; False for ``{n+}``). ``first``: it begins a command (client)
    or a response (server), rather than continuing one after a literal.
    ``truncated``: only the first ``MAX_LINE`` octets of a longer line."""

    text: bytes
    first: bool
    literal: int | None = None
    sync: bool = True
    truncated: bool = False

    @property
    def tag(self) -> str:
        """The first word of a first line (a command's tag; ``*`` or ``+``
        on the server side)."""
        return self.text.split(b" ", 1)[0].decode("ascii", "replace") if self.first else ""

    @property
    def verb(self) -> str:
        """A client command's name, upper case; ``UID FETCH`` style for UID
        commands (RFC 3501 §6.4.8); "" for a line that is not a command."""
        if not self.first:
            return ""
        words = self.text.split(b" ", 3)
        if len(words) < 2:
            return ""
        verb = words[1].upper().decode("ascii", "replace")
        if verb == "UID" and len(words) > 2:
            return "UID " + words[2].upper().decode("ascii", "replace")
        return verb


@dataclass(frozen=True)
class LiteralData:
    """A piece of a literal's octets (a literal may arrive in many pieces);
    ``last``: the literal is complete with this piece."""

    data: bytes
    last: bool


Event = Line | LiteralData


class _Stream:
    """Lines and literals of one direction (shared by both directions)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._literal_left = 0
        self._first = True
        self._dropping = False  # inside a line longer than MAX_LINE

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        data = bytes(data)
        pos = 0
        while pos < len(data):
            if self._literal_left:
                piece = data[pos:pos + self._literal_left]
                pos += len(piece)
                self._literal_left -= len(piece)
                events.append(LiteralData(piece, last=self._literal_left == 0))
                continue
            pos = self._take_line(data, pos, events)
        return events

    def _take_line(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Take bytes from ``pos`` up to the end of a line; the position
        after what was taken. A line longer than ``MAX_LINE`` (its octets
        before LF, less one CR) is passed on as its first ``MAX_LINE``
        octets, marked truncated, and the rest of it is dropped: the same
        events however the bytes were cut. (The search starts at ``pos``:
        copying the rest of a chunk per line made one big write of many
        lines quadratic.)"""
        end = data.find(b"\n", pos)
        if self._dropping:
            if end < 0:
                return len(data)
            self._dropping = False  # the rest of an over-long line: dropped
            self._first = True
            return end + 1
        if end < 0:
            self._buffer += data[pos:]
            if len(self._buffer) > MAX_LINE + 1:  # too long whatever ends it
                self._emit(bytes(self._buffer[:MAX_LINE]), events, truncated=True)
                self._buffer.clear()
                self._dropping = True
            return len(data)
        self._buffer += data[pos:end]
        line = bytes(self._buffer)
        self._buffer.clear()
        if len(line) > MAX_LINE + 1 or (len(line) == MAX_LINE + 1 and not line.endswith(b"\r")):
            self._emit(line[:MAX_LINE], events, truncated=True)
            self._first = True
        else:
            self._emit(line.rstrip(b"\r\n"), events, truncated=False)
        return end + 1

    def _emit(self, raw: bytes, events: list[Event], truncated: bool) -> None:
        match = None if truncated else _LITERAL.search(raw)
        literal = int(match.group(1)) if match else None
        events.append(Line(raw, self._first, literal, sync=not (match and match.group(2)),
                           truncated=truncated))
        if literal:
            self._literal_left = literal
        # A literal continues the same command or response (§4.3); so does
        # the line after a zero-octet literal.
        self._first = match is None


class ClientStream(_Stream):
    """What a client sends: command lines, literals, and the lines a command
    reads in the middle (AUTHENTICATE responses, IDLE's ``DONE``), which
    come as first lines with no verb."""


class ServerStream(_Stream):
    """What a server sends: tagged, untagged (``*``) and continuation (``+``)
    lines, and the literals inside responses (FETCH bodies)."""

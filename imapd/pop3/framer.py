"""Line framing for POP3 (RFC 1939 §3): every command and every SASL answer
(RFC 5034 §4) is one line ending in CRLF; there are no literals.

``LineFramer`` yields the events ``imapd.net.connection.LineConnection``
queues (``CommandFrame``, ``FrameError``) and has the methods it calls on
its framer (``feed``, ``set_limits``, ``discard_buffer``, ``close``), so
the shared connection machinery runs POP3 unchanged. A line longer than
``max_line`` octets (line end included) is dropped up to its LF and
reported once; the connection goes on (RFC 2449 §4 asks servers to take
commands of up to 255 octets). A bare LF ends a line like CRLF does.
"""

from __future__ import annotations

from typing import Any

from imapd.imap.wire.framer import CommandFrame, FrameError, FrameEvent

LINE_TOO_LONG = "Line too long"


class LineFramer:
    """Splits a client byte stream into lines of at most ``max_line`` octets."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._scan_from = 0
        self._dropping = False  # inside an overlong line, discarding up to LF
        self._dead = False

    def set_limits(self, limits: Any) -> None:
        """The IMAP framer's limits change at login; POP3's line limit does not."""

    def discard_buffer(self) -> None:
        """Forget input not framed yet (after STLS: plaintext behind it)."""
        self._buffer.clear()
        self._scan_from = 0
        self._dropping = False

    def close(self) -> None:
        self.discard_buffer()
        self._dead = True

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Take more bytes; return the lines (and overlong-line errors) they complete."""
        if self._dead:
            return []
        self._buffer += data
        events: list[FrameEvent] = []
        while True:
            newline = self._buffer.find(b"\n", self._scan_from)
            if newline < 0:
                self._overflow(events)
                return events
            line = bytes(self._buffer[:newline + 1])
            del self._buffer[:newline + 1]
            self._scan_from = 0
            if self._dropping:
                self._dropping = False  # the end of a line already reported
            elif len(line) > self.max_line:
                events.append(FrameError(None, LINE_TOO_LONG))
            else:
                events.append(CommandFrame(line))

    def _overflow(self, events: list[FrameEvent]) -> None:
        """No LF yet: an unfinished line past the limit is reported now and
        discarded as it arrives, so a client cannot make us buffer it."""
        if len(self._buffer) > self.max_line:
            if not self._dropping:
                events.append(FrameError(None, LINE_TOO_LONG))
                self._dropping = True
            self._buffer.clear()
        self._scan_from = len(self._buffer)

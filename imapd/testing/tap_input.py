"""The client-to-server half of a tapped connection: faults that act on
commands (``imapd.testing.faults``: ``close_at``, ``respond``,
``inject_exists``, ``inject_expunge``, and ``delay`` of one command).

Client octets are cut after every line end and followed with a
``ClientStream`` (``imapd.testing.stream``), so a command's first line is
always seen whole before any of it reaches the server: the bytes of an
unfinished first line are kept back (at most ``MAX_LINE``) until its end
arrives, which the server would wait for anyway (RFC 3501 §2.2). Literal
octets and the rest of a command after a literal pass at once.

IMAP commands are pipelined (RFC 3501 §5.5): a fault that answers,
closes or changes the store waits until the server has answered every
command sent before (it follows the tags of the answers), keeping the
client's later octets back meanwhile (reading paused), so the client sees
the earlier answers first and the store changes just before the server
runs the command. POP3 and LMTP have no tags: faults act at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from twisted.internet.defer import ensureDeferred

from imapd.testing import faults as kinds
from imapd.testing.faults import Fault
from imapd.testing.stream import MAX_LINE, ClientStream, Line, LiteralData

if TYPE_CHECKING:
    from imapd.testing.wiretap import TapProtocol

COMMAND_FAULTS = frozenset({kinds.CLOSE_AT, kinds.RESPOND, kinds.INJECT_EXISTS,
                            kinds.INJECT_EXPUNGE, kinds.DELAY})
_TERMINAL = frozenset({kinds.RESPOND, kinds.CLOSE_AT})
_INJECT = frozenset({kinds.INJECT_EXISTS, kinds.INJECT_EXPUNGE})


def pieces(data: bytes) -> Iterator[bytes]:
    """``data`` cut after every LF: each piece holds at most one line end."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


class _LineStream:
    """POP3 and LMTP: lines (RFC 1939 §3, RFC 5321 §2.3.8), a line's command
    its first word; for LMTP also the octets of a BDAT chunk (RFC 3030 §2),
    given as literal data after the BDAT line. Lines are kept whole up to
    ``MAX_LINE`` octets (the rest of a longer one is dropped)."""

    def __init__(self, lmtp: bool) -> None:
        self.lmtp = lmtp
        self.buffer = bytearray()
        self.octets = 0  # of a BDAT chunk, still to come

    def feed(self, data: bytes) -> list[Line | LiteralData]:
        events: list[Line | LiteralData] = []
        while data:
            if self.octets:
                take = data[:self.octets]
                self.octets -= len(take)
                data = data[len(take):]
                events.append(LiteralData(take, last=self.octets == 0))
                continue
            end = data.find(b"\n")
            if end < 0:
                self.buffer += data[:max(0, MAX_LINE + 1 - len(self.buffer))]
                break
            self.buffer += data[:max(0, min(end, MAX_LINE + 1 - len(self.buffer)))]
            data = data[end + 1:]
            text = bytes(self.buffer).rstrip(b"\r")
            self.buffer.clear()
            size = _bdat_size(text) if self.lmtp else None
            events.append(Line(text[:MAX_LINE], True, literal=size, sync=False,
                               truncated=len(text) > MAX_LINE))
            self.octets = size or 0
        return events


def _bdat_size(text: bytes) -> int | None:
    """The chunk size of an LMTP ``BDAT n [LAST]`` line (RFC 3030 §2)."""
    words = text.split()
    if len(words) >= 2 and words[0].upper() == b"BDAT" and words[1].isdigit() and len(words[1]) <= 20:
        return int(words[1])
    return None


class ClientFaults:
    """Applies command faults to one connection's client octets."""

    def __init__(self, tap: TapProtocol, faults: list[Fault]) -> None:
        self.tap = tap
        self.imap = tap.tap.protocol == "imap"
        self.lmtp = tap.tap.protocol == "lmtp"
        self.faults = [f for f in faults if f.kind in COMMAND_FAULTS and f.command is not None]
        self.counts: dict[str, int] = {}
        self.stream: Any = ClientStream() if self.imap else _LineStream(self.lmtp)
        self.pending = bytearray()     # an unfinished first line, kept back
        self.expect_first = True       # the next line starts a command
        self.swallowing = False        # the rest of an answered command: dropped
        self.held: bytearray | None = None  # octets kept back while a fault waits
        self.passthrough = not self.faults
        self.outstanding: list[str] = []    # IMAP tags sent on, not yet answered
        self.on_quiet: Callable[[], None] | None = None
        self.in_data = False           # LMTP: message data after 354 (RFC 2033 §4.2)

    # --- client octets --------------------------------------------------------------

    def received(self, data: bytes) -> None:
        if self.held is not None:
            self.held += data
            return
        if self.passthrough:
            self.tap.forward(data)
            return
        offset = 0
        for piece in pieces(data):
            offset += len(piece)
            self._piece(piece)
            if self.held is not None:
                self.held += data[offset:]
                return
            if self.passthrough:
                self.tap.forward(data[offset:])
                return

    def _piece(self, piece: bytes) -> None:
        events = self.stream.feed(piece)
        self.pending += piece
        if not self.imap and any(isinstance(e, LiteralData) and e.last for e in events):
            self._chunk_ended(events)
        line = next((e for e in events if isinstance(e, Line)), None)
        if line is None:
            if self.swallowing:
                self.pending.clear()
            elif not self.expect_first or len(self.pending) > MAX_LINE or piece.endswith(b"\n"):
                # (an LF with no line: the end of an over-long one, dropped)
                self._flush()
            return
        was_first = self.expect_first
        self.expect_first = line.literal is None or (not self.imap and line.literal == 0)
        if self.swallowing:
            self.pending.clear()
            self.swallowing = line.literal is not None
            return
        verb = self._verb(line)
        if was_first and line.first and not line.truncated and verb and not self.in_data:
            self._command(line, verb)
        else:
            if self.lmtp and self.in_data and line.text == b".":
                self.in_data = False
            self._flush()

    def _chunk_ended(self, events: list[Line | LiteralData]) -> None:
        """LMTP: a BDAT chunk's last octets are in this piece; what follows
        them is a new command (RFC 3030 §2). The chunk's octets go on (or,
        answered by a fault, are dropped) before that command is judged."""
        size = sum(len(e.data) for e in events if isinstance(e, LiteralData))
        head = bytes(self.pending[:size])
        del self.pending[:size]
        if not self.swallowing:
            self.tap.forward(head)
        self.swallowing = False
        self.expect_first = True

    def _verb(self, line: Line) -> str:
        if self.imap:
            return line.verb
        word = line.text.split(b" ", 1)[0]
        return word.upper().decode("ascii", "replace")

    def _flush(self) -> None:
        data, self.pending = bytes(self.pending), bytearray()
        self.tap.forward(data)

    # --- a command's first line -----------------------------------------------------

    def _command(self, line: Line, verb: str) -> None:
        count = self.counts[verb] = self.counts.get(verb, 0) + 1
        matching = [f for f in self.faults if f.matches(verb)
                    and (f.kind == kinds.DELAY or f.occurrence == count)]
        if self.imap and verb == "COMPRESS":
            # What follows may be compressed: the wiretap does not follow
            # commands any more (see imapd.testing.wiretap).
            self.passthrough = True
        acting = [f for f in matching if f.kind in _INJECT or (f.kind in _TERMINAL and not f.after_answer)]
        if not acting:
            self._send_command(line, matching)
            return
        data, self.pending = bytes(self.pending), bytearray()
        self.held = bytearray()
        self.tap.hold_reading(True)
        self._when_quiet(lambda: self._act(line, data, matching))

    def _send_command(self, line: Line, matching: list[Fault]) -> None:
        tag = line.tag if self.imap else ""
        self.tap.command_forwarded()
        for fault in matching:
            if fault.kind == kinds.DELAY:
                self.tap.delay_response(tag, fault.seconds)
            elif fault.kind == kinds.CLOSE_AT and fault.after_answer:
                self.tap.close_after_answer(tag)
        if self.imap:
            self.outstanding.append(tag)
        self._flush()

    def _when_quiet(self, action: Callable[[], None]) -> None:
        if self.outstanding:
            self.on_quiet = action
        else:
            action()

    def answered(self, tag: str) -> None:
        """The server's tagged answer to ``tag`` was written."""
        if tag in self.outstanding:
            self.outstanding.remove(tag)
        if not self.outstanding and self.on_quiet is not None:
            action, self.on_quiet = self.on_quiet, None
            self.tap.clock.callLater(0, action)

    def data_accepted(self) -> None:
        """LMTP: the server said 354: message lines follow, up to a lone
        "." (RFC 5321 §4.1.1.4); they are not commands."""
        self.in_data = True

    def _act(self, line: Line, data: bytes, matching: list[Fault]) -> None:
        injects = [f for f in matching if f.kind in _INJECT]
        if injects:
            done = ensureDeferred(self.tap.inject(injects))
            done.addBoth(lambda _: self._after_inject(line, data, matching))
            return
        self._after_inject(line, data, matching)

    def _after_inject(self, line: Line, data: bytes, matching: list[Fault]) -> None:
        terminal = next((f for f in matching if f.kind in _TERMINAL and not f.after_answer), None)
        if terminal is None:
            self.pending = bytearray(data)
            self._send_command(line, matching)
        elif terminal.kind == kinds.CLOSE_AT:
            self.tap.note(f"fault close_at {terminal.command}: connection reset, command not passed on")
            self.tap.cut(abort=True)
            return
        else:
            self._respond(line, terminal)
        self._release()

    def _respond(self, line: Line, fault: Fault) -> None:
        """Answer in the server's place (RFC 3501 §7.1: NO, BAD, BYE); for
        a synchronizing literal the answer replaces the ``+`` (§7.5), and a
        non-synchronizing one's octets (RFC 7888) are dropped."""
        self.tap.note(f"fault respond {fault.command}: {fault.status} {fault.text}")
        self.swallowing = line.literal is not None and not line.sync and (self.imap or line.literal > 0)
        if line.literal is not None and line.sync:
            self.expect_first = True
            self.stream = ClientStream()  # no literal follows a refused announcement
        self.tap.answer(_answer(self.tap.tap.protocol, line, fault), bye=fault.status == "BYE")

    def _release(self) -> None:
        held, self.held = bytes(self.held or b""), None
        self.tap.hold_reading(False)
        if held:
            self.received(held)


def _answer(protocol: str, line: Line, fault: Fault) -> bytes:
    text = fault.text.encode("utf-8")
    if protocol == "imap":
        if fault.status == "BYE":
            return b"* BYE " + text + b"\r\n"
        return line.tag.encode("ascii", "replace") + b" " + fault.status.encode() + b" " + text + b"\r\n"
    if protocol == "pop3":
        return b"-ERR " + text + b"\r\n"  # RFC 1939 §3
    codes = {"NO": b"451 4.3.0 ", "BAD": b"500 5.5.2 ", "BYE": b"421 4.3.2 "}  # RFC 5321 §4.2
    return codes[fault.status] + text + b"\r\n"

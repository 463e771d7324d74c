"""Command framing: bytes in any fragmentation -> complete command frames.

The framer knows lines and literals and nothing else about IMAP (RFC 3501
§2.2, §4.3, §7.5; RFC 7888 LITERAL+; RFC 3516 literal8). A frame is one
whole command: its line(s) and literal bytes inline, exactly as received,
e.g. ``b'a APPEND INBOX {5}\\r\\nhello\\r\\n'``.

Decisions (recorded here because they shape the protocol's behaviour):

* Line ends: RFC 3501 §2.2 says CRLF, but a bare LF is accepted too. An LF
  can never occur inside a command line except as its end (outside a
  literal), so this is unambiguous, and it keeps hand-typed ``nc`` sessions
  working (Dovecot and Cyrus are equally lenient). Frames keep the bytes as
  received; the parser accepts both endings.
* ``max_line`` bounds one line *excluding* its literals. An overlong line is
  answered with ``BAD`` as soon as the limit is passed; its remaining bytes
  are dropped up to the next LF, which is where the stream resynchronises.
  If the dropped line turns out to end in a non-synchronizing literal, that
  literal and the rest of the command are dropped too.
* A synchronizing literal over ``max_literal`` (or one that would push the
  command past ``max_command``) is refused *before* the continuation request,
  with ``[TOOBIG]``: the client never uploads it and the command is over
  (RFC 3501 §7.5, RFC 7888 §4).
* A non-synchronizing literal ``{n+}`` that is too big is already on its way.
  RFC 7888 §4 lets the server either read and discard it or close the
  connection. We discard it when ``n <= max_command`` (so the waste is
  bounded by what we would have accepted for a whole command anyway) and
  make the error fatal beyond that, so a client cannot pin the connection
  with ``{99999999999+}``.
* Only APPEND carries messages (RFC 3501 §6.3.11; MULTIAPPEND, CATENATE).
  Any other command's literals are a mailbox name, a search string, a
  password: a literal over ``SMALL_LITERAL`` octets there is refused like
  one over ``max_literal`` (a synchronizing one before ``+``, RFC 3501
  §7.5; a non-synchronizing one is read and discarded, RFC 7888 §4), and
  their octets count towards ``max_command_text``, as they all go through
  the parser (a 50 MB ``CREATE`` name was 12 s of modified UTF-7 decoding
  before it was refused: issue 13).
* ``max_command_text`` bounds the lines of one command without their
  literal octets (``BAD [TOOBIG]``): the parser's work follows that text,
  and a command of tens of thousands of tiny literals would otherwise be
  ``max_command`` bytes of tokens, seconds of CPU in one parse call.
* Memory: a command is at most ``max_command`` bytes; the state is the
  unconsumed buffer, the parts of the current frame and a few integers.
  Every byte is examined a constant number of times (the LF search resumes
  where the previous one stopped), so byte-at-a-time feeding is linear.
* Large literals (issue 6): a literal over ``literal_spool_threshold`` is
  written to an anonymous spool file (``imapd.core.spool``) as it arrives, so a
  slow 64 MiB upload costs disk, not memory. The frame then carries it as
  a ``SpooledPart`` instead of inline: ``data`` has the line(s) without its
  octets and the part says where they belong. The spool file is opened
  when the literal is announced, so a failure (no space, no directory) is
  answered ``NO [UNAVAILABLE]`` before the client sends it. Frames own
  their spooled literals (``CommandFrame.close``); the framer closes those
  of commands it drops, and all of them in ``close()``.
"""

from __future__ import annotations

import errno

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from imapd.core.config import Limits
from imapd.core.spool import SpooledLiteral, SpoolWriter
from imapd.imap.wire.lexer import TAG_CHARS

TOOBIG = "TOOBIG"  # RFC 4469 / RFC 7889 response code
UNAVAILABLE = "UNAVAILABLE"  # RFC 5530: a literal could not be spooled
OVERQUOTA = "OVERQUOTA"  # RFC 5530: ... because the disk is full (as the store says)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _spool_failure_code(error: OSError) -> str:
    """A full disk is the user's problem to know about (NO [OVERQUOTA], as
    the store answers it); anything else is the server's (UNAVAILABLE)."""
    return OVERQUOTA if error.errno in _DISK_FULL else UNAVAILABLE

# A literal announcement at the end of a line: ``{12}``, ``{12+}``,
# ``~{12}`` (RFC 3501 §9 literal, RFC 7888, RFC 3516 literal8). Up to 20
# digits are recognised so absurd sizes are classed as too big, not as text.
_LITERAL_AT_END = re.compile(rb"~?\{([0-9]{1,20})(\+?)\}\r?\n\Z")
_TAG = re.compile(b"[" + re.escape(TAG_CHARS) + b"]+")
# The largest literal of a command other than APPEND (see the module doc):
# far above a mailbox name (1000 characters, at most 8 octets each in
# modified UTF-7) or any sensible search string, far below a message.
SMALL_LITERAL = 64 * 1024
# ``tag APPEND`` at the start of a command's first line.
_APPEND = re.compile(rb"[^ ]+ APPEND[ \r\n]", re.IGNORECASE)
# The tail of a dropped overlong line that we keep to spot a literal.
_TAIL_KEEP = 32


@dataclass(frozen=True, slots=True)
class SpooledPart:
    """A literal kept in a spool file; its octets belong at ``offset`` of
    the frame's ``data`` (right after the line end of its ``{n}``)."""

    offset: int
    content: SpooledLiteral


@dataclass(frozen=True, slots=True)
class CommandFrame:
    """One complete command: line(s) with line ends, literals inline,
    except large ones, which are in ``spooled`` (see the module doc)."""

    data: bytes
    spooled: tuple[SpooledPart, ...] = ()

    def inline(self) -> bytes:
        """The frame exactly as received, spooled literals copied back in
        (for tests and small frames: this builds one bytes object)."""
        pieces: list[bytes] = []
        position = 0
        for part in self.spooled:
            pieces += [self.data[position:part.offset], bytes(part.content)]
            position = part.offset
        pieces.append(self.data[position:])
        return b"".join(pieces)

    def close(self) -> None:
        """Release the spool files (the command is over)."""
        for part in self.spooled:
            part.content.close()


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronizing literal was accepted: send ``+ ...`` now (RFC 3501 §7.5)."""


@dataclass(frozen=True, slots=True)
class FrameError:
    """The current command was dropped. Answer ``tag BAD reason`` (or ``NO
    [TOOBIG]`` when ``code`` says so); the framer has already resynchronised.
    ``fatal`` means the stream cannot be resynchronised: close the connection."""

    tag: str | None
    reason: str
    code: str | None = None
    fatal: bool = False


FrameEvent = Union[CommandFrame, NeedContinuation, FrameError]


class _Mode(enum.Enum):
    LINE = "line"                  # reading a command line
    LITERAL = "literal"            # reading literal bytes into the frame
    DROP_LINE = "drop-line"        # discarding an overlong line up to LF
    DROP_LITERAL = "drop-literal"  # discarding a rejected {n+} literal


def extract_tag(line: bytes) -> str | None:
    """The tag at the start of ``line`` if it is a valid tag followed by a
    space (RFC 3501 §9: tag = 1*<any ASTRING-CHAR except "+">), else None."""
    match = _TAG.match(line)
    if match is None or line[match.end():match.end() + 1] != b" ":
        return None
    return match.group().decode("ascii")


class Framer:
    """Incremental splitter of a client byte stream into command frames.
    Spool files for large literals go to ``spool_dir`` (created when
    needed; None: the system's temporary directory)."""

    def __init__(self, limits: Limits, spool_dir: Path | None = None) -> None:
        self._limits = limits
        self._spool_dir = spool_dir
        self._spool: SpoolWriter | None = None     # the literal being spooled
        self._spooled: list[SpooledPart] = []     # finished ones of this frame
        self._inline_size = 0                      # octets in self._parts
        self._buffer = bytearray()
        self._scan_from = 0            # LF search resumes here (line modes)
        self._mode = _Mode.LINE
        self._parts: list[bytes] = []  # the current frame so far
        self._frame_size = 0
        self._text_size = 0            # octets of the frame's lines alone
        self._literal_left = 0
        self._tag: str | None = None   # tag of the current command, once known
        self._appending = False        # the current command is an APPEND
        self._dropping = False         # the current command was rejected
        self._drop_tail = b""          # last bytes of a dropped overlong line
        self._dead = False             # a fatal error happened: ignore input

    def set_limits(self, limits: Limits) -> None:
        """Apply other limits from the next frame decision on. The server
        frames with small literal limits before login (an unauthenticated
        client has no use for a 64 MiB literal) and the full ones after."""
        self._limits = limits

    def discard_buffer(self) -> None:
        """Forget everything received but not yet framed (after STARTTLS:
        plaintext pipelined behind it must not run under TLS)."""
        self._buffer.clear()
        self._scan_from = 0
        self._reset_command()

    def close(self) -> None:
        """The connection is gone: drop what is buffered, spool files
        included, and ignore further input."""
        self.discard_buffer()
        self._dead = True

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Take more bytes; return the events they complete, in order."""
        if self._dead:
            return []
        self._buffer += data
        events: list[FrameEvent] = []
        while self._step(events):
            if events and isinstance(events[-1], FrameError) and events[-1].fatal:
                self.close()
                break
        return events

    # --- the state machine ---------------------------------------------------

    def _step(self, events: list[FrameEvent]) -> bool:
        """Consume what the current mode can; False when more input is needed."""
        if self._mode is _Mode.LITERAL or self._mode is _Mode.DROP_LITERAL:
            return self._take_literal(events)
        newline = self._buffer.find(b"\n", self._scan_from)
        if newline < 0:
            self._scan_from = len(self._buffer)
            if self._mode is _Mode.LINE and len(self._buffer) > self._line_allowance():
                self._start_dropping_line(events)
            elif self._mode is _Mode.DROP_LINE:
                self._keep_tail(bytes(self._buffer))
                self._buffer.clear()
                self._scan_from = 0
            return False
        line = bytes(self._buffer[:newline + 1])
        del self._buffer[:newline + 1]
        self._scan_from = 0
        if self._mode is _Mode.DROP_LINE:
            self._keep_tail(line)
            self._finish_dropped_line(events)
        elif len(line) > self._line_allowance():
            self._start_dropping_line(events, line)
            self._finish_dropped_line(events)
        else:
            self._take_line(line, events)
        return True

    def _line_allowance(self) -> int:
        """Bytes a line may occupy including its line end (max_line excludes it)."""
        return self._limits.max_line + 2

    def _take_line(self, line: bytes, events: list[FrameEvent]) -> None:
        if not self._parts:
            self._tag = extract_tag(line)
            self._appending = _APPEND.match(line) is not None
        self._parts.append(line)
        self._inline_size += len(line)
        self._frame_size += len(line)
        self._text_size += len(line)
        if self._text_size > self._limits.max_command_text:
            # Parsing cost follows the text, not the literal octets.
            self._reject(line, events, "Command text too long", TOOBIG)
            return
        if self._frame_size > self._limits.max_command:
            self._reject(line, events, "Command too long", TOOBIG)
            return
        announced = _LITERAL_AT_END.search(line)
        if announced is None:
            events.append(CommandFrame(b"".join(self._parts), tuple(self._spooled)))
            self._spooled = []  # the frame owns them now
            self._reset_command()
            return
        size = int(announced.group(1))
        synchronizing = not announced.group(2)
        if size > self._limits.max_literal:
            self._reject(line, events, "Literal too big", TOOBIG)
        elif not self._appending and not self._small_literal(size):
            self._reject(line, events, "Literal too big for this command", TOOBIG)
        elif self._frame_size + size > self._limits.max_command:
            self._reject(line, events, "Command too long", TOOBIG)
        elif size > self._limits.literal_spool_threshold and (
                failure := self._open_spool(size)) is not None:
            self._reject(line, events, "Cannot store the literal now", _spool_failure_code(failure))
        else:
            self._mode = _Mode.LITERAL if size else _Mode.LINE
            self._literal_left = size
            if synchronizing:
                events.append(NeedContinuation())

    def _small_literal(self, size: int) -> bool:
        """May a command other than APPEND take a literal of ``size``
        octets? Its octets then count as text (they are all parsed)."""
        if size > SMALL_LITERAL or self._text_size + size > self._limits.max_command_text:
            return False
        self._text_size += size
        return True

    def _open_spool(self, size: int) -> OSError | None:
        """Start spooling a literal of ``size``; the error if that failed."""
        try:
            self._spool = SpoolWriter(size, self._spool_dir)
        except OSError as error:
            return error
        return None

    def _take_literal(self, events: list[FrameEvent]) -> bool:
        if not self._buffer:
            return False
        count = min(self._literal_left, len(self._buffer))
        if self._mode is _Mode.LITERAL:
            self._frame_size += count
            if self._spool is None:
                self._parts.append(bytes(self._buffer[:count]))
                self._inline_size += count
            elif not self._spool_octets(count, events):
                return True  # the command is being dropped now
        del self._buffer[:count]
        self._literal_left -= count
        if self._literal_left == 0:
            # After the literal the command line continues (RFC 3501 §4.3).
            self._mode = _Mode.DROP_LINE if self._dropping else _Mode.LINE
            if self._dropping:
                self._drop_tail = b""
        return True

    def _spool_octets(self, count: int, events: list[FrameEvent]) -> bool:
        """Write the next ``count`` buffered octets to the spool file; when
        the literal is complete, it becomes a part of the frame. False (and
        the command dropped) if the file cannot take them."""
        assert self._spool is not None
        try:
            with memoryview(self._buffer) as view, view[:count] as piece:
                self._spool.write(piece)
            if self._literal_left == count:
                self._spooled.append(SpooledPart(self._inline_size, self._spool.finish()))
                self._spool = None
        except OSError as error:
            # Disk full or similar: drop the command; the rest of the
            # literal is read and thrown away (the client is sending it).
            events.append(FrameError(self._tag, "Cannot store the literal now",
                                     _spool_failure_code(error)))
            self._drop_spooled()
            self._parts = []
            self._dropping = True
            self._mode = _Mode.DROP_LITERAL
            return False
        return True

    def _drop_spooled(self) -> None:
        """Close the spool files of the current command (it is dropped)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        for part in self._spooled:
            part.content.close()
        self._spooled = []
        self._inline_size = 0

    # --- rejecting a command -----------------------------------------------------

    def _reject(self, line: bytes, events: list[FrameEvent], reason: str, code: str | None) -> None:
        """Drop the current command whose latest line is ``line`` and report it.
        What follows depends on the literal the line announces, if any."""
        events.append(FrameError(self._tag, reason, code))
        self._parts = []
        self._drop_spooled()
        self._follow_announcement(line, events)

    def _follow_announcement(self, line: bytes, events: list[FrameEvent]) -> None:
        """After a dropped line: a synchronizing literal will not come (we send
        no continuation) so the command is over; a non-synchronizing one is
        on its way and is skipped, or the connection must close."""
        announced = _LITERAL_AT_END.search(line)
        if announced is None or not announced.group(2):
            self._reset_command()
            return
        size = int(announced.group(1))
        if size > self._limits.max_command:
            events.append(FrameError(self._tag, "Literal too big to skip", TOOBIG, fatal=True))
            self._reset_command()
            return
        self._dropping = True
        self._mode = _Mode.DROP_LITERAL
        self._literal_left = size
        if size == 0:
            self._mode = _Mode.DROP_LINE
            self._drop_tail = b""

    def _start_dropping_line(self, events: list[FrameEvent], line: bytes | None = None) -> None:
        """The line passed ``max_line``: report now, drop up to the next LF."""
        if not self._dropping:
            start = line if line is not None else bytes(self._buffer[:256])
            tag = self._tag if self._parts else extract_tag(start[:256])
            events.append(FrameError(tag, "Line too long"))
            self._tag = tag
        self._parts = []
        self._drop_spooled()
        self._dropping = True
        self._mode = _Mode.DROP_LINE
        self._drop_tail = b""
        if line is None:
            self._keep_tail(bytes(self._buffer))
            self._buffer.clear()
            self._scan_from = 0
        else:
            self._keep_tail(line)

    def _keep_tail(self, data: bytes) -> None:
        self._drop_tail = (self._drop_tail + data)[-_TAIL_KEEP:]

    def _finish_dropped_line(self, events: list[FrameEvent]) -> None:
        tail, self._drop_tail = self._drop_tail, b""
        self._follow_announcement(tail, events)

    def _reset_command(self) -> None:
        self._drop_spooled()
        self._mode = _Mode.LINE
        self._parts = []
        self._frame_size = 0
        self._text_size = 0
        self._literal_left = 0
        self._tag = None
        self._appending = False
        self._dropping = False
        self._drop_tail = b""

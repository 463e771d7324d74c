"""One IMAP connection under the strict checks: both byte streams, in order.

The wiretap calls ``client_data`` with what the client sent, before the
server sees it, and ``server_data`` with what the server wrote, before the
client sees it, in the real order of the two streams. The checker splits
them into lines and literals (``imapd.testing.stream``), follows what the
server has told the client (``ServerView``) and judges each client line
and command (``checks_rules``). It never raises: a bug in a check is kept
in ``internal_errors`` and the connection is no longer checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from imapd.imap.wire.lexer import TAG_CHARS
from imapd.testing import checks_rules as rules
from imapd.testing.checks_catalogue import Violation, violation
from imapd.testing.checks_session import ServerEvent, ServerView
from imapd.testing.stream import ClientStream, Line, LiteralData, ServerStream

# At most this many violations of one check are reported per connection
# (a client that ends every line in LF would otherwise report each line).
MAX_PER_CHECK = 5
# Literals longer than this are not kept for the argument checks (an APPEND
# message); a command frame longer than MAX_FRAME is not judged by them.
KEEP_LITERAL = 16 * 1024
MAX_FRAME = 256 * 1024
# RFC 7888 §4: LITERAL- allows non-synchronizing literals up to 4096 octets.
LITERAL_MINUS_MAX = 4096

_TAG = re.compile(b"[" + re.escape(TAG_CHARS) + b"]+")
_ANNOUNCEMENT = re.compile(rb"~?\{[0-9]+\+?\}\Z")


@dataclass
class _Command:
    """The command being received: its first line and its frame so far."""

    tag: str
    verb: str
    line: bytes
    frame: bytearray = field(default_factory=bytearray)
    lines: list[bytes] = field(default_factory=list)   # without the literals
    dropping: bool = False      # inside a literal too long to keep
    oversized: bool = False     # the frame outgrew MAX_FRAME


class ConnectionChecker:
    """The strict checks of one IMAP connection (see the module docstring)."""

    def __init__(self, number: int, enabled: frozenset[str],
                 report: Callable[[Violation], None], active: bool = True) -> None:
        self.number = number
        self.internal_errors: list[str] = []
        self._enabled = enabled
        self._report = report
        self._counts: dict[str, int] = {}
        self._client = ClientStream()
        self._server = ServerStream()
        self._view = ServerView()
        self._literal_left = 0          # octets of a client literal still to come
        self._server_literal_left = 0   # the same, of a literal in a response
        self._prev_byte = 0x0A          # the client octet before the current piece
        self._command: _Command | None = None
        self._awaiting: Line | None = None      # a sync literal waiting for '+'
        self._idle: str | None = None           # tag of the IDLE in progress
        self._idle_accepted = False
        self._sasl: str | None = None           # tag of the AUTHENTICATE in progress
        self._sasl_turn = False                 # the server asked for a SASL response
        self._stopped = not active     # inactive: a protocol that is not checked
        self._in_login = False          # the lines being received belong to a LOGIN

    # --- entry points ------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        """What the client sent, before the server sees it."""
        self._guarded(self._client_bytes, data)

    def server_data(self, data: bytes) -> None:
        """What the server wrote, before the client sees it."""
        self._guarded(self._server_bytes, data)

    def _guarded(self, step: Callable[[bytes], None], data: bytes) -> None:
        if self._stopped or self._view.blind:
            return
        try:
            step(data)
        except Exception as error:  # a checker bug must not fail the user's test
            self.internal_errors.append(f"{type(error).__name__}: {error}")
            self._stopped = True

    def _flag(self, check: str, message: str, line: bytes) -> None:
        if check not in self._enabled:
            return
        count = self._counts.get(check, 0)
        self._counts[check] = count + 1
        if count < MAX_PER_CHECK:
            shown = _redacted(line) if self._in_login else line
            self._report(violation(check, message, self.number, shown))

    # --- the client stream ---------------------------------------------------------

    def _client_bytes(self, data: bytes) -> None:
        """Feed the stream one line (or one literal) at a time, so the octet
        before each line's LF is known (RFC 3501 §2.2: lines end in CRLF)."""
        start = 0
        while start < len(data) and not self._view.blind:
            if self._literal_left:
                end = min(len(data), start + self._literal_left)
            else:
                newline = data.find(b"\n", start)
                end = len(data) if newline < 0 else newline + 1
            piece = data[start:end]
            events = self._client.feed(piece)
            before = piece[-2] if len(piece) >= 2 else self._prev_byte
            for index, event in enumerate(events):
                if isinstance(event, LiteralData):
                    self._client_literal(event)
                    continue
                ended_here = index == len(events) - 1 and piece.endswith(b"\n")
                self._client_line(event, bare_lf=ended_here and not event.truncated
                                  and before != 0x0D)
            self._prev_byte = piece[-1]
            start = end

    def _client_line(self, line: Line, bare_lf: bool) -> None:
        if line.first:
            # LOGIN's lines, AUTHENTICATE's and SASL responses hold the
            # password: reports never show them.
            self._in_login = self._sasl_turn or line.verb in ("LOGIN", "AUTHENTICATE")
        if bare_lf:
            self._flag("line-not-crlf", "the line ends in a bare LF; every line a client "
                       "sends must end in CRLF (\\r\\n), also before a literal's octets.",
                       line.text)
        if line.literal is not None:
            self._literal_left = line.literal
        if not line.first:
            if self._awaiting is not None:  # {0}: no octets, but the rest came early
                self._literal_too_early()
            self._continue_command(line)
        elif self._sasl_turn:
            self._sasl_turn = False     # a SASL response (RFC 3501 §6.2.2), not a command
        elif self._idle is not None:
            self._idle_line(line)
        elif line.text.strip().upper() == b"DONE":
            self._flag("done-outside-idle", "DONE was sent but no IDLE was in progress: DONE "
                       "only ends an IDLE command the server accepted with '+'; the server "
                       "takes this line as a command with the tag DONE.", line.text)
        else:
            self._start_command(line)

    def _idle_line(self, line: Line) -> None:
        assert self._idle is not None
        if line.text.strip().upper() != b"DONE":
            self._flag("command-during-idle", f"IDLE ({self._idle}) was in progress: the only "
                       "thing a client may send then is DONE, which ends it; send DONE, wait "
                       "for the IDLE's tagged OK, then send the command.", line.text)
            return
        if not self._idle_accepted:
            self._flag("done-outside-idle", f"DONE was sent before the server accepted IDLE "
                       f"({self._idle}) with a '+' continuation; wait for '+' (the server may "
                       "refuse IDLE, and DONE would then be read as a command).", line.text)
        self._idle = None

    def _start_command(self, line: Line) -> None:
        tag, verb = line.tag, line.verb
        if not verb or _TAG.fullmatch(tag.encode("ascii", "replace")) is None:
            self._command = None    # not a command: the server answers BAD
            return
        pending = self._view.pending.get(tag)
        if pending is not None:
            self._flag("tag-reused", f'the tag "{tag}" belongs to a command still in progress '
                       f'("{_show(pending.line)}", not answered yet); give every command in '
                       "progress its own tag, or the responses cannot be told apart.", line.text)
        problem = rules.state_problem(verb, self._view)
        if problem is not None:
            self._flag("command-in-wrong-state", problem, line.text)
        if verb == "LOGIN" and "LOGINDISABLED" in self._view.capabilities:
            self._flag("login-disabled", "LOGIN was sent although the server announced "
                       "LOGINDISABLED: a client must not send LOGIN then (RFC 3501 §6.2.3); "
                       "use STARTTLS first, or AUTHENTICATE with an offered mechanism.",
                       line.text)
        self._view.start_command(tag, verb, _redacted(line.text) if self._in_login
                                 else line.text[:200])
        if verb == "IDLE":
            self._idle, self._idle_accepted = tag, False
        elif verb == "AUTHENTICATE":
            self._sasl = tag
        self._command = _Command(tag, verb, line.text)
        self._add_line(line)

    def _continue_command(self, line: Line) -> None:
        if self._command is not None:
            self._add_line(line)

    def _add_line(self, line: Line) -> None:
        """One line of the current command: keep it, then the literal it
        announces or, at its end, judge the whole command."""
        command = self._command
        assert command is not None
        text = line.text
        if line.literal is not None and line.literal > KEEP_LITERAL:
            text = _ANNOUNCEMENT.sub(b"{0}", text)
            command.dropping = True
        self._keep(command, text + b"\r\n")
        if not command.oversized:
            command.lines.append(text)
        if line.literal is None:
            self._command = None
            if not command.oversized and not line.truncated:
                self._judge(command, bytes(command.frame))
            return
        if line.sync:
            self._awaiting = line
        else:
            self._non_synchronizing(line)

    def _keep(self, command: _Command, data: bytes) -> None:
        if len(command.frame) + len(data) > MAX_FRAME:
            command.oversized = True
        if not command.oversized:
            command.frame += data

    def _non_synchronizing(self, line: Line) -> None:
        """``{n+}`` (RFC 7888 §3, §4): needs LITERAL+, or LITERAL- and n <= 4096."""
        capabilities = self._view.capabilities
        size = line.literal or 0
        if "LITERAL+" in capabilities:
            return
        if "LITERAL-" in capabilities:
            if size <= LITERAL_MINUS_MAX:
                return
            why = (f"the server offers only LITERAL-, which allows non-synchronizing literals "
                   f"of at most {LITERAL_MINUS_MAX} octets, and this one has {size}")
        else:
            why = "the server has not offered LITERAL+ or LITERAL- (in its CAPABILITY list)"
        self._flag("non-synchronizing-literal", f"a non-synchronizing literal {{{size}+}} was "
                   f"sent, but {why}; send a synchronizing literal {{{size}}} and wait for "
                   "the server's '+'.", line.text)

    def _client_literal(self, piece: LiteralData) -> None:
        self._literal_left = max(0, self._literal_left - len(piece.data))
        if self._awaiting is not None:
            self._literal_too_early()
        command = self._command
        if command is not None and not command.dropping:
            self._keep(command, piece.data)
        if command is not None and piece.last:
            command.dropping = False

    def _literal_too_early(self) -> None:
        assert self._awaiting is not None
        size = self._awaiting.literal
        self._flag("literal-without-continuation", f"the literal announced by {{{size}}} "
                   "(and what follows it) was sent before the server's '+' continuation; "
                   "after a synchronizing literal's announcement the client must wait for "
                   "'+' (the server may refuse the command with a tagged NO instead), even "
                   f"for {{0}}, or use {{{size}+}} where the server offers LITERAL+.",
                   self._awaiting.text)
        self._awaiting = None

    # --- judging a complete command ------------------------------------------------

    def _judge(self, command: _Command, frame: bytes) -> None:
        verb = command.verb
        utf8 = "UTF8=ACCEPT" in self._view.enabled or "UTF8=ONLY" in self._view.enabled
        names = rules.mailbox_arguments(verb, frame)
        for name in names:
            problem = rules.mailbox_problem(name, utf8)
            if problem is not None:
                self._flag("mailbox-name-not-modified-utf7", problem, command.line)
        if not utf8:
            # A name is judged once, by the mailbox check, when that is on.
            judged = "mailbox-name-not-modified-utf7" in self._enabled
            problem = rules.eight_bit_quoted(command.lines, frozenset(names if judged else ()),
                                             hide=verb == "LOGIN")
            if problem is not None:
                self._flag("eight-bit-in-quoted-string", problem, command.line)
        if verb in ("SELECT", "EXAMINE", "UID FETCH"):
            problem = rules.qresync_problem(frame, self._view.enabled)
            if problem is not None:
                self._flag("qresync-not-enabled", problem, command.line)
        base = verb.removeprefix("UID ")
        if base in rules.SEQUENCE_VERBS and self._view.exists is not None:
            self._judge_numbers(command, verb)
        if base == "STORE" or verb == "APPEND":
            problem = rules.recent_flag_problem(frame)
            if problem is not None:
                self._flag("recent-flag-set", problem, command.line)

    def _judge_numbers(self, command: _Command, verb: str) -> None:
        found = rules.sequence_set(bytes(command.frame))
        if found is None or found[0].saved:
            return
        seqset, spelled = found
        if verb.startswith("UID "):
            problem = rules.sequence_as_uid(verb, spelled, seqset, self._view)
            if problem is not None:
                self._flag("sequence-number-as-uid", problem, command.line)
            return
        alone = len(self._view.pending) <= 1
        result = rules.beyond_exists(verb, spelled, seqset, self._view, alone)
        if result is None:
            return
        check, message = result
        if check == "uid-as-sequence-number" and check not in self._enabled:
            check = "sequence-number-beyond-exists"
        self._flag(check, message, command.line)

    # --- the server stream -------------------------------------------------------------

    def _server_bytes(self, data: bytes) -> None:
        """Fed a line (or a literal) at a time: the stream's cost then stays
        linear in the size of a write holding many lines."""
        start = 0
        while start < len(data):
            if self._server_literal_left:
                end = min(len(data), start + self._server_literal_left)
            else:
                newline = data.find(b"\n", start)
                end = len(data) if newline < 0 else newline + 1
            for event in self._server.feed(data[start:end]):
                if isinstance(event, LiteralData):
                    self._server_literal_left = max(0, self._server_literal_left - len(event.data))
                    continue
                if event.literal is not None:
                    self._server_literal_left = event.literal
                self._server_line(self._view.server_line(event))
                if self._view.blind:
                    return
            start = end

    def _server_line(self, event: ServerEvent) -> None:
        if event.kind == "continuation":
            if self._awaiting is not None:
                self._awaiting = None
            elif self._idle is not None and not self._idle_accepted:
                self._idle_accepted = True
            elif self._sasl is not None:
                self._sasl_turn = True
        elif event.kind == "tagged":
            self._command_answered(event.tag)

    def _command_answered(self, tag: str) -> None:
        command = self._command
        if self._awaiting is not None and command is not None and command.tag == tag:
            # Refused instead of '+' (RFC 3501 §7.5): the literal never comes,
            # the client's next octets begin a new command.
            self._client = ClientStream()
            self._awaiting, self._command, self._literal_left = None, None, 0
        if tag == self._idle:
            self._idle = None
        if tag == self._sasl:
            self._sasl, self._sasl_turn = None, False


def _redacted(line: bytes) -> bytes:
    """A line of LOGIN or AUTHENTICATE without its arguments, or a SASL
    response: they hold the password."""
    words = line.split(b" ", 2)
    if len(words) >= 2 and words[1].upper() in (b"LOGIN", b"AUTHENTICATE"):
        return b"%s %s *** (arguments not shown: they hold the password)" % (
            words[0], words[1].upper())
    return b"*** (not shown: a line of LOGIN or AUTHENTICATE may hold the password)"


def _show(line: bytes) -> str:
    return line[:80].decode("utf-8", "backslashreplace")

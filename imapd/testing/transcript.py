"""What was said on each connection of a test server, for people to read.

The wiretap (``imapd.testing.wiretap``) records every octet each side sent,
in order, with the time since the connection opened. ``Transcript.text``
renders it as ``C: ...`` / ``S: ...`` lines; ``format_transcripts`` joins
the transcripts of a server for a failed test's report.

Redaction (``secrets``: the passwords of the test's users) replaces with
``***``:

* every occurrence of a secret, wherever it appears;
* the password argument of IMAP ``LOGIN`` (RFC 3501 §6.2.3), whether an
  atom, a quoted string (where escaping hides it from a plain search) or a
  literal (§4.3), and the argument of POP3 ``PASS`` (RFC 1939 §7), whatever
  the secrets are;
* any base64 word a client sends that decodes to something holding a
  secret: SASL PLAIN blobs (RFC 4616) in an initial response (RFC 4959)
  or a continuation line (RFC 3501 §6.2.2), POP3 ``AUTH`` (RFC 5034).

Memory is bounded: each transcript keeps at most ``MAX_KEPT`` octets; what
comes after is counted and reported as ``[... N bytes not kept]``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from imapd.testing.stream import ClientStream, Line, LiteralData, ServerStream

# Octets kept per connection (both directions together).
MAX_KEPT = 1024 * 1024
REDACTED = b"***"
CLIENT, SERVER = "C", "S"

_BASE64_WORD = re.compile(rb"[A-Za-z0-9+/]{4,}={0,2}")
# An IMAP astring at the start of the text: a quoted string (with its
# escapes, RFC 3501 §4.3), a literal announcement, or an atom.
_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"?')
_LITERAL_END = re.compile(rb"~?\{\d+\+?\}\Z")


@dataclass
class Transcript:
    """The octets of one connection: ``entries`` are ``(direction, seconds,
    data)`` with direction ``"C"`` (client to server) or ``"S"``, seconds
    since the connection opened (monotonic), in the order the wiretap saw
    them. ``connection`` counts a server's connections from 1, in accept
    order; ``not_kept``: octets past the ``MAX_KEPT`` bound; ``closed_at``:
    when the connection ended (None: still open); ``notes``: what the
    wiretap did (faults applied, compression started), with their times."""

    protocol: str
    connection: int
    peer: str
    entries: list[tuple[str, float, bytes]] = field(default_factory=list)
    not_kept: int = 0
    kept: int = 0
    closed_at: float | None = None
    notes: list[tuple[float, str]] = field(default_factory=list)

    def record(self, direction: str, seconds: float, data: bytes) -> None:
        """Keep ``data`` unless the bound is reached (then only count it)."""
        if not data:
            return
        room = MAX_KEPT - self.kept
        if room <= 0:
            self.not_kept += len(data)
            return
        if len(data) > room:
            self.not_kept += len(data) - room
            data = data[:room]
        self.entries.append((direction, seconds, data))
        self.kept += len(data)

    def note(self, seconds: float, text: str) -> None:
        """A remark of the wiretap's own (a fault applied, compression
        started), shown as a ``--`` line among the octets of that time."""
        self.notes.append((seconds, text))

    def text(self, secrets: Iterable[str] = ()) -> str:
        """The conversation as ``C:``/``S:`` lines, secrets redacted (see
        the module doc)."""
        wanted = [s.encode("utf-8") for s in secrets if s]
        renderer = _Renderer(self.protocol, wanted)
        out: list[str] = []
        notes = list(self.notes)
        for direction, seconds, data in self.entries:
            while notes and notes[0][0] <= seconds:
                out.append("-- " + notes.pop(0)[1])
            out.extend(renderer.feed(direction, data))
        out.extend("-- " + text for _, text in notes)
        out.extend(renderer.finish())
        if self.not_kept:
            out.append(f"[... {self.not_kept} bytes not kept]")
        return "\n".join(out)


def format_transcripts(transcripts: Sequence[Transcript], secrets: Iterable[str] = ()) -> str:
    """Every transcript, one after the other, each under a heading naming
    its protocol, connection number and peer."""
    wanted = list(secrets)
    parts = []
    for transcript in transcripts:
        heading = f"=== {transcript.protocol} connection {transcript.connection} ({transcript.peer})"
        parts.append(heading + "\n" + transcript.text(wanted))
    return "\n\n".join(parts)


def redact(data: bytes, secrets: Sequence[bytes]) -> bytes:
    """``data`` with every secret, and every base64 word that decodes to
    something holding a secret, replaced by ``***``."""
    if not secrets:
        return data

    def word(match: re.Match[bytes]) -> bytes:
        decoded = _b64(match.group(0))
        if decoded is not None and any(s in decoded for s in secrets):
            return REDACTED
        return match.group(0)

    data = _BASE64_WORD.sub(word, data)
    for secret in sorted(secrets, key=len, reverse=True):
        data = data.replace(secret, REDACTED)
    return data


def _b64(word: bytes) -> bytes | None:
    padded = word + b"=" * (-len(word) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


class _Renderer:
    """Turns both directions into display lines, with structural
    redaction of passwords (LOGIN, PASS) which needs the command's shape."""

    def __init__(self, protocol: str, secrets: list[bytes]) -> None:
        self.imap = protocol == "imap"
        self.secrets = secrets
        self.client = ClientStream()
        self.server = ServerStream()
        # IMAP LOGIN: which astring argument comes next (0 user, 1 password)
        # while a LOGIN command's lines and literals go by; None otherwise.
        self.login_arg: int | None = None
        self.hide_literal = False
        self.partial = {CLIENT: b"", SERVER: b""}
        self.literal = {CLIENT: b"", SERVER: b""}

    def feed(self, direction: str, data: bytes) -> list[str]:
        if not self.imap:
            return self._plain_lines(direction, data)
        stream = self.client if direction == CLIENT else self.server
        lines: list[str] = []
        for event in stream.feed(data):
            if isinstance(event, Line):
                text = self._client_line(event) if direction == CLIENT else event.text
                suffix = " [line truncated]" if event.truncated else ""
                lines.append(self._show(direction, text) + suffix)
            else:
                lines.extend(self._literal(direction, event))
        return lines

    def finish(self) -> list[str]:
        """Unfinished lines (the connection ended in the middle)."""
        out = []
        for direction, literal in self.literal.items():
            if literal:
                out.append(f"{direction}: ***" if direction == CLIENT and self.hide_literal
                           else self._show(direction, literal))
        for direction, rest in self.partial.items():
            if rest:
                out.append(self._show(direction, self._pop3_line(rest) if direction == CLIENT else rest))
        return out

    def _show(self, direction: str, text: bytes) -> str:
        shown = redact(text, self.secrets).decode("utf-8", "backslashreplace")
        return f"{direction}: {shown}"

    def _literal(self, direction: str, event: LiteralData) -> list[str]:
        """A literal is shown once complete (its pieces joined: a secret
        cut between two TCP segments is still found); the transcript's
        bound bounds it."""
        self.literal[direction] += event.data
        if not event.last:
            return []
        data, self.literal[direction] = self.literal[direction], b""
        if direction == CLIENT and self.hide_literal:
            self.hide_literal = False
            return [f"{direction}: ***"]
        pieces = data.split(b"\n")
        if pieces[-1] == b"":
            pieces.pop()  # what follows the last line end; a blank line inside stays
        return [self._show(direction, piece.rstrip(b"\r")) for piece in pieces]

    def _client_line(self, line: Line) -> bytes:
        if line.first:
            self.login_arg = 0 if line.verb == "LOGIN" else None
            if self.login_arg is None:
                return line.text
            head, _, rest = line.text.partition(b" ")
            _, _, args = rest.partition(b" ")
            return head + b" " + rest.split(b" ", 1)[0] + b" " + self._login_args(args)
        if self.login_arg is None:
            return line.text
        return self._login_args(line.text)

    def _login_args(self, text: bytes) -> bytes:
        """Redact the LOGIN password in ``text``: the arguments that follow
        the command name, or what follows a literal (RFC 3501 §6.2.3)."""
        out = bytearray()
        position = 0
        while self.login_arg is not None and self.login_arg < 2:
            while position < len(text) and text[position:position + 1] == b" ":
                out += b" "
                position += 1
            if position >= len(text):
                break
            rest = text[position:]
            literal = _LITERAL_END.search(rest)
            if literal is not None and literal.start() == 0:
                self.hide_literal = self.login_arg == 1
                self.login_arg += 1
                out += rest
                return bytes(out)
            quoted = _QUOTED.match(rest)
            end = quoted.end() if quoted and rest.startswith(b'"') else _atom_end(rest)
            out += REDACTED if self.login_arg == 1 else rest[:end]
            self.login_arg += 1
            position += end
        out += text[position:]
        return bytes(out)

    def _plain_lines(self, direction: str, data: bytes) -> list[str]:
        """POP3 and LMTP: lines, nothing else (no literals)."""
        data = self.partial[direction] + data
        *whole, rest = data.split(b"\n")
        if len(rest) > 4096:  # an over-long line: shown in pieces
            whole.append(rest)
            rest = b""
        self.partial[direction] = rest
        out = []
        for raw in whole:
            text = raw.rstrip(b"\r")
            out.append(self._show(direction, self._pop3_line(text) if direction == CLIENT else text))
        return out

    def _pop3_line(self, text: bytes) -> bytes:
        if text[:5].upper() == b"PASS ":
            return text[:5] + REDACTED
        return text


def _atom_end(text: bytes) -> int:
    space = text.find(b" ")
    return len(text) if space < 0 else space

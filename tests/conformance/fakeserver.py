"""A tiny scripted IMAP server for testing the runner itself.

It is not an IMAP implementation: each command is answered from a table of
rules (regular expression on the command text → canned response lines), with
default rules that answer the runner's setup commands (LOGIN, CAPABILITY,
LIST/LSUB, CREATE, APPEND, SELECT, LOGOUT). Tests give the rules for the
commands of their script, including deliberately wrong answers.

Response lines are written as given plus CRLF; ``{tag}`` is replaced by the
command's tag. ``DISCONNECT`` closes the connection. Lines after ``DEFER`` are
held back and sent after the answer to the next command, which only works if
the client pipelines. A rule with no lines never answers (for timeout tests).
"""

from __future__ import annotations

import io
import re
import socket
import threading
from dataclasses import dataclass, field

DISCONNECT = b"DISCONNECT"
DEFER = b"DEFER"  # the lines after it are sent only after the next command's answer
DEFAULT_CAPABILITIES = b"IMAP4rev1 LITERAL+ IDLE"
_LITERAL_RE = re.compile(rb"~?\{(\d+)(\+?)\}\r?\n$")


@dataclass
class Rule:
    """Answer commands whose text (after the tag) fully matches ``pattern`` (case-insensitive)."""

    pattern: bytes
    responses: list[bytes]
    connection: int | None = None  # only on this 1-based connection
    times: int | None = None  # how often it may fire; None = always
    also: dict[int, list[bytes]] = field(default_factory=dict)  # unsolicited lines for other connections

    def matches(self, text: bytes, connection: int) -> bool:
        if self.connection is not None and self.connection != connection:
            return False
        if self.times is not None and self.times <= 0:
            return False
        return re.fullmatch(self.pattern, text, re.IGNORECASE | re.DOTALL) is not None


@dataclass
class FakeImapServer:
    """Serve scripted answers on 127.0.0.1:<ephemeral port> from a background thread."""

    rules: list[Rule] = field(default_factory=list)
    capabilities: bytes = DEFAULT_CAPABILITIES
    greeting: bytes = b"* OK fake IMAP server ready"
    login_capability_code: bool = True
    commands: list[tuple[int, bytes]] = field(default_factory=list)  # (connection, text) received
    appended: list[bytes] = field(default_factory=list)  # commands of APPENDs, with literals

    def __post_init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: dict[int, socket.socket] = {}
        self._stopping = False
        self._accepted = 0

    def __enter__(self) -> FakeImapServer:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self._listener.close()
        for sock in list(self._sockets.values()):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._accepted += 1
                index = self._accepted
                self._sockets[index] = sock
            thread = threading.Thread(target=self._serve, args=(sock, index), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket, index: int) -> None:
        reader = sock.makefile("rb")
        try:
            sock.sendall(self.greeting + b"\r\n")
            deferred: list[bytes] = []
            while True:
                command = self._read_command(reader, sock)
                if command is None:
                    return
                tag, _, text = command.partition(b" ")
                with self._lock:
                    self.commands.append((index, text))
                responses, also = self._responses_for(index, text)
                self._notify_others(also)
                lines = [line.replace(b"{tag}", tag) for line in responses]
                if DEFER in lines:
                    at = lines.index(DEFER)
                    lines, held = lines[:at], lines[at + 1 :]
                else:
                    held = []
                if not self._send_lines(sock, lines + deferred):
                    return
                deferred = held
        except OSError:
            return
        finally:
            reader.close()
            sock.close()

    def _read_command(self, reader: io.BufferedReader, sock: socket.socket) -> bytes | None:
        """One command with its literals inline (CRLF before each literal kept, final CRLF dropped)."""
        data = bytearray()
        while True:
            line = reader.readline()
            if not line:
                return None
            data += line
            match = _LITERAL_RE.search(line)
            if match is None:
                return bytes(data[:-2] if data.endswith(b"\r\n") else data.rstrip(b"\n"))
            if not match.group(2):
                sock.sendall(b"+ go ahead\r\n")
            data += reader.read(int(match.group(1)))

    def _send_lines(self, sock: socket.socket, lines: list[bytes]) -> bool:
        """Send response lines; False once the connection was closed."""
        data = bytearray()
        for line in lines:
            if line == DISCONNECT:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_RDWR)
                return False
            data += line + b"\r\n"
        sock.sendall(data)
        return True

    def _responses_for(self, index: int, text: bytes) -> tuple[list[bytes], dict[int, list[bytes]]]:
        with self._lock:
            for rule in self.rules:
                if rule.matches(text, index):
                    if rule.times is not None:
                        rule.times -= 1
                    return list(rule.responses), rule.also
        return self._default_responses(text), {}

    def _notify_others(self, also: dict[int, list[bytes]]) -> None:
        """Push unsolicited lines to other connections (another session's changes)."""
        for index, lines in also.items():
            with self._lock:
                target = self._sockets.get(index)
            if target is not None:
                target.sendall(b"".join(line + b"\r\n" for line in lines))

    def _default_responses(self, text: bytes) -> list[bytes]:
        """Answers to the runner's setup commands, and OK to anything else."""
        word = text.split(b" ", 1)[0].upper()
        if word == b"LOGIN":
            code = b"[CAPABILITY " + self.capabilities + b"] " if self.login_capability_code else b""
            return [b"{tag} OK " + code + b"Logged in"]
        if word == b"CAPABILITY":
            return [b"* CAPABILITY " + self.capabilities, b"{tag} OK Capability completed"]
        if word == b"APPEND":
            with self._lock:
                self.appended.append(text)
            return [b"{tag} OK Append completed"]
        if word in (b"SELECT", b"EXAMINE"):
            count = len(self.appended)
            return [b"* %d EXISTS" % count, b"* 0 RECENT", b"{tag} OK [READ-WRITE] Select completed"]
        if word == b"LOGOUT":
            return [b"* BYE Logging out", b"{tag} OK Logout completed", DISCONNECT]
        return [b"{tag} OK " + word.title() + b" completed"]

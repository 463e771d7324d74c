"""One client connection: blocking socket, response framing, view tracking (README §6, §7.4).

Responses are framed by CRLF lines; a line ending in ``{N}`` (or ``~{N}``)
is followed by N literal bytes and continues after them. Each complete
response is tokenised with the lenient response tokenizer.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .tokens import Arg, ArgKind, printable, tokenize_response

_LITERAL_AT_END_RE = re.compile(rb"~?\{(\d+)\+?\}\r?$")
_COMMAND_LITERAL_RE = re.compile(rb"(~?)\{(\d+)(\+?)\}\r\n")
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class ConnectionClosed(Exception):
    """The server closed the connection."""


class ResponseTimeout(Exception):
    """No complete response arrived in time."""


class TlsError(Exception):
    """The TLS handshake failed, or STARTTLS was refused or followed by plaintext."""


class ViewError(Exception):
    """EXISTS went backwards or an EXPUNGE was out of range: imaptest disconnects (§7.4)."""


@dataclass
class Response:
    """One complete server response."""

    raw: bytes
    kind: str  # "untagged", "tagged" or "continuation"
    tag: bytes
    args: list[Arg]

    def display(self) -> str:
        text = self.raw[:-2] if self.raw.endswith(b"\r\n") else self.raw
        return printable(text)

    @property
    def status(self) -> bytes:
        """First argument upper-cased (OK/NO/BAD/BYE/…), or b''."""
        if self.args and self.args[0].kind is ArgKind.ATOM:
            return self.args[0].text.upper()
        return b""


def parse_response(raw: bytes) -> Response:
    """Classify and tokenise one complete response."""
    if raw.startswith(b"+"):
        return Response(raw, "continuation", b"+", tokenize_response(raw[2:]))
    tag, _, rest = raw.partition(b" ")
    if tag == b"*":
        return Response(raw, "untagged", b"*", tokenize_response(rest))
    return Response(raw, "tagged", tag, tokenize_response(rest))


@dataclass
class LiteralSegment:
    """Command text up to and including a literal's ``{N}\\r\\n``, then the literal bytes."""

    head: bytes
    literal: bytes
    synchronizing: bool


def split_command_literals(text: bytes, *, literal_plus: bool) -> tuple[list[LiteralSegment], bytes]:
    """Find the literals of a command (as built from ``{{{`` blocks) by their sizes.

    With LITERAL+ every literal is rewritten to the non-synchronizing form
    ``{N+}`` as imaptest does; otherwise the runner waits for ``+`` (§7.1).
    """
    segments: list[LiteralSegment] = []
    pos = 0
    search_from = 0
    while True:
        match = _COMMAND_LITERAL_RE.search(text, search_from)
        if match is None:
            break
        size = int(match.group(2))
        plus = bool(match.group(3)) or literal_plus
        marker = b"%s{%d%s}\r\n" % (match.group(1), size, b"+" if plus else b"")
        head = text[pos : match.start()] + marker
        literal = text[match.end() : match.end() + size]
        segments.append(LiteralSegment(head, literal, synchronizing=not plus))
        pos = search_from = match.end() + size
    return segments, text[pos:]


@dataclass
class Connection:
    """A client connection with imaptest's per-connection view state."""

    index: int  # 1-based
    host: str
    port: int
    timeout: float
    sock: socket.socket | None = None
    buffer: bytearray = field(default_factory=bytearray)
    closed: bool = False
    tag_counter: int = 0
    count: int = 0  # messages believed in the selected mailbox
    mailbox: bytes = b""  # last SELECTed/EXAMINEd mailbox (for bare "append")
    logging_out: bool = False
    seen_bye: bool = False
    # RFC 4978 COMPRESS=DEFLATE, once the server accepted it: raw deflate both ways
    compressor: zlib._Compress | None = None
    decompressor: zlib._Decompress | None = None

    # implicit TLS (IMAPS, RFC 8314 §3.3) from the first byte when set at connect
    tls_context: ssl.SSLContext | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        if self.tls_context is not None:
            self._wrap(self.tls_context)
        self.sock.setblocking(False)

    def start_tls(self, context: ssl.SSLContext) -> None:
        """After STARTTLS's tagged OK (RFC 3501 §6.2.1): the handshake, then IMAP again.

        Bytes already buffered after the OK came in plaintext where TLS must
        follow (a man in the middle's injection, RFC 3207 §4.2's lesson): refused.
        """
        if self.buffer:
            raise TlsError("the server sent plaintext after STARTTLS's OK")
        self._wrap(context)
        assert self.sock is not None
        self.sock.setblocking(False)

    def _wrap(self, context: ssl.SSLContext) -> None:
        assert self.sock is not None
        self.sock.settimeout(self.timeout)  # a blocking handshake, bounded
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self.close()
            raise TlsError(f"TLS handshake with {self.host}:{self.port} failed: {exc}") from None

    def next_tag(self) -> bytes:
        self.tag_counter += 1
        return b"%d.%d" % (self.index, self.tag_counter)

    def send(self, data: bytes) -> None:
        """Write everything, waiting with select; a reset counts as a disconnect."""
        if self.sock is None or self.closed:
            raise ConnectionClosed("connection already closed")
        if self.compressor is not None:
            data = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResponseTimeout("timed out sending to the server")
            _, writable, _ = select.select([], [self.sock], [], remaining)
            if not writable:
                continue
            try:
                sent = self.sock.send(view)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue  # TLS needs the other direction first: wait and retry the same bytes
            except (BrokenPipeError, ConnectionResetError) as exc:
                self.closed = True
                raise ConnectionClosed(f"connection lost while sending: {exc}") from None
            view = view[sent:]

    def send_command(
        self,
        tag: bytes,
        text: bytes,
        *,
        literal_plus: bool,
        on_response: Callable[[Response], None],
    ) -> bool:
        """Send ``tag SP text CRLF``, waiting for ``+`` before each synchronizing literal.

        Responses read while waiting go to ``on_response``. Returns False when
        the command's own tagged reply arrived instead of ``+`` (the server
        refused the literal), in which case the rest is not sent.
        """
        segments, tail = split_command_literals(text, literal_plus=literal_plus)
        # Coalesce writes: flush only when a synchronizing literal makes us wait.
        pending = bytearray(tag + b" ")
        for segment in segments:
            pending += segment.head
            if segment.synchronizing:
                self.send(bytes(pending))
                pending.clear()
                while True:
                    response = self.read_response()
                    if response.kind == "continuation":
                        break
                    on_response(response)
                    if response.kind == "tagged" and response.tag == tag:
                        return False
            pending += segment.literal
        pending += tail + b"\r\n"
        self.send(bytes(pending))
        return True

    def read_response(self, timeout: float | None = None) -> Response:
        """The next complete response; raises ResponseTimeout or ConnectionClosed."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            end = self._complete_response_end()
            if end is not None:
                raw = bytes(self.buffer[:end])
                del self.buffer[:end]
                return parse_response(raw)
            if self.closed:
                raise ConnectionClosed("server closed the connection")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResponseTimeout(f"no complete response within {limit:g} s")
            self._receive(remaining)

    def _receive(self, wait: float) -> None:
        assert self.sock is not None
        # decrypted TLS bytes already in the SSL object are invisible to select()
        buffered = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
        if not buffered:
            readable, _, _ = select.select([self.sock], [], [], wait)
            if not readable:
                return
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # a TLS record not complete yet
        except ssl.SSLZeroReturnError:
            chunk = b""  # the server closed TLS cleanly: an end of stream like any other
        except ssl.SSLError as exc:
            self.closed = True
            raise ConnectionClosed(f"TLS error: {exc}") from None
        if not chunk:
            self.closed = True
            return
        if self.decompressor is not None:
            chunk = self._inflate(chunk)
        self.buffer += chunk
        if len(self.buffer) > MAX_RESPONSE_BYTES:
            raise ViewError("response larger than 64 MiB")

    def _complete_response_end(self) -> int | None:
        """Offset just past the first complete response in the buffer, or None."""
        pos = 0
        while True:
            newline = self.buffer.find(b"\n", pos)
            if newline < 0:
                return None
            line = bytes(self.buffer[pos:newline])
            match = _LITERAL_AT_END_RE.search(line)
            if match is None:
                return newline + 1
            pos = newline + 1 + int(match.group(1))
            if pos > len(self.buffer):
                return None

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.closed = True

    # --- view tracking (README §7.4) -------------------------------------------------

    def track_untagged(self, response: Response) -> None:
        """EXISTS sets the count (never lower), EXPUNGE decrements it (never out of range)."""
        args = response.args
        if args and args[0].kind is ArgKind.ATOM and args[0].text.upper() == b"BYE":
            self.seen_bye = True
        if len(args) < 2 or args[0].kind is not ArgKind.ATOM or args[1].kind is not ArgKind.ATOM:
            return
        name = args[1].text.upper()
        if name not in (b"EXISTS", b"EXPUNGE"):
            return
        if not args[0].text.isdigit():
            raise ViewError(f"invalid message number in {response.display()}")
        number = int(args[0].text)
        if name == b"EXISTS":
            if number < self.count:
                raise ViewError(f"EXISTS went backwards: {number} < {self.count} known messages")
            self.count = number
        else:
            if number == 0 or number > self.count:
                raise ViewError(f"EXPUNGE {number} out of range: {self.count} known messages")
            self.count -= 1

    def track_sent(self, text: bytes) -> None:
        """SELECT/EXAMINE of a different mailbox switches the view and resets the count (§7.2)."""
        words = tokenize_response(text)
        if len(words) < 2 or words[0].kind is not ArgKind.ATOM:
            return
        if words[0].text.lower() in (b"select", b"examine") and words[1].is_text:
            if words[1].text != self.mailbox:
                self.mailbox = words[1].text
                self.count = 0

    def track_tagged(self, command_text: bytes, response: Response) -> None:
        """A successful CLOSE or UNSELECT empties the view (§7.4); COMPRESS starts deflate."""
        name = command_text.split(b" ", 1)[0].lower()
        if name in (b"close", b"unselect") and response.status == b"OK":
            self.count = 0
        if name == b"compress" and response.status == b"OK" and self.decompressor is None:
            self.start_deflate()

    def start_deflate(self) -> None:
        """RFC 4978 §3: everything after the tagged OK is raw deflate (no zlib header), both ways.

        An extension of the runner (imaptest's script mode does not compress);
        bytes that already arrived after the OK are compressed and are inflated now.
        """
        self.compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.decompressor = zlib.decompressobj(-15)
        pending = bytes(self.buffer)
        self.buffer.clear()
        self.buffer += self._inflate(pending)

    def _inflate(self, chunk: bytes) -> bytes:
        assert self.decompressor is not None
        try:
            # bounded like plain input: a deflate bomb stops at the response limit
            data = self.decompressor.decompress(chunk, MAX_RESPONSE_BYTES + 1)
        except zlib.error as exc:
            raise ViewError(f"server sent invalid deflate data: {exc}") from None
        if self.decompressor.unconsumed_tail:
            raise ViewError("compressed response larger than 64 MiB")
        return data

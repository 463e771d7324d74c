"""A line-oriented IMAP client on a raw socket, for byte-exact tests.

imaplib hides the wire (it parses, retries and cannot send every command,
e.g. MULTIAPPEND or LITERAL+), so end-to-end tests that check exact bytes
talk to the server through ``RawClient``. Test files subclass it for their
extra behaviour (logging in at construction, TLS, COMPRESS=DEFLATE, ...);
the hooks are ``_connect`` (how the socket is made), ``_received`` (how
received bytes are decoded) and ``_fill`` (one read into the buffer).
"""

from __future__ import annotations

import socket
from typing import TypeVar

from tests.support.server import RunningServer

ClientT = TypeVar("ClientT", bound="RawClient")


class RawClient:
    """Sends bytes as given; reads CRLF-terminated lines (IMAP framing,
    RFC 3501 §2.2) from a buffer so nothing received is ever lost."""

    recv_size = 65536

    def __init__(self, host: str, port: int, *, source: str | None = None, timeout: float = 10) -> None:
        self.sock: socket.socket = self._connect(host, port, source, timeout)
        self.buffer = b""

    @classmethod
    def for_server(cls: type[ClientT], server: RunningServer, *, source: str | None = None,
                   timeout: float = 10) -> ClientT:
        """A client connected to a server started by ``running_server``."""
        return cls(server.host, server.port, source=source, timeout=timeout)

    def _connect(self, host: str, port: int, source: str | None, timeout: float) -> socket.socket:
        address = (source, 0) if source else None
        return socket.create_connection((host, port), timeout=timeout, source_address=address)

    def _received(self, chunk: bytes) -> bytes:
        """The bytes a received chunk stands for (hook for decompression)."""
        return chunk

    def _fill(self) -> None:
        """Read once from the socket into the buffer; EOFError at EOF."""
        chunk = self.sock.recv(self.recv_size)
        if not chunk:
            raise EOFError(self.buffer)
        self.buffer += self._received(chunk)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next line, with its CRLF."""
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"

    def until_tagged(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the first one that starts with ``tag``."""
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return lines

    def close(self) -> None:
        self.sock.close()

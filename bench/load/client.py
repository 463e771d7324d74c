"""A minimal asyncio IMAP client for load generation (RFC 3501 §2.2, §5.5).

One command at a time per connection (clients are many, so concurrency
comes from connections). Every response is parsed (``bench.load.wire``):
a malformed one raises ``Malformed``. ``command`` returns the tagged reply
with the untagged responses received while it ran; the caller decides if
NO is acceptable, BAD never is (``CheckFailed`` in ``bench.load.checks``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.load.wire import Malformed, Response, literal_length, parse_response

READ_LIMIT = 16 * 1024 * 1024  # longest single line we accept from a server


class ConnectionLost(Exception):
    """The server closed the connection or said BYE unexpectedly."""


@dataclass(slots=True)
class Reply:
    status: bytes               # OK / NO / BAD
    code: bytes | None
    text: bytes
    untagged: list[Response] = field(default_factory=list)
    elapsed: float = 0.0

    def of(self, name: bytes) -> list[Response]:
        return [r for r in self.untagged if r.name == name]


class ImapClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.capabilities: frozenset[bytes] = frozenset()
        self._next_tag = 0
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 30.0) -> ImapClient:
        """Open a connection and read the greeting (must be ``* OK``)."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
            client = cls(reader, writer)
            greeting = await client.read_response()
        if greeting.kind != "untagged" or greeting.name != b"OK":
            client.abort()
            raise ConnectionLost(f"greeting is not * OK: {greeting.raw[:80]!r}")
        if greeting.code and greeting.code.upper().startswith(b"CAPABILITY "):
            client.capabilities = frozenset(greeting.code.upper().split()[1:])
        return client

    async def read_response(self) -> Response:
        """Read and parse one complete response (lines and literals)."""
        parts: list[bytes] = []
        try:
            while True:
                line = await self.reader.readuntil(b"\r\n")
                parts.append(line)
                size = literal_length(line)
                if size is None:
                    break
                parts.append(await self.reader.readexactly(size))
        except asyncio.IncompleteReadError as exc:
            self.closed = True
            raise ConnectionLost(f"connection closed by server (partial: {exc.partial[:60]!r})") from None
        except asyncio.LimitOverrunError:
            self.closed = True
            raise Malformed("response line longer than 16 MiB") from None
        return parse_response(b"".join(parts))

    def new_tag(self) -> bytes:
        self._next_tag += 1
        return b"a%d" % self._next_tag

    async def command(self, text: bytes, literal: bytes | None = None, timeout: float = 60.0) -> Reply:
        """Send ``TAG text`` (``text`` ends with a literal header ``{n}``
        placeholder written as ``{}`` when ``literal`` is given) and read
        until the tagged reply. Uses LITERAL+ when the server advertised it."""
        tag = self.new_tag()
        untagged: list[Response] = []
        start = time.perf_counter()
        async with asyncio.timeout(timeout):
            if literal is None:
                self.writer.write(tag + b" " + text + b"\r\n")
            elif b"LITERAL+" in self.capabilities:
                header = text.replace(b"{}", b"{%d+}" % len(literal))
                self.writer.write(b"".join((tag, b" ", header, b"\r\n", literal, b"\r\n")))
            else:
                header = text.replace(b"{}", b"{%d}" % len(literal))
                self.writer.write(tag + b" " + header + b"\r\n")
                await self._await_continuation(tag, untagged)
                self.writer.write(literal + b"\r\n")
            reply = await self._read_until_tagged(tag, untagged)
        reply.elapsed = time.perf_counter() - start
        return reply

    async def _await_continuation(self, tag: bytes, untagged: list[Response]) -> None:
        while True:
            response = await self.read_response()
            if response.kind == "continuation":
                return
            if response.kind == "tagged":
                raise _EarlyTagged(response)
            self._note(response, untagged)

    async def _read_until_tagged(self, tag: bytes, untagged: list[Response]) -> Reply:
        while True:
            response = await self.read_response()
            if response.kind == "tagged":
                if response.tag != tag:
                    raise Malformed(f"tagged reply for {response.tag!r} while waiting for {tag!r}")
                if response.code and response.code.upper().startswith(b"CAPABILITY "):
                    self.capabilities = frozenset(response.code.upper().split()[1:])
                return Reply(response.name, response.code, response.text, untagged)
            if response.kind == "continuation":
                raise Malformed("unexpected continuation request")
            self._note(response, untagged)

    def _note(self, response: Response, untagged: list[Response]) -> None:
        untagged.append(response)
        if response.name == b"CAPABILITY":
            self.capabilities = frozenset(v.upper() for v in response.values if isinstance(v, bytes))
        elif response.name == b"OK" and response.code and response.code.upper().startswith(b"CAPABILITY "):
            self.capabilities = frozenset(response.code.upper().split()[1:])

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def abort(self) -> None:
        self.closed = True
        self.writer.transport.abort()

    async def close(self) -> None:
        self.closed = True
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class _EarlyTagged(Exception):
    """The server answered the command before asking for its literal."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"server answered before the literal: {response.raw[:80]!r}")
        self.response = response


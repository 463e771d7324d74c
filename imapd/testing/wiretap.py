"""The wiretap: sits between each client and the test server's protocol.

``Wiretap.wrap(factory)`` returns a factory (a Twisted ``WrappingFactory``)
whose connections hand every octet to the wrapped protocol and every octet
it writes to the client, and on the way

* record both directions in a ``Transcript`` (``imapd.testing.transcript``),
* give them to the connection's strict checker (``imapd.testing.checks``),
  client data before the server sees it, server data before the client
  does, in the order the two streams really had,
* apply the ``FaultPlan``'s faults (``imapd.testing.faults``).

The wrapped protocol sees the wiretap as its transport: everything it does
with a transport (pipelining, ``registerProducer`` back-pressure, IDLE,
STARTTLS, COMPRESS) still works. ``pauseProducing``/``resumeProducing``
are kept apart from the wiretap's own pauses so neither undoes the other.

COMPRESS=DEFLATE (RFC 4978): once the server has answered ``OK`` to a
COMPRESS command, both directions are raw DEFLATE. The wiretap passes the
compressed octets on unchanged and records them *decompressed* (its own
inflaters, one per direction), so the transcript and the checks go on
reading IMAP; the transcript notes where compression began. Faults that
act on commands (``close_at``, ``respond``, ``inject_*``, ``delay`` of one
command) are not applied once a connection compresses; byte-level ones
(``close_after_bytes``, ``throttle``, ``delay`` of everything) still are.
STARTTLS (RFC 3501 §6.2.1): after the server's OK to STARTTLS the octets
the wiretap sees are TLS records; it records a note and stops decoding
(the test server does not offer STARTTLS; this only keeps it safe).
"""

from __future__ import annotations

import time
import zlib
from typing import Any, Iterator, cast

from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.python.failure import Failure
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from imapd.testing.faults import FaultPlan, StoreActions
from imapd.testing.stream import ClientStream, Line, ServerStream
from imapd.testing.transcript import CLIENT, SERVER, Transcript

# Octets of client input kept aside while a COMPRESS or STARTTLS answer is
# awaited (a conforming client sends nothing meanwhile).
_UNDECIDED_LIMIT = 64 * 1024
# Inflated octets produced per decompress call (bounds a "bomb").
_INFLATE_PIECE = 64 * 1024


def _pieces(data: bytes) -> Iterator[bytes]:
    """``data`` cut after every LF: each piece holds at most one line end."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


class _Decoder:
    """One direction as the record sees it: plain, then (after COMPRESS)
    inflated, or opaque (after STARTTLS)."""

    def __init__(self) -> None:
        self.inflater: Any = None
        self.opaque = False
        self.spent = 0  # inflated octets so far (the record is bounded anyway)

    def decode(self, data: bytes) -> bytes | None:
        if self.opaque:
            return None
        if self.inflater is None:
            return data
        out = bytearray()
        try:
            chunk = self.inflater.decompress(data, _INFLATE_PIECE)
            out += chunk
            while self.inflater.unconsumed_tail and len(out) < 4 * _INFLATE_PIECE:
                out += self.inflater.decompress(self.inflater.unconsumed_tail, _INFLATE_PIECE)
        except zlib.error:
            self.opaque = True
            return None
        return bytes(out)


class TapProtocol(ProtocolWrapper):
    """One tapped connection (see the module doc)."""

    factory: TapFactory

    def __init__(self, factory: TapFactory, wrapped: Any, number: int) -> None:
        super().__init__(cast(Any, factory), wrapped)
        self.number = number
        tap = factory.tap
        self.tap = tap
        self.transcript = Transcript(tap.protocol, number, "?")
        self.checker: Any = None
        self.opened = time.monotonic()
        self.client_in = _Decoder()
        self.server_out = _Decoder()
        self.server_lines = ServerStream()
        self.client_lines = ClientStream()
        # IMAP commands whose answer changes the stream's encoding:
        # tag -> "COMPRESS" | "STARTTLS" (RFC 4978 §3, RFC 3501 §6.2.1).
        self.switching: dict[str, str] = {}
        self.undecided: bytearray | None = None

    # --- life cycle ----------------------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        peer = transport.getPeer()
        host, port = getattr(peer, "host", "?"), getattr(peer, "port", "")
        self.transcript.peer = f"{host}:{port}" if port != "" else str(host)
        if self.tap.checks is not None:
            self.checker = self.tap.checks.connection(self.tap.protocol, self.number)
        cast(Any, super()).makeConnection(transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.transcript.closed_at = self.now()
        if self.wrappedProtocol is not None:
            cast(Any, super()).connectionLost(reason)

    def now(self) -> float:
        return time.monotonic() - self.opened

    # --- client -> server -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self._observe_client(data)
        wrapped: Any = self.wrappedProtocol
        if wrapped is not None:
            wrapped.dataReceived(data)

    def _observe_client(self, data: bytes) -> None:
        if self.undecided is not None:
            if len(self.undecided) + len(data) <= _UNDECIDED_LIMIT:
                self.undecided += data
                return
            self.client_in.opaque = True
            self.undecided = None
        plain = self.client_in.decode(data)
        if plain is None:
            return
        if self.tap.protocol == "imap" and self.client_in.inflater is None:
            offset = 0
            for piece in _pieces(plain):
                offset += len(piece)
                self._client_plain(piece)
                if self.undecided is not None:  # the rest waits for the answer
                    self._observe_client(plain[offset:])
                    return
        else:
            self._client_plain(plain)

    def _client_plain(self, data: bytes) -> None:
        self.transcript.record(CLIENT, self.now(), data)
        if self.checker is not None:
            self.checker.client_data(data)
        if self.tap.protocol != "imap" or self.client_in.inflater is not None:
            return
        for event in self.client_lines.feed(data):
            if isinstance(event, Line) and event.verb in ("COMPRESS", "STARTTLS"):
                self.switching[event.tag] = event.verb
                self.undecided = bytearray()

    # --- server -> client -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._observe_server(data)
        self._real().write(data)

    def _real(self) -> Any:
        """The real transport (the client's TCP connection)."""
        return self.transport

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def _observe_server(self, data: bytes) -> None:
        plain = self.server_out.decode(data)
        if plain is None:
            return
        if self.tap.protocol != "imap" or self.server_out.inflater is not None:
            self._server_plain(plain)
            return
        offset = 0
        for piece in _pieces(plain):
            offset += len(piece)
            self._server_plain(piece)
            if self._answered(piece) and offset < len(plain):
                self._observe_server(plain[offset:])  # the rest is compressed (or TLS)
                return

    def _server_plain(self, data: bytes) -> None:
        self.transcript.record(SERVER, self.now(), data)
        if self.checker is not None:
            self.checker.server_data(data)

    def _answered(self, piece: bytes) -> bool:
        """A tagged answer to a pending COMPRESS or STARTTLS in ``piece``?
        True when the stream's encoding changes after it."""
        for event in self.server_lines.feed(piece):
            if not isinstance(event, Line) or not event.first:
                continue
            kind = self.switching.pop(event.tag, None) if self.switching else None
            if kind is None:
                continue
            held, self.undecided = bytes(self.undecided or b""), None
            if event.text.split(b" ", 2)[1:2] != [b"OK"]:
                self._observe_client(held)
                return False
            self._switch(kind)
            self._observe_client(held)
            return True
        return False

    def _switch(self, kind: str) -> None:
        if kind == "COMPRESS":
            self.transcript.note(self.now(), "COMPRESS=DEFLATE active: octets shown inflated")
            self.client_in.inflater = zlib.decompressobj(-15)
            self.server_out.inflater = zlib.decompressobj(-15)
        else:
            self.transcript.note(self.now(), "TLS started: octets not shown")
            self.client_in.opaque = self.server_out.opaque = True


class TapFactory(WrappingFactory):
    """Wraps a server factory; its protocols are ``TapProtocol``s."""

    noisy = False

    def __init__(self, wrapped: ServerFactory, tap: Wiretap) -> None:
        cast(Any, super()).__init__(wrapped)
        self.tap = tap

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        tap = TapProtocol(self, wrapped, self.tap._next_number())
        self.tap._transcripts.append(tap.transcript)
        return tap


class Wiretap:
    """Records, checks and disturbs the connections of the factories it
    wraps (one ``Wiretap`` per protocol of a test server). ``clock``: the
    reactor (``callLater``) for delays and throttling. ``actions``: how
    ``inject_exists``/``inject_expunge`` change the store."""

    def __init__(self, protocol: str, faults: FaultPlan, checks: Any,
                 actions: StoreActions | None, clock: Any) -> None:
        self.protocol = protocol
        self.faults = faults
        self.checks = checks
        self.actions = actions
        self.clock = clock
        self._transcripts: list[Transcript] = []
        self._count = 0

    def wrap(self, factory: ServerFactory) -> ServerFactory:
        """A factory to listen with instead of ``factory``."""
        return cast(ServerFactory, TapFactory(factory, self))

    @property
    def transcripts(self) -> list[Transcript]:
        """Every connection's transcript so far, in accept order."""
        return list(self._transcripts)

    def _next_number(self) -> int:
        self._count += 1
        return self._count

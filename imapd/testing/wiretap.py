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
STARTTLS (RFC 3501 §6.2.1): Twisted puts TLS *below* the protocol the
listener made, so the wiretap goes on seeing (and recording, checking,
disturbing) the plain conversation; its ``startTLS`` waits until what is
queued for the client (the server's OK, perhaps delayed or throttled) has
left in plain text, then starts TLS. The test server does not offer
STARTTLS; this keeps a server that does working through the wiretap.
"""

from __future__ import annotations

import re
import time
import zlib
from typing import Any, cast

from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.python.failure import Failure
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from imapd.testing import faults as kinds
from imapd.testing.faults import Fault, FaultPlan, StoreActions
from imapd.testing.tap_input import ClientFaults, pieces
from imapd.testing.tap_output import ABORT, LOSE, Outbox
from imapd.testing.stream import ClientStream, Line, ServerStream
from imapd.testing.transcript import CLIENT, SERVER, Transcript

# Octets of client input kept aside while a COMPRESS answer is awaited (a conforming client sends nothing meanwhile).
_UNDECIDED_LIMIT = 64 * 1024
# Octets a direction may inflate to before the tap stops reading it.
_INFLATE_BUDGET = 256 * 1024 * 1024


_COMPRESS_WORD = re.compile(rb"COMPRESS", re.IGNORECASE)
_WORD_TAIL = len(b"COMPRESS") - 1


class _Decoder:
    """One direction as the record sees it: plain, then (after COMPRESS)
    inflated; opaque once the compressed stream turns out broken or has
    inflated to ``_INFLATE_BUDGET`` octets (a "decompression bomb" sent
    through the tap costs the tap bounded work; the server has its own
    defence, ``imapd.net.compress``)."""

    def __init__(self) -> None:
        self.inflater: Any = None
        self.opaque = False
        self.spent = 0  # octets inflated so far

    def decode(self, data: bytes) -> bytes | None:
        if self.opaque:
            return None
        if self.inflater is None:
            return data
        try:
            out: bytes = self.inflater.decompress(data, _INFLATE_BUDGET - self.spent)
        except zlib.error:
            self.opaque = True
            return None
        self.spent += len(out)
        if self.inflater.unconsumed_tail or self.spent >= _INFLATE_BUDGET:
            self.opaque = True
        return out


class TapProtocol(ProtocolWrapper):
    """One tapped connection (see the module doc): the wrapped protocol's
    transport, and the real transport's protocol."""

    factory: TapFactory

    def __init__(self, factory: TapFactory, wrapped: Any, number: int) -> None:
        super().__init__(cast(Any, factory), wrapped)
        self.number = number
        tap = factory.tap
        self.tap = tap
        self.clock = tap.clock
        self.transcript = Transcript(tap.protocol, number, "?")
        self.checker: Any = None
        self.opened = time.monotonic()
        self.faults = tap.faults.for_connection(tap.protocol, number)
        self.client = ClientFaults(self, self.faults)
        self.outbox: Outbox | None = None
        self.is_cut = False            # a fault closed it: nothing more passes
        self._reading_paused = {"server": False, "tap": False}
        # The record's view of both directions (RFC 4978: inflated).
        self.client_in = _Decoder()
        self.server_out = _Decoder()
        self.server_lines = ServerStream()
        self.client_lines = ClientStream()
        # COMPRESS commands not yet answered, by tag (RFC 4978 §3: the
        # client's octets after one are compressed if the answer is OK).
        self.switching: dict[str, str] = {}
        self.undecided: bytearray | None = None
        self._client_tail = b""
        # delay(): the latency of every response, and one command's window.
        self.delay_all = max((f.seconds for f in self.faults if f.kind == kinds.DELAY
                              and f.command is None), default=None)
        self.delay_until: float | None = None
        self.delay_tag: str | None = None
        self.close_tags: set[str] = set()

    # --- life cycle ----------------------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        peer = transport.getPeer()
        host, port = getattr(peer, "host", "?"), getattr(peer, "port", "")
        self.transcript.peer = f"{host}:{port}" if port != "" else str(host)
        if self.tap.checks is not None:
            self.checker = self.tap.checks.connection(self.tap.protocol, self.number)
        rate = min((f.count for f in self.faults if f.kind == kinds.THROTTLE), default=None)
        budget = min((f.count for f in self.faults if f.kind == kinds.CLOSE_AFTER_BYTES), default=None)
        self.outbox = Outbox(transport, self.clock, self._delivered, rate, budget)
        cast(Any, super()).makeConnection(transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.transcript.closed_at = self.now()
        if self.outbox is not None:
            self.outbox.stop()
        self.client.on_quiet = None
        if self.wrappedProtocol is not None:
            cast(Any, super()).connectionLost(reason)

    def now(self) -> float:
        return time.monotonic() - self.opened

    def note(self, text: str) -> None:
        self.transcript.note(self.now(), text)

    # --- client -> server -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.is_cut:
            return
        self._observe_client(data)
        self.client.received(data)

    def forward(self, data: bytes) -> None:
        """Client octets on to the server (called by ``ClientFaults``)."""
        wrapped: Any = self.wrappedProtocol
        if data and wrapped is not None and not self.is_cut:
            wrapped.dataReceived(data)

    def pauseProducing(self) -> None:
        """The wrapped protocol stops reading (its pipeline is full)."""
        self._pause_reading("server", True)

    def resumeProducing(self) -> None:
        self._pause_reading("server", False)

    def hold_reading(self, held: bool) -> None:
        """A fault keeps the client's octets back: read no more meanwhile."""
        self._pause_reading("tap", held)

    def _pause_reading(self, who: str, paused: bool) -> None:
        before = any(self._reading_paused.values())
        self._reading_paused[who] = paused
        after = any(self._reading_paused.values())
        if before != after and self.transport is not None:
            transport: Any = self.transport
            if after:
                transport.pauseProducing()
            else:
                transport.resumeProducing()

    def _decode(self, decoder: _Decoder, data: bytes, side: str) -> bytes | None:
        was = decoder.opaque
        plain = decoder.decode(data)
        if decoder.opaque and not was:
            self.note(f"the {side}'s compressed octets are no longer shown (broken or too many)")
        return plain

    # --- the record of the client's octets --------------------------------------------

    def _observe_client(self, data: bytes) -> None:
        """Record and check what the client sent, as the server will read
        it (inflated after COMPRESS); octets after a COMPRESS command wait
        for its answer, which says how to read them."""
        if self.undecided is not None:
            if len(self.undecided) + len(data) <= _UNDECIDED_LIMIT:
                self.undecided += data
                return
            self.client_in.opaque = True
            self.undecided = None
        plain = self._decode(self.client_in, data, "client")
        if plain is None:
            return
        # Cut at line ends only where a COMPRESS command may end (its word
        # here, or begun at the end of the previous chunk), to find where
        # its compressed octets would begin; else the chunk goes whole.
        suspect = _COMPRESS_WORD.search(self._client_tail + plain) is not None
        self._client_tail = plain[-_WORD_TAIL:]
        if self.tap.protocol != "imap" or self.client_in.inflater is not None or not suspect:
            self._client_plain(plain)
            return
        offset = 0
        for piece in pieces(plain):
            offset += len(piece)
            self._client_plain(piece)
            if self.undecided is not None:  # the rest waits for the answer
                self._observe_client(plain[offset:])
                return

    def _client_plain(self, data: bytes) -> None:
        self.transcript.record(CLIENT, self.now(), data)
        if self.checker is not None:
            self.checker.client_data(data)
        if self.tap.protocol != "imap" or self.client_in.inflater is not None:
            return
        for event in self.client_lines.feed(data):
            if isinstance(event, Line) and event.verb == "COMPRESS":
                self.switching[event.tag] = event.verb
                self.undecided = bytearray()

    # --- server -> client -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """What the server writes: followed (answers, delays, COMPRESS),
        then queued in the outbox, which sends it when it may."""
        if not data or self.outbox is None or self.is_cut:
            return
        plain = self._decode(self.server_out, data, "server")
        release = self._release_time()
        close = self._follow_server(plain) if plain is not None else False
        record = None if plain == data else (plain or b"")
        self.outbox.put(data, record, release)
        if close:
            self.note("fault close_at (after the answer): connection closed")
            self.is_cut = True
            self.outbox.put_close(LOSE)

    def _real(self) -> Any:
        """The real transport (the client's TCP connection)."""
        return self.transport

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """The server closes: after what is still queued has gone."""
        self.disconnecting = 1
        if self.outbox is not None:
            self.outbox.put_close(LOSE)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.outbox is not None:
            self.outbox.register(producer, streaming)

    def unregisterProducer(self) -> None:
        if self.outbox is not None:
            self.outbox.unregister()

    def _release_time(self) -> float:
        now: float = self.clock.seconds()
        release = now + self.delay_all if self.delay_all is not None else now
        if self.delay_until is not None:
            release = max(release, self.delay_until)
        return release

    def _follow_server(self, plain: bytes) -> bool:
        """Follow the server's lines: tagged answers (pipelined faults,
        one command's delay, close after an answer), COMPRESS
        answers, LMTP's 354. True when the connection is to close after
        this output."""
        close = False
        switch = None
        for event in self.server_lines.feed(plain):
            if not isinstance(event, Line) or not event.first:
                continue
            if self.tap.protocol == "lmtp":
                if event.text.startswith(b"354"):
                    self.client.data_accepted()
                continue
            tag = event.tag
            if tag in ("*", "+", ""):
                continue
            self.client.answered(tag)
            if tag == self.delay_tag:
                self.delay_tag = self.delay_until = None
            if tag in self.close_tags:
                self.close_tags.discard(tag)
                close = True
            kind = self.switching.pop(tag, None) if self.switching else None
            if kind is not None:
                switch = (kind, event.text.split(b" ", 2)[1:2] == [b"OK"])
        if switch is not None:
            self._switched(*switch)
        return close

    def _switched(self, kind: str, ok: bool) -> None:
        """The answer to COMPRESS: octets after it are read accordingly
        (RFC 4978 §3)."""
        held, self.undecided = bytes(self.undecided or b""), None
        if ok:
            self.note("COMPRESS=DEFLATE active: octets shown inflated")
            self.client_in.inflater = zlib.decompressobj(-15)
            self.server_out.inflater = zlib.decompressobj(-15)
        self._observe_client(held)

    def startTLS(self, context: Any, *args: Any) -> None:
        """STARTTLS (RFC 3501 §6.2.1): TLS starts once the octets queued
        before it (the OK) have left in plain text."""
        def start() -> None:
            self.note("STARTTLS: TLS started (octets shown decrypted)")
            self._real().startTLS(context, *args)

        if self.outbox is None:
            start()
        else:
            self.outbox.put_call(start)

    def _delivered(self, wire: bytes, plain: bytes) -> None:
        """Octets have left for the client: the record and checks get them."""
        if not plain:
            return
        self.transcript.record(SERVER, self.now(), plain)
        if self.checker is not None:
            self.checker.server_data(plain)

    # --- what faults do (called by ClientFaults) ----------------------------------

    def answer(self, data: bytes, bye: bool) -> None:
        """An answer of the wiretap's own, in line after the server's output."""
        if self.outbox is None:
            return
        self.outbox.put(data, None, self._release_time())
        if bye:
            self.is_cut = True
            self.outbox.put_close(LOSE)

    def cut(self, abort: bool) -> None:
        """Close the client's connection (reset when ``abort``) once what
        is queued for it has gone; nothing more passes either way."""
        self.is_cut = True
        if self.outbox is not None:
            self.outbox.put_close(ABORT if abort else LOSE)

    def delay_response(self, tag: str, seconds: float) -> None:
        self.note(f"fault delay: the answer to {tag or 'this command'} is held {seconds:g} s")
        self.delay_until = self.clock.seconds() + seconds
        self.delay_tag = tag or None

    def close_after_answer(self, tag: str) -> None:
        self.close_tags.add(tag)

    def command_forwarded(self) -> None:
        """POP3/LMTP: a new command ends the previous command's delay."""
        if self.tap.protocol != "imap":
            self.delay_until = None

    async def inject(self, faults: list[Fault]) -> None:
        """Change the store as another client would (inject_exists,
        inject_expunge) in the connection's selected mailbox."""
        session = getattr(self.wrappedProtocol, "session", None)
        selected = getattr(session, "selected", None)
        actions = self.tap.actions
        for fault in faults:
            if actions is None or session is None or session.user is None or selected is None:
                self.note(f"fault {fault.kind} {fault.command}: no mailbox selected, nothing done")
                continue
            user, mailbox = session.user, selected.name
            try:
                if fault.kind == kinds.INJECT_EXISTS:
                    uid = await actions.append_message(user, mailbox, fault.message or kinds.DEFAULT_MESSAGE)
                    self.note(f"fault inject_exists {fault.command}: UID {uid} appended to {mailbox}")
                else:
                    gone = await actions.expunge_message(user, mailbox, fault.uid)
                    self.note(f"fault inject_expunge {fault.command}: UID {gone} expunged from {mailbox}")
            except Exception as error:  # the test reads why in the transcript
                self.note(f"fault {fault.kind} {fault.command} failed: {error!r}")


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

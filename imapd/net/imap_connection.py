"""One IMAP connection: bytes in, framed and parsed commands dispatched one
at a time, responses out in order (RFC 3501 §2.2, §5.5).

The protocol owns no IMAP semantics. It feeds bytes to the wire framer,
queues complete frames (pipelining: each command is answered in order and
only one runs at a time), parses each frame just before running it, hands
it to the dispatcher, and writes the reply. It also owns what needs the
reactor: the autologout timer (RFC 3501 §5.4), the continuation exchange of
AUTHENTICATE, and closing. How much it does per reactor turn, and when it
stops reading, is bounded by ``server.pipeline`` (one connection must not
starve the others).

Large data both ways: literals over ``Limits.literal_spool_threshold`` are
spooled to files by the framer (``imapd.core.spool``; a frame's spool files are
closed when its command ends or the connection drops), and responses are
written by ``server.output.ResponseWriter``, which streams a large literal
as the client reads it; no new command starts while it is busy.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, cast
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import ISSLTransport, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from imapd.imap import capabilities
from imapd.accounts.penalty import LoginGuard
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import CommandContext, ConnectionClosed
from imapd.core.errors import ImapError
from imapd.net.compress import CompressionError, CompressWatch, DeflateTransport, Inflater
from imapd.net.output import ProducerConsumer, ResponseWriter
from imapd.net.peer import format_peer, is_local, peer_host, preauth_limits, set_no_delay
from imapd.net.pipeline import CommandQueue, QueuedItem, Slices, close_frames
from imapd.net import tls
from imapd.net.runtime import Timer
from imapd.imap.session.state import Session, State
from imapd.imap.wire.commands import Command, CommandSyntaxError
from imapd.imap.wire.encode import encode_response_data
from imapd.imap.wire.framer import (
    UNAVAILABLE, CommandFrame, FrameError, FrameEvent, Framer, NeedContinuation,
)
from imapd.imap.wire.parse import parse_command
from imapd.imap.wire.responses import (
    Continuation, Response, ResponseCode, Status, Tagged, Untagged,
)
from imapd.imap.wire.values import Atom

if TYPE_CHECKING:
    from imapd.net.imap_factory import ImapServerFactory

log = Logger(namespace="imapd.protocol")

# A complete STARTTLS command frame (RFC 3501 §6.2.1; tags never hold spaces).
_STARTTLS_FRAME = re.compile(rb"\A[^ ]+ STARTTLS\r?\n\Z", re.IGNORECASE)
# Framing errors answered NO (the command was fine; the server cannot take it).
_NO_CODES = frozenset({catalogue.CODE_TOOBIG, UNAVAILABLE})
# What a command sends while it runs without waiting is joined into writes
# of about this size: ``UID FETCH 1:* (UID FLAGS)`` on 100k messages is
# 100k short responses, and one transport write each costs more than
# encoding them.
WRITE_BATCH = 64 * 1024


class Transport(TypingProtocol):
    """The transport methods we use (``ITCPTransport`` and ``IProducer``),
    typed for mypy without the zope plugin."""

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def getPeer(self) -> object: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def startTLS(self, contextFactory: object) -> None: ...


class ImapServerProtocol(Protocol):
    """The server side of one IMAP connection."""

    def __init__(self, factory: ImapServerFactory) -> None:
        self.server = factory
        self.limits = factory.config.limits
        # Before login, literals are small (a LOGIN password needs little):
        # unauthenticated clients cannot make the server hold 64 MiB each.
        # After login, large ones are spooled to DATA/spool (imapd.core.spool).
        self.framer = Framer(
            preauth_limits(self.limits), spool_dir=factory.config.data_dir / "spool")
        self._output = ResponseWriter(
            self._output_transport, self._output_idle, self._output_failed)
        # Encoded responses not yet handed to ``_output`` (see ``_batched``).
        self._batch: list[bytes] | None = None
        self._batch_size = 0
        self._full_limits = False
        self.session = Session(peer="?")
        self.ctx: CommandContext | None = None
        self._queue = CommandQueue()
        self._running = False
        self._pumping = False
        self._closing = False
        self._lost = False
        self._waiter: Deferred[bytes] | None = None
        self._timer: Timer | None = None
        self._login_deadline: Timer | None = None
        self._tls_pending = False
        # Input after a queued STARTTLS is held, unanswered, until STARTTLS
        # is answered: dropped if TLS starts, processed if STARTTLS failed.
        self._held: tuple[CommandFrame, list[FrameEvent], bytearray] | None = None
        self._current: QueuedItem | None = None
        # COMPRESS=DEFLATE (RFC 4978, imapd.net.compress): input after a
        # COMPRESS command is held like after STARTTLS until it is answered.
        self._compress_watch = CompressWatch()
        self._compress_pending = False
        # Fairness: bounded slices of work, input framed as the queue has room.
        self._slices = Slices(factory.clock, self._drain)
        self._backlog = self._slices.backlog
        self._budget = self._slices.budget

    def _transport(self) -> Transport:
        assert self.transport is not None
        return cast(Transport, self.transport)

    # --- connection lifecycle ------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        address = self._transport().getPeer()
        self.session = Session(
            peer=format_peer(address),
            secure=ISSLTransport.providedBy(self.transport),
            local=is_local(address) and self.server.config.loopback_is_local,
            peer_host=peer_host(address),
        )
        self.ctx = self.server.make_context(
            self.session, self.send, self._read_continuation, connection=self)
        self.ctx.output_waiter = self._output.when_idle
        refusal = self.server.connection_opened(self)
        if refusal is not None:
            log.info("session {id} from {peer} refused: {why}", id=self.session.session_id,
                     peer=self.session.peer, why=refusal)
            self._say_bye(refusal)
            return
        self._login_deadline = self.server.clock.callLater(
            self.limits.max_preauth_duration, self._login_too_slow)
        log.debug("session {id} connected from {peer}", id=self.session.session_id,
                  peer=self.session.peer)
        caps = capabilities.advertised(self.session, self.server.features)
        code = ResponseCode(catalogue.CODE_CAPABILITY, tuple(Atom(c) for c in caps))
        self.send(Untagged(Status.OK, catalogue.GREETING, code))
        self._arm_timer()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = self._closing = True
        self._discard_queue()
        self._slices.stop()
        self.framer.close()  # a literal being uploaded: its spool file goes
        self._output.stopProducing()
        for timer in (self._timer, self._login_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.errback(ConnectionClosed())
        self.session.deselect()
        self.session.state = State.LOGOUT
        self.server.connection_closed(self)
        log.debug("session {id} closed", id=self.session.session_id)

    def close(self) -> None:
        """Stop taking commands and close once queued output is written."""
        self._flush_batch()
        self._closing = True
        if self.transport is not None:
            self._transport().loseConnection()

    def shutdown(self) -> None:
        """Server shutdown: say BYE (RFC 3501 §7.1.5) and close."""
        if not self._closing:
            self.send(Untagged(Status.BYE, catalogue.BYE_SHUTDOWN))
            self.close()

    # --- output ----------------------------------------------------------------

    def send(self, response: Response) -> None:
        """Encode and write one response, in order. Everything but streamed
        literals is encoded here (an encoding error raises to the sender);
        a streamed literal is written as the client reads it (``output``)."""
        if self._lost or self.transport is None:
            return
        data = encode_response_data(response)
        if self._batch is not None and isinstance(data, bytes):
            self._batch.append(data)
            self._batch_size += len(data)
            if self._batch_size >= WRITE_BATCH:
                self._flush_batch()
            return
        self._flush_batch()
        self._output.write(data)

    def _batched(self, start: Callable[[], object]) -> None:
        """Run ``start`` (which runs a command until it first waits, or to
        its end) with the responses it sends joined into few writes; they
        are all handed on, in order, before this returns, so nothing waits
        while the command does (a ``+`` prompt, IDLE's first answers)."""
        self._batch = []
        try:
            start()
        finally:
            self._flush_batch()
            self._batch = None

    def _flush_batch(self) -> None:
        """Hand the joined responses to the writer (before anything that
        must follow them on the wire: a stream, TLS, DEFLATE, closing)."""
        if self._batch:
            data = b"".join(self._batch)
            self._batch.clear()
            self._batch_size = 0
            if not self._lost:
                self._output.write(data)

    def _output_transport(self) -> ProducerConsumer | None:
        return None if self._lost else cast(ProducerConsumer, self.transport)

    def _output_idle(self) -> None:
        """Output that waited for the client is written: go on with the
        commands that queued up meanwhile."""
        if not self._closing:
            self._drain()

    def _output_failed(self, failure: Failure) -> None:
        """A streamed literal broke off half-way (e.g. a store read error):
        the client cannot resynchronise, so the connection is closed."""
        log.failure("session {id}: response stream failed", failure,
                    id=self.session.session_id)
        self.close()

    # --- input -----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self.session.authenticated:
            self._arm_timer()  # long uploads keep an authenticated session alive
        self._backlog.add(data)
        if self._slices.scheduled:  # this read waits for the next slice: no more
            self._slices.set_reading(self._transport(), paused=True)
        self._drain()

    def _receive(self, data: bytes) -> None:
        """Frame one piece of input (at most the queue's room in commands)."""
        if self._held is not None:
            self._hold_more(data)
            return
        events, after_compress = self._compress_watch.feed(
            self.framer, data, watching=self._may_compress())
        if not self._handle_events(events):
            return
        if after_compress is not None:
            self._hold_after_compress(events[-1], after_compress)

    def _handle_events(self, events: list[FrameEvent]) -> bool:
        """Act on framer events in order; False if the connection is closing.
        After a STARTTLS frame the rest is held (see ``_held``): not even a
        literal's ``+`` may be sent for what follows STARTTLS."""
        for index, event in enumerate(events):
            if isinstance(event, NeedContinuation):
                self.send(Continuation(catalogue.CONTINUE_LITERAL))
            elif isinstance(event, FrameError) and event.fatal:
                self._fatal_frame_error(event)
                return False
            else:
                self._arm_timer()
                starttls = (
                    isinstance(event, CommandFrame) and self._waiter is None
                    and _STARTTLS_FRAME.match(event.data) is not None
                )
                self._enqueue(event)
                if starttls:
                    assert isinstance(event, CommandFrame)
                    self._held = (event, list(events[index + 1:]), bytearray())
                    return True
        return True

    def _hold_more(self, data: bytes) -> None:
        """A client must wait for the STARTTLS answer before sending more
        (RFC 3501 §6.2.1); a little is held, a flood ends the connection."""
        assert self._held is not None
        held_bytes = self._held[2]
        held_bytes += data
        if len(held_bytes) > self.limits.max_line:
            self._say_bye(catalogue.BYE_FATAL_FRAME)

    def _release_held(self, owner: QueuedItem | None) -> None:
        """STARTTLS (``owner``) was answered without starting TLS: process
        what was held behind it, as if it had just arrived."""
        if self._held is None or owner is not self._held[0]:
            return
        _, events, held_bytes = self._held
        self._held = None
        if self._handle_events(events):  # then the held bytes, framed as the queue has room
            self._backlog.put_back(bytes(held_bytes))

    def _discard_queue(self) -> None:
        """Drop the queued commands (and what is held), closing their spool files."""
        self._queue.discard()
        if self._held is not None:
            close_frames((self._held[0], *self._held[1]))
            self._held = None

    def _enqueue(self, item: QueuedItem) -> None:
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            self._deliver_continuation(item, waiter)
        else:
            self._queue.append(item)

    def _fatal_frame_error(self, error: FrameError) -> None:
        self._write_frame_error(error)
        self.send(Untagged(Status.BYE, catalogue.BYE_FATAL_FRAME))
        self.close()

    def _write_frame_error(self, error: FrameError) -> bool:
        """Answer a framing error (tagged when the tag was readable); True
        when the bad-command budget is spent."""
        status = Status.NO if error.code in _NO_CODES else Status.BAD
        code = ResponseCode(error.code) if error.code else None
        reply: Tagged | Untagged
        if error.tag is None:
            reply = Untagged(status, error.reason, code)
        else:
            reply = Tagged(error.tag, status, error.reason, code)
        self.send(reply)
        return self.server.dispatcher.count_reply(self.session, status)

    # --- running commands, one at a time -----------------------------------------

    def _drain(self) -> None:
        """One slice (``imapd.net.pipeline``): start queued commands
        while none is running, and frame more input as the queue empties,
        until nothing can go on or the slice's budget is spent. Re-entrant
        calls (a command that completed synchronously) just return, and
        while a slice is scheduled the work waits for it."""
        if self._pumping or self._slices.scheduled or self._closing:
            return
        self._pumping = True
        self._budget.renew()
        try:
            while not self._closing:
                self._run_queued()
                if not self._feed_more():
                    break
        finally:
            self._pumping = False
        self._end_slice()

    def _run_queued(self) -> None:
        """Start queued commands, one at a time, while the budget lasts."""
        while (self._queue and not self._running and not self._closing
               and not self._output.busy and not self._budget.exhausted):
            self._budget.spend_command()
            item = self._queue.popleft()
            if isinstance(item, FrameError):
                if self._write_frame_error(item):
                    self._say_bye(catalogue.BYE_TOO_MANY_BAD)
                continue
            self._running = True
            self._current = item
            parsed = self._parse(item)
            coroutine = self._execute(parsed, item)
            self._batched(
                lambda: Deferred.fromCoroutine(coroutine).addErrback(self._crashed))

    def _feed_more(self) -> bool:
        """Frame the next piece of waiting input, if there is room; False
        when nothing was framed. Input behind STARTTLS or COMPRESS is held
        unframed (``_hold_more``), so the room does not apply to it."""
        if (self._closing or self._tls_pending or not self._backlog.pending
                or self._budget.exhausted):
            return False
        held = self._held is not None
        room = self.limits.max_line + 2 if held else self._queue.room(self.limits.max_pipelined)
        if room <= 0:
            return False
        try:
            piece = self._slices.take(room)
        except CompressionError as error:
            log.info("session {id} ({peer}): bad compressed input: {why}",
                     id=self.session.session_id, peer=self.session.peer, why=str(error))
            self._say_bye(catalogue.BYE_BAD_COMPRESSED_DATA)
            return False
        if piece:
            self._receive(piece)
        return bool(piece)

    def _end_slice(self) -> None:
        """Schedule the next slice if work is left that only the budget
        stopped; read from the client only while its input can be framed
        (TCP back-pressure: the backlog stays at one read)."""
        if self._closing:
            return
        room = self._queue.room(self.limits.max_pipelined)
        runnable = bool(self._queue) and not self._running and not self._output.busy
        framable = self._backlog.pending and not self._tls_pending and (
            self._held is not None or room > 0)
        full = self._backlog.pending or room <= 0
        self._slices.end(runnable or framable, full, cast(Transport, self.transport))

    def _parse(self, frame: CommandFrame) -> Command | CommandSyntaxError:
        """Parse one frame; a parser bug answers BAD instead of wedging the
        connection (the parser promises never to raise, this keeps it so)."""
        try:
            if frame.spooled:  # large literals are in spool files (imapd.core.spool)
                spooled = {part.offset: part.content for part in frame.spooled}
                return parse_command(frame.data, self.limits.max_nesting, spooled)
            return parse_command(frame.data, self.limits.max_nesting)
        except Exception:
            log.failure("session {id}: parser error", id=self.session.session_id)
            return CommandSyntaxError(None, "Unparseable command")

    async def _execute(self, parsed: Command | CommandSyntaxError, frame: CommandFrame) -> None:
        assert self.ctx is not None
        try:
            outcome = await self.server.dispatcher.dispatch(parsed, self.ctx)
        finally:
            frame.close()  # its spooled literals: the command is over
        self._running = False
        if outcome is None or self._closing:
            return  # the connection went away (or timed out) under the command
        self.send(outcome.reply)
        self._flush_batch()  # the reply goes out before TLS or DEFLATE start
        if self.session.authenticated and not self._full_limits:
            self._full_limits = True
            self.framer.set_limits(self.limits)
        finished, self._current = self._current, None
        if self._tls_pending:
            self._begin_tls()
        elif self._compress_pending:
            self._begin_compression(finished)
        else:
            self._release_held(finished)
        if self.session.state is State.LOGOUT:
            self.close()
        elif outcome.budget_exhausted:
            self._say_bye(catalogue.BYE_TOO_MANY_BAD)
        else:
            self._arm_timer()
            self._drain()

    def _crashed(self, failure: Failure) -> None:
        log.failure("session {id}: protocol error", failure, id=self.session.session_id)
        self._running = False
        self.close()

    def _say_bye(self, text: str) -> None:
        self.send(Untagged(Status.BYE, text))
        self.close()

    # --- AUTHENTICATE continuation exchange (RFC 3501 §6.2.2) ---------------------

    def _read_continuation(self, prompt: Continuation) -> Deferred[bytes]:
        """Send ``+ ...``; the next frame from the client is the answer, not
        a command. It may already be queued (the client was quick)."""
        if self._lost:
            return fail(ConnectionClosed())
        self.send(prompt)
        if self._queue:
            result: Deferred[bytes] = Deferred()
            self._deliver_continuation(self._queue.popleft(), result)
            return result
        self._waiter = Deferred()
        return self._waiter

    @staticmethod
    def _deliver_continuation(item: QueuedItem, waiter: Deferred[bytes]) -> None:
        if isinstance(item, FrameError):
            waiter.errback(ImapError.bad(item.reason))
        else:
            item.close()  # a continuation line is taken as a line only
            # The framer accepts a bare LF as a line end, like CRLF.
            waiter.callback(item.data.removesuffix(b"\n").removesuffix(b"\r"))

    # --- autologout (RFC 3501 §5.4) -------------------------------------------------

    def _arm_timer(self) -> None:
        """(Re)start the inactivity timer for the current state: short before
        authentication, at least 30 minutes after (Limits)."""
        if self._closing:
            return
        timeout = (
            self.limits.auth_timeout if self.session.authenticated
            else self.limits.preauth_timeout
        )
        if self._timer is not None and self._timer.active():
            self._timer.reset(timeout)
        else:
            self._timer = self.server.clock.callLater(timeout, self._timed_out)

    def _timed_out(self) -> None:
        log.info("session {id} ({peer}): autologout", id=self.session.session_id,
                 peer=self.session.peer)
        self._say_bye(catalogue.BYE_AUTOLOGOUT)

    def _login_too_slow(self) -> None:
        """A connection must log in within ``Limits.max_preauth_duration``
        however busy it keeps itself (a NOOP every 59 s would otherwise hold
        a slot forever without credentials)."""
        if not self.session.authenticated and not self._closing:
            log.info("session {id} ({peer}): not logged in in time",
                     id=self.session.session_id, peer=self.session.peer)
            self._say_bye(catalogue.BYE_LOGIN_TOO_SLOW)

    # --- ConnectionHooks: STARTTLS, penalties, per-user limit -----------------------

    def start_tls(self) -> None:
        """RFC 3501 §6.2.1, and the STARTTLS command-injection fix
        (CVE-2011-0411 class): whatever the client sent after STARTTLS
        before the handshake was sent in clear text, unauthenticated, and
        could have been injected by a man in the middle, so it is dropped,
        queued commands and unframed bytes alike. TLS starts right after the
        tagged OK is written."""
        self._discard_queue()
        self.framer.discard_buffer()
        self._backlog.clear()
        self._tls_pending = True
        self._slices.set_reading(self._transport(), paused=False)

    def _begin_tls(self) -> None:
        self._tls_pending = False
        assert self.server.tls is not None
        # Twisted writes the OK (already buffered) in clear text, then
        # every later byte in either direction is TLS.
        self._transport().startTLS(self.server.tls)
        self.session.secure = True
        log.debug("session {id}: TLS started", id=self.session.session_id)

    # --- COMPRESS=DEFLATE (RFC 4978; imapd.net.compress) -------------------------

    @property
    def compression_active(self) -> bool:
        return self._backlog.inflating or self._compress_pending

    def start_compression(self) -> None:
        """Compress both ways right after the tagged OK (RFC 4978 §3)."""
        self._compress_pending = True

    def _may_compress(self) -> bool:
        """Whether a COMPRESS command could still succeed here (also before
        login: LOGIN and COMPRESS may be pipelined)."""
        return not self.compression_active and (self.session.secure or self.session.local)

    def _hold_after_compress(self, frame: FrameEvent, rest: bytes) -> None:
        """Client bytes after COMPRESS are compressed if it succeeds (RFC 4978
        §3): hold them, unframed, until it is answered."""
        if self._held is None and any(item is frame for item in self._queue):
            assert isinstance(frame, CommandFrame)
            # With the rest of the read: the client may pipeline after COMPRESS.
            self._held = (frame, [], bytearray(rest + self._backlog.take_all()))
        elif self._held is not None:
            self._hold_more(rest)  # already held behind a STARTTLS: keep the order
        else:
            # The line went to a waiting handler (IDLE): not a command.
            self._backlog.put_back(rest)

    def _begin_compression(self, owner: QueuedItem | None) -> None:
        """The OK went out uncompressed; from here on both directions are
        raw DEFLATE. Bytes held behind COMPRESS are the first compressed input."""
        self._compress_pending = False
        self.transport = cast(ITransport, DeflateTransport(self.transport, self.server.clock))
        held = b""
        if self._held is not None and self._held[0] is owner:
            held = bytes(self._held[2])
            self._held = None
        # The held bytes, then whatever waits, are the first compressed input
        # (inflated a bounded piece at a time as the queue has room).
        self._backlog.start_inflating(Inflater(), held)
        log.debug("session {id}: DEFLATE started", id=self.session.session_id)

    def now(self) -> float:
        return self.server.clock.seconds()

    def login_guard(self) -> LoginGuard | None:
        return self.server.login_guard

    def user_session_count(self, user: str) -> int:
        return self.server.user_session_count(user, excluding=self)

    def channel_bindings(self) -> dict[str, bytes]:
        return tls.channel_bindings(self.transport)

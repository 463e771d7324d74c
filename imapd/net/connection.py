"""The connection machinery every line-based mail protocol shares (IMAP:
``imapd.net.imap_connection``; POP3: ``imapd.net.pop3_connection``).

``LineConnection`` is a Twisted ``Protocol`` that owns no protocol
semantics. It feeds input to a framer (the protocol's), queues complete
frames (pipelining: RFC 3501 §5.5, RFC 2449 §6.6; answered in order, one
running at a time), hands each to the subclass to run, and writes what it
sends. Around that it owns:

* fairness (``imapd.net.pipeline``): bounded slices of work per reactor
  turn, input framed only as the queue has room, reading paused meanwhile
  (TCP back-pressure); inside one long command too (``pace``);
* output (``imapd.net.output``): responses joined into few writes while a
  command runs; a large literal streamed as the client reads it; while the
  client leaves output unread no new command starts, no more input is
  read and a paced command waits;
* per-state inactivity timeouts (RFC 3501 §5.4: at least 30 minutes once
  logged in; RFC 1939 §3 for POP3) and a deadline for logging in at all;
* the STARTTLS hold (RFC 3501 §6.2.1, RFC 2595 §3.1): input after a
  STARTTLS frame is held until it is answered, and dropped if TLS starts
  (CVE-2011-0411 class); COMPRESS=DEFLATE (RFC 4978,
  ``imapd.net.compress``) holds input the same way;
* the continuation exchange (SASL, RFC 4422 §3);
* the session's accounting (``imapd.net.accounting``: bytes, close reason).

A subclass supplies the protocol: ``encode``, ``handle_events``,
``run_frame``, ``answer_frame_error``, ``say_bye`` (with a ``Goodbye``
reason), and ``authenticated`` for the timeouts.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Coroutine, Iterator, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from imapd.core.config import Limits
from imapd.imap.wire.framer import CommandFrame, FrameError, FrameEvent, Framer
from imapd.net import accounting as acct
from imapd.net.compress import CompressionError, CompressWatch, DeflateTransport, Inflater
from imapd.net.output import ProducerConsumer, ResponseWriter
from imapd.net.pipeline import CommandQueue, QueuedItem, Slices, close_frames
from imapd.net.runtime import Clock, Timer
from imapd.net.transport import Transport

log = Logger(namespace="imapd.protocol")

# What a command sends while it runs without waiting is joined into writes
# of about this size: ``UID FETCH 1:* (UID FLAGS)`` on 100k messages is
# 100k short responses, and one transport write each costs more than
# encoding them.
WRITE_BATCH = 64 * 1024


class Goodbye(enum.Enum):
    """Why the server ends a connection on its own; the protocol words it
    (IMAP: ``* BYE`` with a text, RFC 3501 §7.1.5)."""

    FLOOD = "flood"  # too much input where none may be sent, or unframeable input
    TOO_MANY_BAD = "too many bad"  # the bad-command budget is spent
    BAD_COMPRESSED = "bad compressed"  # the DEFLATE stream is broken (RFC 4978)
    AUTOLOGOUT = "autologout"  # idle past the state's timeout
    LOGIN_TOO_SLOW = "login too slow"  # not logged in within the deadline


class LineConnection(Protocol):
    """The protocol-neutral server side of one connection (see the module
    docstring). ``label`` names it in log lines."""

    # What a continuation reader waiting when the connection goes away gets.
    closed_error: type[Exception] = ConnectionError
    protocol_name = "imap"  # in the session summary (imapd.net.accounting)

    # The framer is IMAP's today (``imapd.imap.wire.framer``: lines and
    # literals, the events ``CommandFrame``/``FrameError``/``NeedContinuation``
    # that ``imapd.net.pipeline`` also queues); a POP3/LMTP framer yields the
    # same events (LMTP DATA is a dot-terminated "literal").
    def __init__(self, clock: Clock, limits: Limits, framer: Framer, tls: object = None) -> None:
        self.clock = clock
        self.limits = limits
        self.framer = framer
        self.tls_context = tls
        self.label = "connection"
        self.account = acct.SessionAccount(self.protocol_name)  # bytes, reason for the close
        self._output = ResponseWriter(
            self._output_transport, self._output_idle, self._output_failed)
        # Encoded responses not yet handed to ``_output`` (see ``_batched``).
        self._batch: list[bytes] | None = None
        self._batch_size = 0
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
        self._slices = Slices(clock, self._drain)
        self._backlog = self._slices.backlog
        self._budget = self._slices.budget

    # --- what the protocol supplies ------------------------------------------------

    @property
    def authenticated(self) -> bool:
        """Logged in: the long inactivity timeout applies, not the short one."""
        raise NotImplementedError

    def encode(self, response: Any) -> bytes | Iterator[bytes]:
        """One response as bytes, or as an iterator of chunks to stream."""
        raise NotImplementedError

    def handle_events(self, events: list[FrameEvent]) -> bool:
        """Act on framer events in order (``enqueue``, ``hold_after``...);
        False if the connection is closing."""
        raise NotImplementedError

    def run_frame(self, frame: CommandFrame) -> Coroutine[Any, Any, None]:
        """Run one queued command; it ends with ``command_finished``."""
        raise NotImplementedError

    def answer_frame_error(self, error: FrameError) -> bool:
        """Answer a queued framing error; True when the client has now
        sent too many bad commands."""
        raise NotImplementedError

    def say_bye(self, reason: Goodbye) -> None:
        """Tell the client why, then ``close()``."""
        raise NotImplementedError

    def continuation_error(self, error: FrameError) -> Exception:
        """What a continuation reader gets for an unframeable answer."""
        return ValueError(error.reason)

    def may_compress(self) -> bool:
        """Whether a COMPRESS command could still succeed here."""
        return False

    def tls_started(self) -> None:
        """The handshake is under way: the connection counts as secure."""

    def connection_ended(self) -> None:
        """The connection is gone and everything above is cleaned up."""

    def _transport(self) -> Transport:
        assert self.transport is not None
        return cast(Transport, self.transport)

    # --- lifecycle -----------------------------------------------------------------

    def start_timers(self) -> None:
        """At connection: the login deadline (``max_preauth_duration``,
        however busy the client keeps itself) and the inactivity timer."""
        self._login_deadline = self.clock.callLater(
            self.limits.max_preauth_duration, self._login_too_slow)
        self._arm_timer()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = self._closing = True
        self.account.note(acct.lost_reason(reason))  # unless the server closed it first
        self._discard_queue()
        self._slices.stop()
        self.framer.close()  # a literal being uploaded: its spool file goes
        self._output.stopProducing()
        for timer in (self._timer, self._login_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        # A cancelled timer still holds its function, a bound method of this
        # object: no cycle may keep a closed connection (its session, view
        # and buffers) alive until a full garbage collection (issue 13).
        self._timer = self._login_deadline = None
        self._current = None
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.errback(self.closed_error())
        self.connection_ended()

    def close(self) -> None:
        """Stop taking commands and close once queued output is written."""
        self._flush_batch()
        self._closing = True
        self.account.note(acct.CLOSED_BY_SERVER)
        if self.transport is not None:
            self._transport().loseConnection()

    # --- output --------------------------------------------------------------------

    def send(self, response: Any) -> None:
        """Encode and write one response, in order. Everything but streamed
        literals is encoded here (an encoding error raises to the sender);
        a streamed literal is written as the client reads it (``output``)."""
        if self._lost or self.transport is None:
            return
        data = self.encode(response)
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
        log.failure("{label}: response stream failed", failure, label=self.label)
        self.close()

    # --- input ---------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.account.bytes_in += len(data)
        if self._closing:
            return
        if self.authenticated:
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
            self.framer, data, watching=self.may_compress())
        if not self.handle_events(events):
            return
        if after_compress is not None:
            self._hold_after_compress(events[-1], after_compress)

    def hold_after(self, frame: CommandFrame, rest: list[FrameEvent]) -> None:
        """Hold ``rest`` and all later input behind ``frame`` (STARTTLS)
        until it is answered: not even a literal's ``+`` may be sent for
        what follows it."""
        self._held = (frame, list(rest), bytearray())

    def _hold_more(self, data: bytes) -> None:
        """A client must wait for the STARTTLS answer before sending more
        (RFC 3501 §6.2.1); a little is held, a flood ends the connection."""
        assert self._held is not None
        held_bytes = self._held[2]
        held_bytes += data
        if len(held_bytes) > self.limits.max_line:
            self.say_bye(Goodbye.FLOOD)

    def _release_held(self, owner: QueuedItem | None) -> None:
        """STARTTLS (``owner``) was answered without starting TLS: process
        what was held behind it, as if it had just arrived."""
        if self._held is None or owner is not self._held[0]:
            return
        _, events, held_bytes = self._held
        self._held = None
        if self.handle_events(events):  # then the held bytes, framed as the queue has room
            self._backlog.put_back(bytes(held_bytes))

    def _discard_queue(self) -> None:
        """Drop the queued commands (and what is held), closing their spool files."""
        self._queue.discard()
        if self._held is not None:
            close_frames((self._held[0], *self._held[1]))
            self._held = None

    def enqueue(self, item: QueuedItem) -> None:
        """A frame for a waiting continuation reader, else for the queue."""
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            self._deliver_continuation(item, waiter)
        else:
            self._queue.append(item)

    @property
    def reading_continuation(self) -> bool:
        """A command waits for the client's next line (not a command)."""
        return self._waiter is not None

    # --- running commands, one at a time ---------------------------------------------

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
                if self.answer_frame_error(item):
                    self.say_bye(Goodbye.TOO_MANY_BAD)
                continue
            self._running = True
            self._current = item
            coroutine = self.run_frame(item)
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
            log.info("{label}: bad compressed input: {why}", label=self.label, why=str(error))
            self.say_bye(Goodbye.BAD_COMPRESSED)
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
        # While the client leaves its output unread (the writer is busy) its
        # next commands stay in the kernel too: TCP back-pressure both ways.
        full = self._backlog.pending or room <= 0 or self._output.busy
        self._slices.end(runnable or framable, full, cast(Transport, self.transport))

    def command_finished(self, logout: bool, too_many_bad: bool) -> None:
        """The running command's reply is sent: start TLS or DEFLATE if it
        asked for them, else release what was held behind it; then close
        (``logout``), say BYE (``too_many_bad``) or go on with the queue."""
        self._running = False
        self._flush_batch()  # the reply goes out before TLS or DEFLATE start
        finished, self._current = self._current, None
        if self._tls_pending:
            self._begin_tls()
        elif self._compress_pending:
            self._begin_compression(finished)
        else:
            self._release_held(finished)
        if logout:
            self.account.note(acct.LOGOUT)
            self.close()
        elif too_many_bad:
            self.say_bye(Goodbye.TOO_MANY_BAD)
        else:
            self._arm_timer()
            self._drain()

    # --- pacing one long command (issue 13) -------------------------------------------

    def pace(self, units: int = 1) -> Deferred[None] | None:
        """The running command's yield point after ``units`` units of its
        work (a message of ``FETCH 1:*``; ``CommandContext.pace``): None to go
        on at once. Otherwise a Deferred to await first, which fires

        * once the client has read its output, while the writer is ``busy``
          (its unread responses are over the transport's bound: however
          small each response, they never pile up in memory), or
        * on a later reactor turn, once this connection's slice budget
          (``imapd.net.pipeline.TurnBudget``: about 5 ms, or
          ``TURN_COMMANDS`` units with a still clock) is spent, so every
          other connection is served in between;

        and fails with ``closed_error`` once the connection is gone or
        closing (BYE sent): the command stops instead of producing for nobody."""
        if self._closing:
            return fail(self.closed_error())
        self._budget.spend_command(units)
        if not self._budget.exhausted and not self._output.busy:
            return None
        self._flush_batch()  # what it sent so far goes out before it waits
        resumed: Deferred[None] = Deferred()
        waiter = self._output.when_idle()
        if waiter is None:
            self.clock.callLater(0, self._resume, resumed)
        else:
            waiter.addCallback(lambda _: self._resume(resumed))
        return resumed

    def _resume(self, resumed: Deferred[None]) -> None:
        """Go on with a paced command in a slice of its own, its responses
        joined into few writes as when it started (``_batched``)."""
        if self._closing:
            resumed.errback(self.closed_error())
            return
        self._budget.renew()
        if self._batch is not None:  # inside another slice's batch already
            resumed.callback(None)
        else:
            self._batched(lambda: resumed.callback(None))

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> Deferred[None]:
        """Run a coroutine of this connection outside the running command
        (IMAP IDLE's push after a doorbell, RFC 2177 §3): what it sends goes
        out in order with everything else. The result fires when it ends and
        never fails: an error is logged and the connection goes on."""
        def failed(failure: Failure) -> None:
            log.failure("{label}: background work failed", failure, label=self.label)

        return Deferred.fromCoroutine(coroutine).addErrback(failed)

    def _crashed(self, failure: Failure) -> None:
        log.failure("{label}: protocol error", failure, label=self.label)
        self.account.note(acct.INTERNAL_ERROR)
        self._running = False
        self.close()

    # --- the continuation exchange (SASL, RFC 3501 §6.2.2) ---------------------------

    def read_continuation(self, prompt: Any) -> Deferred[bytes]:
        """Send ``prompt``; the next frame from the client is the answer, not
        a command. It may already be queued (the client was quick)."""
        if self._lost:
            return fail(self.closed_error())
        self.send(prompt)
        if self._queue:
            result: Deferred[bytes] = Deferred()
            self._deliver_continuation(self._queue.popleft(), result)
            return result
        self._waiter = Deferred()
        return self._waiter

    def _deliver_continuation(self, item: QueuedItem, waiter: Deferred[bytes]) -> None:
        if isinstance(item, FrameError):
            waiter.errback(self.continuation_error(item))
        else:
            item.close()  # a continuation line is taken as a line only
            # The framer accepts a bare LF as a line end, like CRLF.
            waiter.callback(item.data.removesuffix(b"\n").removesuffix(b"\r"))

    # --- timeouts (RFC 3501 §5.4) -------------------------------------------------------

    def _arm_timer(self) -> None:
        """(Re)start the inactivity timer for the current state: short before
        authentication, at least 30 minutes after (Limits)."""
        if self._closing:
            return
        timeout = self.limits.auth_timeout if self.authenticated else self.limits.preauth_timeout
        if self._timer is not None and self._timer.active():
            self._timer.reset(timeout)
        else:
            self._timer = self.clock.callLater(timeout, self._timed_out)

    def _timed_out(self) -> None:
        log.info("{label}: autologout", label=self.label)
        self.say_bye(Goodbye.AUTOLOGOUT)

    def _login_too_slow(self) -> None:
        """A connection must log in within ``Limits.max_preauth_duration``
        however busy it keeps itself (a NOOP every 59 s would otherwise hold
        a slot forever without credentials)."""
        if not self.authenticated and not self._closing:
            log.info("{label}: not logged in in time", label=self.label)
            self.say_bye(Goodbye.LOGIN_TOO_SLOW)

    # --- STARTTLS (RFC 3501 §6.2.1, RFC 2595 §3.1) ------------------------------------

    def start_tls(self) -> None:
        """The STARTTLS command-injection fix (CVE-2011-0411 class):
        whatever the client sent after STARTTLS before the handshake was
        sent in clear text, unauthenticated, and could have been injected
        by a man in the middle, so it is dropped, queued commands and
        unframed bytes alike. TLS starts right after the reply is written."""
        self._discard_queue()
        self.framer.discard_buffer()
        self._backlog.clear()
        self._tls_pending = True
        self._slices.set_reading(self._transport(), paused=False)

    def _begin_tls(self) -> None:
        self._tls_pending = False
        assert self.tls_context is not None
        # Twisted writes the reply (already buffered) in clear text, then
        # every later byte in either direction is TLS.
        self._transport().startTLS(self.tls_context)
        self.tls_started()
        log.debug("{label}: TLS started", label=self.label)

    # --- COMPRESS=DEFLATE (RFC 4978; imapd.net.compress) -------------------------------

    @property
    def compression_active(self) -> bool:
        return self._backlog.inflating or self._compress_pending

    def start_compression(self) -> None:
        """Compress both ways right after the reply (RFC 4978 §3)."""
        self._compress_pending = True

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
        """The reply went out uncompressed; from here on both directions are
        raw DEFLATE. Bytes held behind COMPRESS are the first compressed input."""
        self._compress_pending = False
        self.transport = cast(ITransport, DeflateTransport(self.transport, self.clock))
        held = b""
        if self._held is not None and self._held[0] is owner:
            held = bytes(self._held[2])
            self._held = None
        # The held bytes, then whatever waits, are the first compressed input
        # (inflated a bounded piece at a time as the queue has room).
        self._backlog.start_inflating(Inflater(), held)
        log.debug("{label}: DEFLATE started", label=self.label)

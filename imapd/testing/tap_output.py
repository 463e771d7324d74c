"""The server-to-client half of a tapped connection (``imapd.testing.wiretap``).

What the server writes goes through an ``Outbox``: a FIFO of chunks, each
with the time it may leave (``delay``), dribbled at a rate (``throttle``),
cut after a number of octets (``close_after_bytes``), with close markers
put in line by other faults (``close_at``, ``respond(..., "BYE")``) so a
close never overtakes output queued before it. Nothing blocks: waits are
reactor timers (``clock.callLater``).

Back-pressure (Twisted ``IPushProducer``): when the server registers a
producer with the wiretap, the outbox registers its own producer with the
real transport and pauses the server's while the real transport is full
*or* its own queue is over ``QUEUE_LIMIT`` octets, so a throttled or
delayed connection holds little memory, as without the wiretap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

# Octets queued before the server's producer (when it has one) is paused.
QUEUE_LIMIT = 64 * 1024
# A throttled connection may send this much of a second's allowance at once.
_BURST_SECONDS = 0.1
_MIN_TICK = 0.01

LOSE, ABORT = "lose", "abort"
# An abort waits at most this many ticks for the send buffer to empty (the
# client may not read): then it resets anyway.
_ABORT_TRIES = 500


def _buffered(transport: Any) -> int:
    """Octets in a Twisted TCP transport's own send buffer (0 if unknown)."""
    try:
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)
    except (AttributeError, TypeError):
        return 0


@dataclass
class _Chunk:
    wire: bytes           # what goes to the client
    plain: bytes | None   # what the record and checks see (None: same as wire)
    release: float        # clock time before which it may not leave
    close: str = ""       # a close marker instead of data: LOSE or ABORT
    call: Callable[[], None] | None = None  # or something to do in turn


class _OutputProducer:
    """Registered with the real transport for the outbox (the wiretap
    itself cannot be: its pause/resume methods mean *reading*, for the
    wrapped protocol)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def pauseProducing(self) -> None:
        self.outbox.real_paused = True
        self.outbox.steer()

    def resumeProducing(self) -> None:
        self.outbox.real_paused = False
        self.outbox.pump()

    def stopProducing(self) -> None:
        producer = self.outbox.producer
        if producer is not None:
            producer.stopProducing()


class Outbox:
    """Queue and pace one connection's server output (see module doc).

    ``transport``: the real transport; ``deliver(wire, plain)``: told of
    every piece as it leaves (record and checks); ``clock``: the reactor."""

    def __init__(self, transport: Any, clock: Any, deliver: Callable[[bytes, bytes], None],
                 rate: int | None = None, budget: int | None = None) -> None:
        self.transport = transport
        self.clock = clock
        self.deliver = deliver
        self.rate = rate
        self.budget = budget       # octets the client may still get (close_after_bytes)
        self.queue: deque[_Chunk] = deque()
        self.queued = 0
        self.producer: Any = None  # the server's, when registered
        self.real_paused = False
        self._producer_paused = False
        self._timer: Any = None
        self._tokens = 0.0
        self._last_tick = clock.seconds()
        self.closed = False

    # --- input from the server side ------------------------------------------------

    def put(self, wire: bytes, plain: bytes | None, release: float) -> None:
        if self.closed or not wire:
            return
        self.queue.append(_Chunk(wire, plain, release))
        self.queued += len(wire)
        self.pump()

    def put_close(self, how: str) -> None:
        """Close (LOSE: graceful, ABORT: reset) once what is queued has gone."""
        if not self.closed:
            self.queue.append(_Chunk(b"", None, 0.0, how))
            self.pump()

    def put_call(self, action: Callable[[], None]) -> None:
        """Run ``action`` once what is queued has gone (STARTTLS)."""
        if not self.closed:
            self.queue.append(_Chunk(b"", None, 0.0, call=action))
            self.pump()

    # --- producers ---------------------------------------------------------------------

    def register(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self._producer_paused = False
        self.real_paused = False
        if not self.closed:
            self.transport.registerProducer(_OutputProducer(self), True)
        self.steer()

    def unregister(self) -> None:
        self.producer = None
        self.real_paused = False  # no resume will come for a producer gone
        if not self.closed:
            self.transport.unregisterProducer()
            self.pump()

    def steer(self) -> None:
        """Pause or resume the server's producer as the queue and the real
        transport require."""
        producer = self.producer
        if producer is None:
            return
        wanted = self.real_paused or self.queued > QUEUE_LIMIT
        if wanted != self._producer_paused:
            self._producer_paused = wanted
            if wanted:
                producer.pauseProducing()
            else:
                producer.resumeProducing()

    # --- output --------------------------------------------------------------------------

    def pump(self) -> None:
        """Send what may leave now; schedule a timer for the rest."""
        while self.queue and not self.closed and not self.real_paused:
            head = self.queue[0]
            if head.call is not None:
                self.queue.popleft()
                head.call()
                continue
            if head.close:
                self._close(head.close)
                return
            now = self.clock.seconds()
            if head.release > now:
                self._wake(head.release - now)
                break
            size = self._allowance(len(head.wire), now)
            if size == 0:
                break
            self._send(head, size)
        self.steer()

    def _allowance(self, wanted: int, now: float) -> int:
        if self.rate is None:
            return wanted
        burst = max(1.0, self.rate * _BURST_SECONDS)
        self._tokens = min(burst, self._tokens + (now - self._last_tick) * self.rate)
        self._last_tick = now
        size = min(wanted, int(self._tokens + 1e-6))  # float sums: 99.99999 is 100
        if size == 0:
            self._wake(max(_MIN_TICK, (1 - self._tokens) / self.rate))
        self._tokens -= size
        return size

    def _send(self, head: _Chunk, size: int) -> None:
        cut = self.budget is not None and size >= self.budget
        if cut:
            assert self.budget is not None
            size = self.budget
        piece = head.wire[:size]
        if size < len(head.wire):
            head.wire = head.wire[size:]
        else:
            self.queue.popleft()
        self.queued -= size
        if self.budget is not None:
            self.budget -= size
        if piece:
            # Compressed output: the inflated text goes to the record with
            # the chunk's first piece.
            plain = piece
            if head.plain is not None:
                plain, head.plain = head.plain, b""
            self.transport.write(piece)
            self.deliver(piece, plain)
        if cut:
            self._close(LOSE)

    def _wake(self, after: float) -> None:
        if self._timer is None or not self._timer.active():
            self._timer = self.clock.callLater(after, self._woken)

    def _woken(self) -> None:
        self._timer = None
        self.pump()

    def _close(self, how: str) -> None:
        self.stop()
        if how == ABORT:
            self._abort_when_written(_ABORT_TRIES)
        else:
            self.transport.loseConnection()

    def _abort_when_written(self, tries: int) -> None:
        """Reset the connection once what was written reached the socket:
        Twisted's ``abortConnection`` drops its own send buffer, and the
        client must get the answers sent before the fault (the kernel's
        copy is read by the client before the reset, RFC 793 §3.4)."""
        if _buffered(self.transport) and tries > 0:
            self.clock.callLater(_MIN_TICK, self._abort_when_written, tries - 1)
        else:
            self.transport.abortConnection()

    def stop(self) -> None:
        """No more output (closed by a fault, or the connection is gone)."""
        if self.producer is not None and not self.closed:
            self.transport.unregisterProducer()
        self.closed = True
        self.queue.clear()
        self.queued = 0
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

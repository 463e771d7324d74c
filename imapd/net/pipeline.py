"""Fair scheduling of one connection's input (issue 11: one connection must
not starve the others).

RFC 3501 §5.5 lets a client pipeline commands, and the server answers them
one at a time, in order. Twisted runs every connection on one thread, so
whatever one connection does between two returns to the reactor delays
every other connection's reads, writes and the acceptance of new clients.
A client can send many cheap commands in one read (64 KiB of ``a NOOP``
is 7000 commands), and under COMPRESS=DEFLATE (RFC 4978) 22 KiB can
inflate to two million of them. Three bounds keep each connection's share
of a reactor turn small (and ``server.output`` keeps the replies a client
does not read from piling up):

* ``TurnBudget``: a *slice* (one entry from the reactor: a read, a command
  finishing, the output draining, or the scheduled continuation) runs at
  most ``TURN_COMMANDS`` commands, inflates at most ``TURN_OCTETS``
  octets and lasts at most about ``TURN_SECONDS``; then the protocol schedules
  its continuation with ``callLater(0)`` and returns, so the reactor serves
  the other connections (and ``accept``) before this one goes on.
* ``InputBacklog``: bytes received but not framed yet. The framer is fed
  only up to the ``room``-th line end, where ``room`` is what the queue of
  parsed-but-unanswered commands can still take below
  ``Limits.max_pipelined``, so that queue never exceeds the limit; while
  anything is left here, reading from the socket is paused (TCP
  back-pressure), so the backlog is at most one read.
* Under COMPRESS the backlog keeps the *compressed* bytes and inflates them
  on demand, one bounded piece at a time (``compress.Inflater``), so a
  decompression bomb never expands faster than its commands are answered.
"""

from __future__ import annotations

import collections
import time
from typing import Callable, Iterable, Protocol, Union

from imapd.net.compress import INFLATE_PIECE, Inflater
from imapd.net.runtime import Clock, Timer
from imapd.imap.wire.framer import CommandFrame, FrameError

QueuedItem = Union[CommandFrame, FrameError]

# The per-slice budget. The time is what bounds a neighbour's wait (one
# slice per busy connection); the count keeps slices deterministic in tests
# with a still clock. 64 commands per slice cost 2-13 % of the throughput
# of a 10k NOOP burst (one reactor turn and one smaller write per slice),
# 256 about as much as noise; 256 NOOPs take 3-5 ms here, so the time
# bound still applies first to heavier commands (docs/benchmarks.md,
# "Fairness").
TURN_COMMANDS = 256
TURN_OCTETS = 256 * 1024
TURN_SECONDS = 0.005


def close_frames(items: Iterable[object]) -> None:
    """Release the spool files of frames that will not run."""
    for item in items:
        if isinstance(item, CommandFrame):
            item.close()


class CommandQueue(collections.deque[QueuedItem]):
    """Framed commands (and framing errors to answer) waiting to run, in
    order (RFC 3501 §5.5); never longer than ``Limits.max_pipelined``."""

    def holds_spool_files(self) -> bool:
        """Does a queued command hold spooled literals?"""
        return any(isinstance(item, CommandFrame) and item.spooled for item in self)

    def room(self, limit: int) -> int:
        """Commands the framer may still complete: never more than
        ``limit`` queued, and none while a queued command holds spool
        files (spool disk stays at about two commands)."""
        return 0 if self.holds_spool_files() else limit - len(self)

    def discard(self) -> None:
        """Drop everything, closing the spool files."""
        close_frames(self)
        self.clear()


class TurnBudget:
    """What one slice may still do (see the module docstring). ``timer``
    is a monotonic clock in seconds (tests pass their own)."""

    def __init__(
        self,
        commands: int = TURN_COMMANDS,
        octets: int = TURN_OCTETS,
        seconds: float = TURN_SECONDS,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._size = (commands, octets, seconds)
        self._timer = timer
        self.commands = commands
        self.octets = octets
        self._deadline = 0.0
        self.renew()

    def renew(self) -> None:
        """A new slice starts with the full budget."""
        self.commands, self.octets, seconds = self._size
        self._deadline = self._timer() + seconds

    @property
    def exhausted(self) -> bool:
        return self.commands <= 0 or self.octets <= 0 or self._timer() >= self._deadline

    def spend_command(self, count: int = 1) -> None:
        self.commands -= count

    def spend_octets(self, count: int) -> None:
        self.octets -= count


class InputBacklog:
    """Client bytes received and not yet handed to the framer (see the
    module docstring). Plain bytes wait in ``_plain``; after COMPRESS
    (``start_inflating``) received bytes go to an ``Inflater`` and are
    inflated into ``_plain`` only when it is empty."""

    def __init__(self) -> None:
        self._plain = bytearray()
        self._inflater: Inflater | None = None

    @property
    def inflating(self) -> bool:
        return self._inflater is not None

    @property
    def pending(self) -> bool:
        """Anything left to frame (or to inflate)?"""
        return bool(self._plain) or (self._inflater is not None and self._inflater.pending)

    @property
    def size(self) -> int:
        """Plain octets waiting."""
        return len(self._plain)

    def add(self, data: bytes) -> None:
        """Bytes just received (compressed ones once ``start_inflating``)."""
        if self._inflater is not None:
            self._inflater.feed(data)
        else:
            self._plain += data

    def put_back(self, data: bytes) -> None:
        """Plain bytes taken too early (held behind COMPRESS) go first again."""
        self._plain[:0] = data

    def start_inflating(self, inflater: Inflater, compressed: bytes) -> None:
        """RFC 4978 §3: from the byte after the COMPRESS command's CRLF the
        client's stream is compressed: ``compressed`` (held behind the
        command) and whatever is still waiting here are its first bytes."""
        waiting, self._plain = bytes(self._plain), bytearray()
        self._inflater = inflater
        inflater.feed(compressed + waiting)

    def take_all(self) -> bytes:
        """Everything plain that waits (to hold it behind STARTTLS/COMPRESS)."""
        data, self._plain = bytes(self._plain), bytearray()
        return data

    def clear(self) -> None:
        """Drop what waits (plaintext received before TLS started)."""
        self._plain.clear()

    def take(self, lines: int, octets: int) -> bytes:
        """The next bytes for the framer: at most ``octets`` of them and up
        to (including) the ``lines``-th line end, so feeding them completes
        at most ``lines`` commands. May inflate one piece (``CompressionError``)."""
        if not self._plain and self._inflater is not None:
            self._plain += self._inflater.read(max(1, min(octets, INFLATE_PIECE)))
        end = min(len(self._plain), max(octets, 1))
        position = 0
        for _ in range(max(lines, 1)):
            newline = self._plain.find(b"\n", position, end)
            if newline < 0:
                break
            position = newline + 1
        else:
            end = position
        piece = bytes(self._plain[:end])
        del self._plain[:end]
        return piece


class Pausable(Protocol):
    """The transport's ``IPushProducer`` side (typed without the zope plugin)."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


class Slices:
    """One connection's share of the reactor: the slice budget, the input
    waiting to be framed, the scheduled next slice, and whether reading
    from the client is paused. ``run`` starts a slice (the protocol's
    ``_drain``); the protocol decides what a slice does."""

    def __init__(self, clock: Clock, run: Callable[[], None]) -> None:
        self.backlog = InputBacklog()
        # On the server's clock: real time on the reactor, still in tests
        # (a test's transcript never depends on how fast the machine is).
        self.budget = TurnBudget(timer=clock.seconds)
        self._clock = clock
        self._run = run
        self._next: Timer | None = None
        self.reading_paused = False

    @property
    def scheduled(self) -> bool:
        """A next slice is scheduled: work waits for it."""
        return self._next is not None

    def take(self, room: int) -> bytes:
        """The next input for the framer, at most ``room`` commands of it.
        Plain input is at most one read (reading pauses while it waits);
        inflated input is what the octet budget bounds."""
        if not self.backlog.inflating:
            return self.backlog.take(room, self.backlog.size)
        piece = self.backlog.take(room, self.budget.octets)
        self.budget.spend_octets(len(piece))
        return piece

    def end(self, work_left: bool, full: bool, transport: Pausable | None) -> None:
        """After a slice: if only the budget stopped it, schedule the next
        one after the reactor has served the others; read from the client
        only while nothing waits (``full``: the backlog or queue is)."""
        if work_left and self.budget.exhausted and self._next is None:
            self._next = self._clock.callLater(0, self._run_next)
        if transport is not None and full != self.reading_paused:
            self.set_reading(transport, paused=full)

    def set_reading(self, transport: Pausable, paused: bool) -> None:
        if paused != self.reading_paused:
            self.reading_paused = paused
            if paused:
                transport.pauseProducing()
            else:
                transport.resumeProducing()

    def stop(self) -> None:
        """The connection is gone: drop the input, schedule nothing, and let
        go of the protocol (``run`` is its method: a cycle otherwise)."""
        self.backlog.clear()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        self._run = _nothing

    def _run_next(self) -> None:
        self._next = None
        self._run()


def _nothing() -> None:
    """What a stopped connection's slice does."""

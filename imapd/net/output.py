"""Writing responses to the transport, with back-pressure for large ones.

A FETCH of a 20 MB body is one response whose literal (RFC 3501 §4.3) is
produced in chunks by the encoder (``encode_response_chunks`` reads a
``LiteralStream`` from the store lazily). Writing all chunks at once would
put the whole body into the transport's send buffer, however slowly the
client reads. ``ResponseWriter`` instead:

* writes small responses at once, as before (no producer, no extra calls);
* once a response has run past ``STREAM_AFTER`` octets, registers itself on
  the transport as a streaming producer (Twisted ``IPushProducer``): the
  transport pauses it when its send buffer is over its limit and resumes
  it when the buffer has drained, so about one chunk of the literal is
  held at a time;
* queues responses sent meanwhile behind it, in order (RFC 3501 §5.5
  ordering is the protocol's), and unregisters when everything is written.

The protocol starts no new command while the writer is ``busy`` (so the
tagged reply of a FETCH goes out after its data and the next command's
output cannot get in between), and a handler that sends many large
responses waits for ``when_idle`` between them (``CommandContext.flush``,
and ``CommandContext.pace`` for many small ones: issue 13), so FETCH 1:*
BODY[] opens one message at a time, not all of them, and FETCH 1:* (FLAGS)
to a client that does not read stops once its buffer is full.
"""

from __future__ import annotations

import collections
from typing import Callable, Iterator, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

# A response longer than this is streamed under the transport's control.
STREAM_AFTER = 256 * 1024


class ProducerConsumer(Protocol):
    """The transport methods the writer uses (``IConsumer`` + write)."""

    def write(self, data: bytes) -> None: ...

    def registerProducer(self, producer: object, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...


@implementer(IPushProducer)
class ResponseWriter:
    """Writes encoded responses in order; see the module docstring.

    ``transport()`` gives the current transport (it changes under
    COMPRESS); ``on_idle`` is called when output that had to wait for the
    transport is all written; ``on_error`` when producing a response's
    chunks failed half-way (the client's stream is broken: close it).
    """

    def __init__(
        self,
        transport: Callable[[], ProducerConsumer | None],
        on_idle: Callable[[], None],
        on_error: Callable[[Failure], None],
    ) -> None:
        self._transport = transport
        self._on_idle = on_idle
        self._on_error = on_error
        self._pending: collections.deque[Iterator[bytes]] = collections.deque()
        self._head_written = 0     # octets written of the response at the head
        self._paused = False       # by the transport (its buffer is full)
        self._registered = False   # as the transport's producer
        self._stopped = False      # the connection is gone
        self._waiters: list[Deferred[None]] = []
        self._unread = 0           # octets written whole since the last unregister

    @property
    def busy(self) -> bool:
        """Responses are waiting to be written, or the transport's buffer
        is full (the client is not reading)."""
        return bool(self._pending) or (self._paused and self._registered)

    def write(self, data: bytes | Iterator[bytes]) -> None:
        """Write one response, whole or as chunks, now or (behind others)
        later."""
        if self._stopped:
            if not isinstance(data, bytes):
                _close(data)
            return
        if isinstance(data, bytes):
            if not self._pending:  # the common case: straight out
                self._write_now(data)
                return
            data = iter((data,))
        self._pending.append(data)
        if len(self._pending) == 1 and not self._paused:
            self._run()  # idle again at once: the caller goes on as usual

    def _write_now(self, data: bytes) -> None:
        """Write a whole response. Past ``STREAM_AFTER`` octets of them in a
        row (a pipelined flood from a client that does not read, issue 11)
        the writer registers as the transport's producer, so that a full
        send buffer pauses it (``busy``) and no new command starts until
        the client has read: replies never pile up in memory."""
        transport = self._transport()
        if transport is None:
            return
        self._unread += len(data)
        if self._unread > STREAM_AFTER and not self._registered:
            self._registered = True
            transport.registerProducer(self, True)
            if self._stopped:
                return
        transport.write(data)

    def when_idle(self) -> Deferred[None] | None:
        """None when nothing waits to be written; else a Deferred that
        fires once everything is written (or the connection is gone)."""
        if not self.busy:
            return None
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    # --- IPushProducer, called by the transport ------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._pending:
            if self._run():
                self._went_idle()
        elif self._registered:  # whole responses filled the buffer; it drained
            self._unregister(self._transport())
            self._went_idle()

    def stopProducing(self) -> None:
        """The connection is gone: drop what was not written, and the
        callbacks into the protocol (its methods: a reference cycle that
        would keep a closed connection alive until a full collection)."""
        self._stopped = True
        self._registered = False
        self._discard()
        self._transport = _no_transport
        self._on_idle = _nothing
        self._on_error = _ignore_failure

    # --- internals ---------------------------------------------------------------

    def _run(self) -> bool:
        """Write until the transport pauses us or all is written; True when
        all is written (the producer is then unregistered)."""
        transport = self._transport()
        while self._pending and not self._paused and not self._stopped:
            if transport is None:
                self._discard()
                return False
            try:
                chunk = next(self._pending[0])
            except StopIteration:
                self._pending.popleft()
                self._head_written = 0
                continue
            except Exception:
                self._failed(Failure())  # type: ignore[no-untyped-call]
                return False
            self._head_written += len(chunk)
            if self._head_written > STREAM_AFTER and not self._registered:
                self._registered = True
                transport.registerProducer(self, True)
                if self._stopped:
                    return False
            transport.write(chunk)
        if self._pending or self._stopped:
            return False
        self._unregister(transport)
        return True

    def _unregister(self, transport: ProducerConsumer | None) -> None:
        self._unread = 0
        if self._registered and transport is not None:
            self._registered = False
            transport.unregisterProducer()

    def _went_idle(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._on_idle()

    def _failed(self, failure: Failure) -> None:
        """A response's chunks raised half-way: nothing more can be sent."""
        transport = self._transport()
        self._stopped = True
        if self._registered and transport is not None:
            self._registered = False
            transport.unregisterProducer()
        self._discard()
        self._on_error(failure)

    def _discard(self) -> None:
        pending, self._pending = self._pending, collections.deque()
        for chunks in pending:
            _close(chunks)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)  # the handler goes on; its output is dropped


def _close(chunks: Iterator[bytes]) -> None:
    """Finish a chunk generator early (it releases its store handle)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def _no_transport() -> ProducerConsumer | None:
    return None


def _nothing() -> None:
    """What a stopped writer does when its output is written: nothing."""


def _ignore_failure(failure: Failure) -> None:
    """A stopped writer reports nothing."""

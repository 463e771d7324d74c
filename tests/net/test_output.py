"""ResponseWriter (imapd.net.output): small responses are written at
once; a large one is written only as fast as the transport drains (it is
registered as a streaming producer), responses sent meanwhile wait behind
it in order, and a lost connection or a failing stream releases
everything."""

from __future__ import annotations

from typing import Iterator

from twisted.python.failure import Failure

from imapd.net.output import STREAM_AFTER, ResponseWriter

CHUNK = 64 * 1024


class PausingTransport:
    """A transport whose send buffer holds ``limit`` octets: over that, a
    registered streaming producer is paused (as Twisted's FileDescriptor
    does); ``drain`` empties the buffer and resumes it."""

    def __init__(self, limit: int = 64 * 1024) -> None:
        self.limit = limit
        self.buffered: list[bytes] = []
        self.sent: list[bytes] = []
        self.producer: ResponseWriter | None = None
        self.paused = False
        self.registrations = 0
        self.peak = 0

    def write(self, data: bytes) -> None:
        self.buffered.append(data)
        size = sum(map(len, self.buffered))
        self.peak = max(self.peak, size)
        if self.producer is not None and size > self.limit and not self.paused:
            self.paused = True
            self.producer.pauseProducing()

    def registerProducer(self, producer: object, streaming: bool) -> None:
        assert streaming and self.producer is None
        assert isinstance(producer, ResponseWriter)
        self.producer = producer
        self.registrations += 1

    def unregisterProducer(self) -> None:
        assert self.producer is not None
        self.producer = None
        self.paused = False

    def drain(self) -> None:
        self.sent += self.buffered
        self.buffered = []
        if self.producer is not None and self.paused:
            self.paused = False
            self.producer.resumeProducing()

    def everything(self) -> bytes:
        return b"".join(self.sent + self.buffered)


class Stream:
    """A response of ``count`` chunks produced lazily, recording how many
    were produced and whether it was closed early."""

    def __init__(self, count: int, label: bytes = b"x", fail_at: int | None = None) -> None:
        self.count = count
        self.label = label
        self.fail_at = fail_at
        self.produced = 0
        self.finished = False

    def chunks(self) -> Iterator[bytes]:
        try:
            for index in range(self.count):
                if index == self.fail_at:
                    raise OSError("store read failed")
                self.produced += 1
                yield self.label * CHUNK
        finally:
            self.finished = True


class Harness:
    def __init__(self) -> None:
        self.transport = PausingTransport()
        self.idle_calls = 0
        self.errors: list[Failure] = []
        self.writer = ResponseWriter(lambda: self.transport, self.on_idle, self.errors.append)

    def on_idle(self) -> None:
        self.idle_calls += 1


def test_small_responses_are_written_at_once_without_a_producer() -> None:
    h = Harness()
    for index in range(100):
        h.writer.write(iter([b"* %d EXISTS\r\n" % index]))
    assert not h.writer.busy and h.writer.when_idle() is None
    assert h.transport.registrations == 0
    assert h.transport.everything() == b"".join(b"* %d EXISTS\r\n" % i for i in range(100))
    assert h.idle_calls == 0  # idle all along: nothing to resume


def test_a_large_response_is_written_as_the_transport_drains() -> None:
    h = Harness()
    big = Stream(count=100)  # 6.4 MiB
    h.writer.write(iter([b"* 1 FETCH (BODY[] {%d}\r\n" % (100 * CHUNK)]))
    h.writer.write(big.chunks())
    h.writer.write(iter([b")\r\n"]))
    h.writer.write(iter([b"a OK FETCH completed\r\n"]))
    # Only what fits before the transport pushed back was produced.
    assert big.produced <= STREAM_AFTER // CHUNK + 2
    assert h.writer.busy and h.transport.registrations == 1
    waiter = h.writer.when_idle()
    assert waiter is not None and not waiter.called
    rounds = 0
    while h.writer.busy:
        h.transport.drain()
        rounds += 1
        assert h.transport.peak <= STREAM_AFTER + 2 * CHUNK
    assert rounds > 10 and waiter.called and h.idle_calls == 1
    assert h.transport.producer is None  # unregistered once done
    out = h.transport.everything()
    assert out.endswith(b"x" * CHUNK + b")\r\na OK FETCH completed\r\n")
    assert len(out) == len(b"* 1 FETCH (BODY[] {6553600}\r\n") + 100 * CHUNK + len(b")\r\na OK FETCH completed\r\n")
    assert big.finished
    # Afterwards small responses go straight out again.
    h.writer.write(iter([b"b OK NOOP completed\r\n"]))
    assert not h.writer.busy and h.transport.everything().endswith(b"b OK NOOP completed\r\n")


def test_responses_keep_their_order_behind_two_streams() -> None:
    h = Harness()
    first, second = Stream(20, b"1"), Stream(20, b"2")
    h.writer.write(first.chunks())
    h.writer.write(iter([b"between"]))
    h.writer.write(second.chunks())
    h.writer.write(iter([b"end"]))
    assert second.produced == 0
    while h.writer.busy:
        h.transport.drain()
    assert h.transport.everything() == b"1" * 20 * CHUNK + b"between" + b"2" * 20 * CHUNK + b"end"
    assert h.transport.registrations == 1  # registered until all is written


def test_lost_connection_closes_pending_streams_and_releases_waiters() -> None:
    h = Harness()
    big, queued = Stream(50), Stream(50, b"q")
    h.writer.write(big.chunks())
    h.writer.write(queued.chunks())
    waiter = h.writer.when_idle()
    h.writer.stopProducing()  # what the transport calls on connection loss
    assert big.finished and waiter is not None and waiter.called
    assert not h.writer.busy
    later = Stream(3)
    h.writer.write(later.chunks())
    assert later.produced == 0


def test_a_stream_failing_half_way_is_reported_and_stops_output() -> None:
    h = Harness()
    broken, after = Stream(30, fail_at=10), Stream(5, b"a")
    h.writer.write(broken.chunks())
    h.writer.write(after.chunks())
    while h.writer.busy:
        h.transport.drain()
    assert len(h.errors) == 1 and isinstance(h.errors[0].value, OSError)
    assert broken.finished and after.produced == 0
    assert h.transport.producer is None
    assert len(h.transport.everything()) == 10 * CHUNK

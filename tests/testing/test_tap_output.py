"""The outbox of a tapped connection (``imapd.testing.tap_output``) on a
fake clock: pacing, release times, cuts, close order and back-pressure,
deterministically."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from imapd.testing.tap_output import ABORT, LOSE, QUEUE_LIMIT, Outbox


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.producer: Any = None
        self.closed = ""
        self.dataBuffer, self.offset, self._tempDataLen = b"", 0, 0

    def write(self, data: bytes) -> None:
        self.written += data

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert self.producer is None, "two producers"
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def loseConnection(self) -> None:
        self.closed = LOSE

    def abortConnection(self) -> None:
        self.closed = ABORT


class ServerProducer:
    def __init__(self) -> None:
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


def outbox(**options: Any) -> tuple[Outbox, FakeTransport, Clock, list[bytes]]:
    clock, transport, delivered = Clock(), FakeTransport(), []
    box = Outbox(transport, clock, lambda wire, plain: delivered.append(plain), **options)
    return box, transport, clock, delivered


def test_throttle_sends_a_tenth_of_a_second_at_a_time() -> None:
    box, transport, clock, _ = outbox(rate=1000)
    box.put(b"x" * 450, None, 0.0)
    assert len(transport.written) == 0  # no allowance yet
    seen = []
    for _ in range(5):
        clock.advance(0.1)
        seen.append(len(transport.written))
    assert seen == [100, 200, 300, 400, 450]


def test_delay_releases_in_order_at_their_times() -> None:
    box, transport, clock, delivered = outbox()
    box.put(b"first ", None, 1.0)
    box.put(b"second", None, 0.0)  # due earlier, but behind the first
    clock.advance(0.5)
    assert transport.written == b""
    clock.advance(0.5)
    assert transport.written == b"first second" and delivered == [b"first ", b"second"]


def test_budget_cuts_then_closes_after_what_was_sent() -> None:
    box, transport, clock, delivered = outbox(budget=7)
    box.put(b"* OK ready\r\n", None, 0.0)
    box.put(b"more", None, 0.0)
    assert transport.written == b"* OK re" and transport.closed == LOSE
    assert delivered == [b"* OK re"]


def test_close_markers_wait_for_queued_output() -> None:
    box, transport, clock, _ = outbox()
    box.put(b"a OK done\r\n", None, 2.0)
    box.put_close(ABORT)
    clock.advance(1)
    assert transport.closed == "" and transport.written == b""
    clock.advance(1)
    assert transport.written == b"a OK done\r\n" and transport.closed == ABORT


def test_compressed_chunks_are_recorded_inflated_once() -> None:
    box, transport, clock, delivered = outbox(rate=10)
    box.put(b"\x01\x02\x03", b"a OK inflated text\r\n", 0.0)
    clock.advance(0.1)
    clock.advance(0.1)
    clock.advance(0.1)
    assert transport.written == b"\x01\x02\x03"
    assert delivered == [b"a OK inflated text\r\n", b"", b""]


def test_the_server_is_paused_while_the_queue_is_full_or_the_client_slow() -> None:
    box, transport, clock, _ = outbox(rate=1_000_000)
    server = ServerProducer()
    box.register(server, True)
    assert transport.producer is not None and not server.paused
    box.put(b"x" * (QUEUE_LIMIT + 1), None, 0.0)  # 100 kB allowed per tick
    clock.advance(0)
    box.put(b"y" * (QUEUE_LIMIT + 200_000), None, 0.0)
    assert server.paused  # the tap holds too much
    while box.queued > QUEUE_LIMIT:
        clock.advance(0.1)
    assert not server.paused
    transport.producer.pauseProducing()  # the client's socket is full
    assert server.paused
    transport.producer.resumeProducing()
    assert not server.paused


def test_output_queued_when_the_server_unregisters_still_leaves() -> None:
    box, transport, clock, _ = outbox()
    server = ServerProducer()
    box.register(server, True)
    transport.producer.pauseProducing()
    box.put(b"last words\r\n", None, 0.0)
    assert transport.written == b""
    box.unregister()  # no resume will come from the transport now
    assert transport.written == b"last words\r\n" and transport.producer is None

"""COMPRESS=DEFLATE input is inflated on demand, a bounded piece at a time
(RFC 4978 §3–4; issue 11: 22 KiB of DEFLATE inflating to two million NOOPs
kept the reactor busy for a minute). Checked on the pieces (``Inflater``,
``InputBacklog``) and through the protocol on a ``StringTransport``."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from imapd.core.config import Limits
from imapd.net import compress, connection, pipeline, imap_connection as protocol
from imapd.net.compress import CompressionError, Inflater
from imapd.net.pipeline import InputBacklog
from imapd.accounts.users import UserDatabase
from tests.support.transcript import Conversation
from tests.net.test_fairness import one_turn

NOOPS = 2_000_000
NOOP = b"n NOOP\r\n"


def deflate(data: bytes, finish: bool = False) -> bytes:
    """Raw DEFLATE (RFC 4978 §4: no zlib header), sync-flushed like a client."""
    stream = zlib.compressobj(9, zlib.DEFLATED, -15)
    return stream.compress(data) + stream.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = deflate(NOOP * NOOPS)
    assert len(data) < 64 * 1024  # a single read: 16 MB of commands in one packet's worth
    return data


def test_read_never_inflates_more_than_asked(bomb: bytes) -> None:
    inflater = Inflater(max_piece=4096)
    inflater.feed(bomb)
    sizes = []
    for _ in range(10):
        piece = inflater.read(1000)
        sizes.append(len(piece))
    assert sizes == [1000] * 10 and inflater.pending
    assert inflater.read() == (NOOP * 2000)[10_000:10_000 + 4096]  # max_piece caps a larger ask


def test_reading_everything_gives_the_stream_back_in_bounded_pieces() -> None:
    data = b"".join(b"t%d NOOP\r\n" % n for n in range(50_000))
    inflater = Inflater(max_piece=3000)
    pieces = list(inflater.inflate(deflate(data)))
    assert max(map(len, pieces)) <= 3000 and b"".join(pieces) == data
    assert not inflater.pending


def test_corrupt_input_and_data_after_the_end_raise_on_read() -> None:
    inflater = Inflater()
    inflater.feed(b"\xff\xfe\xfd\xfc")  # feeding alone inflates nothing
    with pytest.raises(CompressionError):
        inflater.read()
    ended = Inflater()
    ended.feed(deflate(NOOP, finish=True) + b"more")
    with pytest.raises(CompressionError):
        ended.read()


def test_backlog_takes_at_most_the_room_in_commands_and_the_octets(bomb: bytes) -> None:
    backlog = InputBacklog()
    backlog.add(b"a LOGIN x y\r\n")
    backlog.start_inflating(Inflater(), b"")  # what waits plain becomes compressed input
    backlog2 = InputBacklog()
    backlog2.start_inflating(Inflater(), bomb)
    piece = backlog2.take(lines=10, octets=1 << 20)
    assert piece == NOOP * 10
    piece = backlog2.take(lines=1 << 20, octets=5000)
    assert len(piece) == 5000 and piece.startswith(NOOP)
    assert backlog2.size < compress.INFLATE_PIECE  # never more than one piece inflated
    assert backlog2.pending


def test_held_plain_bytes_are_the_first_compressed_input() -> None:
    backlog = InputBacklog()
    first, second = deflate(b"a NOOP\r\n"), b""
    backlog.add(first[:3])
    backlog.start_inflating(Inflater(), second)
    backlog.add(first[3:])
    assert backlog.take(lines=5, octets=100) == b"a NOOP\r\n"


class CountingInflater(Inflater):
    """Counts the octets the protocol had inflated."""

    total = 0

    def read(self, limit: int | None = None) -> bytes:
        piece = super().read(limit)
        CountingInflater.total += len(piece)
        return piece


def test_one_compressed_read_is_inflated_a_slice_at_a_time(
    users: UserDatabase, bomb: bytes, monkeypatch: Any
) -> None:
    """A wrong server inflates (and runs) all 16 MB of NOOPs within the
    one ``dataReceived``; this one inflates at most a slice's octets plus
    one piece, answers at most a slice's commands, and pauses reading."""
    monkeypatch.setattr(connection, "Inflater", CountingInflater)  # the machinery inflates
    CountingInflater.total = 0
    conv = Conversation(users)
    conv.read()
    assert conv.exchange(b"a LOGIN alice wonderland\r\n").startswith(b"a OK ")
    assert conv.exchange(b"c COMPRESS DEFLATE\r\n") == b"c OK DEFLATE active\r\n"
    conv.send(bomb)
    assert 0 < CountingInflater.total <= pipeline.TURN_OCTETS + compress.INFLATE_PIECE
    assert len(conv.protocol._queue) <= Limits().max_pipelined
    assert conv.transport.producerState == "paused"
    replies = zlib.decompressobj(-15)
    answered = 0
    for turn in range(1, 21):
        one_turn(conv.clock)  # the next slice, and the DEFLATE flush
        answered += replies.decompress(conv.read()).count(b"n OK NOOP completed\r\n")
        assert answered <= turn * pipeline.TURN_COMMANDS
        assert len(conv.protocol._queue) <= Limits().max_pipelined
    assert answered >= 19 * pipeline.TURN_COMMANDS  # slices do run, one per turn
    # What was inflated stays near what was run: bounded by the queue, not the bomb.
    assert CountingInflater.total <= answered * len(NOOP) + 2 * compress.INFLATE_PIECE
    conv.disconnect()
    # Nothing left scheduled for a closed connection (a DEFLATE flush may be).
    assert [call.func for call in conv.clock.getDelayedCalls()
            if getattr(call.func, "__name__", "") != "flush"] == []

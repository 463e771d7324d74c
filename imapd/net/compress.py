"""COMPRESS=DEFLATE (RFC 4978) as a layer between the protocol and its
transport.

* Output: ``DeflateTransport`` wraps the connection's transport. Writes are
  raw DEFLATE (RFC 1951: zlib with negative window bits, no zlib or gzip
  header, RFC 4978 §4). A sync flush makes the bytes decodable by the
  client; it is done once per reactor turn (``callLater(0)``), not once per
  response, so a FETCH of many messages compresses as one stream, and at
  once before the connection is closed. Every other transport method is
  the wrapped transport's.
* Input: ``Inflater`` turns received bytes back into the client's stream
  on demand, at most ``max_piece`` bytes per read, and the protocol reads
  only while its pipeline has room and its turn budget lasts
  (``imapd.net.pipeline``): a small "decompression bomb" is never
  inflated faster than its commands are answered, nor all in one turn.
* Start: RFC 4978 §3 says the client's compressed data starts right after
  the CRLF of the COMPRESS command. ``CompressWatch`` feeds the framer and,
  when a COMPRESS command frame completes, stops there and returns the rest
  of the received bytes unframed, so the protocol can hold them until the
  command is answered (compressed if it succeeded, plain text if not).
"""

from __future__ import annotations

import re
import zlib
from typing import Any, Iterator

from imapd.net.runtime import Clock, Timer
from imapd.imap.wire.framer import CommandFrame, FrameEvent, Framer

# Raw DEFLATE window (RFC 4978 §4: window bits -8..-15; -15 is the largest).
WINDOW_BITS = -15
# Speed over ratio: RFC 4978 §4 notes the lowest levels already compress
# typical responses to 25-40 %.
LEVEL = 1
INFLATE_PIECE = 64 * 1024

_COMPRESS_FRAME = re.compile(rb"\A[^ \r\n]+ COMPRESS ", re.IGNORECASE)
_COMPRESS_WORD = re.compile(rb"COMPRESS", re.IGNORECASE)
_WORD_TAIL = len(b"COMPRESS") - 1


class CompressionError(Exception):
    """The client's compressed stream is corrupt (or ended)."""


class Inflater:
    """The receiving side: raw DEFLATE in, the client's bytes out.

    Pull-driven so that a "decompression bomb" (a few KiB that inflate to
    gigabytes) costs bounded work and memory: ``feed`` only keeps the
    compressed bytes, and each ``read`` inflates at most ``limit`` octets
    (zlib's ``max_length``), leaving the rest of the input in zlib's
    ``unconsumed_tail`` until the protocol asks again, which it does only
    once its pipeline has room (``imapd.net.pipeline``)."""

    def __init__(self, max_piece: int = INFLATE_PIECE) -> None:
        self._stream = zlib.decompressobj(WINDOW_BITS)
        self._max_piece = max_piece
        self._input = b""
        # A read that filled its limit may leave output inside zlib even
        # when no input is left: the next read must ask zlib again.
        self._maybe_more = False

    @property
    def pending(self) -> bool:
        """Compressed input (or inflated output inside zlib) not yet read."""
        return bool(self._input) or self._maybe_more

    def feed(self, data: bytes) -> None:
        """Keep ``data`` (compressed) for later reads; nothing is inflated yet."""
        self._input = self._input + data if self._input else data

    def read(self, limit: int | None = None) -> bytes:
        """Up to ``limit`` (default ``max_piece``) inflated octets, b"" when
        nothing is pending; raises ``CompressionError`` on corrupt input or
        data after the end of the stream (the client may never end it)."""
        if not self.pending:
            return b""
        limit = min(limit or self._max_piece, self._max_piece)
        try:
            piece = self._stream.decompress(self._input, limit)
        except zlib.error as error:
            raise CompressionError(str(error)) from None
        if self._stream.eof and self._stream.unused_data:
            raise CompressionError("data after the end of the DEFLATE stream")
        self._input = self._stream.unconsumed_tail
        self._maybe_more = len(piece) >= limit
        return piece

    def inflate(self, data: bytes) -> Iterator[bytes]:
        """All the inflated bytes of ``data``, in pieces of at most
        ``max_piece`` (for callers that want everything at once)."""
        self.feed(data)
        while self.pending:
            piece = self.read()
            if piece:
                yield piece


class DeflateTransport:
    """Wraps a transport: compresses what is written (see module doc)."""

    def __init__(self, transport: Any, clock: Clock, level: int = LEVEL) -> None:
        self.wrapped = transport
        self._clock = clock
        self._stream = zlib.compressobj(level, zlib.DEFLATED, WINDOW_BITS)
        self._flush_call: Timer | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        compressed = self._stream.compress(data)
        if compressed:
            self.wrapped.write(compressed)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def writeSequence(self, data: list[bytes]) -> None:
        for chunk in data:
            self.write(chunk)

    def flush(self) -> None:
        """Make everything written so far decodable by the client."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
            self.wrapped.write(self._stream.flush(zlib.Z_SYNC_FLUSH))

    def loseConnection(self) -> None:
        self.flush()
        self.wrapped.loseConnection()

    def __getattr__(self, name: str) -> Any:
        # getPeer, pauseProducing, disconnecting, ...: the wrapped transport's.
        return getattr(self.wrapped, name)


class CompressWatch:
    """Feeds the framer, stopping right after a COMPRESS command frame.

    Only while compression could start (the protocol says when) and only
    for input that may hold the word COMPRESS (this packet, or its start
    joined to the previous packet's end) is the input fed line by line;
    everything else goes to the framer in one call, as before.
    """

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, framer: Framer, data: bytes, watching: bool) -> tuple[list[FrameEvent], bytes | None]:
        """The framer's events for ``data``; and, if a COMPRESS command
        completed, the bytes after it (possibly empty), which were not fed."""
        if not watching:
            self._tail = b""
            return framer.feed(data), None
        suspect = (
            _COMPRESS_WORD.search(data) is not None
            or _COMPRESS_WORD.search(self._tail + data[:_WORD_TAIL]) is not None
        )
        self._tail = data[-_WORD_TAIL:]
        if not suspect:
            return framer.feed(data), None
        events: list[FrameEvent] = []
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline + 1
            produced = framer.feed(data[start:end])
            start = end
            events.extend(produced)
            if any(_is_compress(event) for event in produced):
                self._tail = b""
                return events, data[start:]
        return events, None


def _is_compress(event: FrameEvent) -> bool:
    return isinstance(event, CommandFrame) and _COMPRESS_FRAME.match(event.data) is not None

"""The DATA phase (RFC 5321 §4.1.1.4, §4.5.2): lines up to ``.`` CRLF,
dot-unstuffed, stored with CRLF line ends, bounded by the SIZE limit
(RFC 1870 §6); and BDAT chunks (RFC 3030), stored as sent.

Large messages are spooled to an anonymous temporary file so a 20 MB
message is not held in memory. The reader collects input in memory up to
``BATCH`` octets; then ``batch_full`` is true and the session hands the
batch to ``flush`` in a worker thread (``Runtime.in_thread``): the file is
created and written off the reactor thread, in a few large writes instead
of one per line, and input waits meanwhile (the connection stops reading
once its buffer is full, so memory stays bounded by about two batches).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from imapd.core.spool import MessageData, SpoolWriter

# Octets collected in memory before they are written to the spool file in
# one go: a message no larger than this never touches the disk.
BATCH = 1024 * 1024
# Octets copied per read when a spooled message is copied behind its
# trace headers (``message``).
_COPY_STEP = 1024 * 1024


class DataReader:
    """Collects one message. ``feed(line)`` takes one input line with its
    line end and returns True once the terminating ``.`` line was seen;
    ``feed_raw`` takes octets to keep as they are. ``too_big`` once more
    than ``limit`` octets arrived: the rest is read and dropped (RFC 1870
    §6.2: reply 552 after the terminator). ``broken`` once the spool file
    could not be written (the rest is dropped likewise: 451 at the end).
    ``flushing``: the session has a ``flush`` running in a thread; a
    ``discard`` meanwhile (the connection dropped) only marks the reader
    ``discarded``, and the session discards it again once the flush is
    done, so the file is never closed under the thread."""

    def __init__(self, limit: int, spool_dir: Path | None = None) -> None:
        self.limit = limit
        self.size = 0
        self.too_big = False
        self.broken = False
        self.flushing = False
        self.discarded = False
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self._spool_dir = spool_dir

    def feed(self, line: bytes) -> bool:
        body = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
        if body == b".":
            return True
        if body.startswith(b"."):
            body = body[1:]  # RFC 5321 §4.5.2: the client doubled a leading dot
        self.feed_raw(body)
        self.feed_raw(b"\r\n")
        return False

    def feed_raw(self, data: bytes) -> None:
        """Octets stored exactly as given: a BDAT chunk (RFC 3030 §2),
        which is neither dot-stuffed nor line-framed; and each DATA line."""
        self.size += len(data)
        if self.size > self.limit:
            self.too_big = True
            self.discard()
        elif not (self.too_big or self.broken or self.discarded):
            self._memory += data

    @property
    def batch_full(self) -> bool:
        """Time to ``flush`` (in a thread) before reading on."""
        return len(self._memory) >= BATCH

    def flush(self) -> None:
        """Write what is in memory to the spool file, creating it first.
        Blocking file I/O: call it in a worker thread."""
        batch, self._memory = self._memory, bytearray()
        if not batch:
            return
        if self._file is None:
            if self._spool_dir is not None:
                self._spool_dir.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=self._spool_dir)
        self._file.write(batch)

    @property
    def spooled(self) -> bool:
        """Part of the message is in the spool file (``message`` then
        copies it: call that in a worker thread too)."""
        return self._file is not None

    def message(self, prefix: bytes) -> MessageData:
        """``prefix`` (trace headers) then the message; spooled and mapped
        when the message was spooled. Call after ``feed`` returned True."""
        if self._file is None:
            return b"".join((prefix, self._memory))  # one copy, at most BATCH octets
        self._file.flush()
        self._file.seek(0)
        writer = SpoolWriter(len(prefix) + self.size, self._spool_dir)
        try:
            writer.write(prefix)
            while chunk := self._file.read(_COPY_STEP):
                writer.write(chunk)
            writer.write(self._memory)  # the tail not flushed yet
            return writer.finish()
        except BaseException:
            writer.close()
            raise

    def discard(self) -> None:
        self._memory = bytearray()
        self.discarded = True
        if self._file is not None and not self.flushing:
            self._file.close()
            self._file = None

"""The DATA phase (RFC 5321 §4.1.1.4, §4.5.2): lines up to ``.`` CRLF,
dot-unstuffed, stored with CRLF line ends, bounded by the SIZE limit
(RFC 1870 §6). Large messages are spooled to a temporary file
(``imapd.core.spool``) so a 20 MB message is not held in memory twice."""

from __future__ import annotations

import tempfile
from pathlib import Path

from imapd.core.spool import MessageData, SpoolWriter

# Below this a message stays in memory; above, it moves to a spool file.
SPOOL_THRESHOLD = 1024 * 1024


class DataReader:
    """Collects one message. ``feed(line)`` takes one input line with its
    line end and returns True once the terminating ``.`` line was seen.
    ``too_big`` once more than ``limit`` octets arrived: the rest is read
    and dropped (RFC 1870 §6.2: reply 552 after the terminator)."""

    def __init__(self, limit: int, spool_dir: Path | None = None) -> None:
        self.limit = limit
        self.size = 0
        self.too_big = False
        self._memory = bytearray()
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._spool_dir = spool_dir

    def feed(self, line: bytes) -> bool:
        body = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
        if body == b".":
            return True
        if body.startswith(b"."):
            body = body[1:]  # RFC 5321 §4.5.2: the client doubled a leading dot
        self.feed_raw(body + b"\r\n")
        return False

    def feed_raw(self, data: bytes) -> None:
        """Octets stored exactly as given: a BDAT chunk (RFC 3030 §2),
        which is neither dot-stuffed nor line-framed; and each DATA line."""
        self.size += len(data)
        if self.size > self.limit:
            self.too_big = True
            self.discard()
        elif not self.too_big:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._file is None and len(self._memory) + len(data) > SPOOL_THRESHOLD:
            if self._spool_dir is not None:
                self._spool_dir.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.NamedTemporaryFile(dir=self._spool_dir)
            self._file.write(self._memory)
            self._memory = bytearray()
        if self._file is not None:
            self._file.write(data)
        else:
            self._memory += data

    def message(self, prefix: bytes) -> MessageData:
        """``prefix`` (trace headers) then the message; spooled and mapped
        when the message was spooled. Call after ``feed`` returned True."""
        if self._file is None:
            return prefix + bytes(self._memory)
        self._file.flush()
        self._file.seek(0)
        writer = SpoolWriter(len(prefix) + self.size, self._spool_dir)
        try:
            writer.write(prefix)
            while chunk := self._file.read(1024 * 1024):
                writer.write(chunk)
            return writer.finish()
        except BaseException:
            writer.close()
            raise

    def discard(self) -> None:
        self._memory = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None

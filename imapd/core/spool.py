"""Spooled literals: large client data kept in a temporary file, not memory.

Issue 6: "Large APPEND literals go to a spool file, not memory." The framer
writes a literal above ``Limits.literal_spool_threshold`` into a
``SpoolWriter`` as its bytes arrive; once complete it becomes a
``SpooledLiteral``, a read-only memory map of the file that the parser,
the APPEND handler, the message analysis and the store use like ``bytes``
without the message ever being one Python object.

Decisions:

* The file is anonymous (``tempfile.TemporaryFile``: ``O_TMPFILE`` on
  Linux, or created and unlinked at once elsewhere), in the data
  directory's ``spool/`` (or the system temporary directory). It has no
  name, so nothing is left behind by a crash, a kill or a lost connection:
  the space is freed when the last descriptor or mapping goes, i.e. at
  ``close()`` (the protocol closes a frame's literals when its command ends
  or its connection drops) or when the object is garbage collected.
* A ``SpooledLiteral`` is an ``mmap`` (so ``re``, ``sqlite3``, ``hashlib``
  and ``memoryview`` take it through the buffer protocol) with the few
  ``bytes`` methods the message model uses and mmap lacks (``count``,
  ``startswith``, ``endswith``); slicing gives ``bytes``; it compares equal
  to ``bytes`` with the same content, so commands built from spooled
  literals compare like those built from small ones.
* Mapped pages are file-backed and clean: the kernel can drop them under
  memory pressure and read them back, unlike heap memory.
"""

from __future__ import annotations

import mmap
import tempfile
from pathlib import Path
from typing import Union

# Bytes compared or counted per step when a method has to copy.
_STEP = 1024 * 1024


class SpoolWriter:
    """An anonymous temporary file being filled with one literal of
    ``size`` octets; ``finish()`` maps it once all of them were written."""

    def __init__(self, size: int, directory: Path | None = None) -> None:
        """Raises OSError when the file cannot be created."""
        if size <= 0:
            raise ValueError("a spooled literal has at least one octet")
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.written = 0
        self._file = tempfile.TemporaryFile(mode="w+b", buffering=0, dir=directory)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (raises OSError, e.g. when the disk is full)."""
        with memoryview(data) as view:
            if self.written + view.nbytes > self.size:
                raise ValueError("more octets than the literal announced")
            while view.nbytes:
                count = self._file.write(view)
                if not count:
                    raise OSError("spool file write made no progress")
                self.written += count
                view = view[count:]

    def finish(self) -> SpooledLiteral:
        """The complete literal, mapped read-only; the writer is closed."""
        if self.written != self.size:
            self._file.close()
            raise ValueError(f"spooled {self.written} of {self.size} octets")
        try:
            # The map holds its own descriptor: the file lives as long as it.
            return SpooledLiteral(self._file.fileno(), self.size, access=mmap.ACCESS_READ)
        finally:
            self._file.close()

    def close(self) -> None:
        """Drop the file (an abandoned literal)."""
        self._file.close()


class SpooledLiteral(mmap.mmap):
    """A complete literal in a spool file, read through a memory map.

    Read like ``bytes``: ``len``, indexing (an int), slicing (``bytes``),
    ``find``/``rfind``, ``count``, ``startswith``/``endswith``, ``bytes(x)``
    and the buffer protocol. Equality is by content (with ``bytes`` and
    other spooled literals). ``close()`` releases the file.
    """

    def count(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """Like ``bytes.count`` (non-overlapping occurrences of ``sub``)."""
        start, end = _bounds(len(self), start, end)
        if end - start < len(sub):
            return 0
        if not sub:
            return end - start + 1
        if len(sub) == 1:  # counted in steps: a match cannot span two
            total = 0
            for low in range(start, end, _STEP):
                total += self[low:min(end, low + _STEP)].count(sub)
            return total
        found, position = 0, self.find(sub, start, end)
        while position >= 0:
            found += 1
            position = self.find(sub, position + len(sub), end)
        return found

    def startswith(self, prefix: bytes, start: int = 0, end: int | None = None) -> bool:
        """Like ``bytes.startswith`` with a single prefix."""
        start, end = _bounds(len(self), start, end)
        if start > len(self) - len(prefix) or end - start < len(prefix):
            return False
        return self[start:start + len(prefix)] == prefix

    def endswith(self, suffix: bytes, start: int = 0, end: int | None = None) -> bool:
        """Like ``bytes.endswith`` with a single suffix."""
        start, end = _bounds(len(self), start, end)
        if end - start < len(suffix) or start > len(self):
            return False
        return self[end - len(suffix):end] == suffix

    def close(self) -> None:
        """Unmap and release the file. While a buffer of it is still
        exported (a live memoryview) that cannot happen yet; it then goes
        with the last reference, like any mmap."""
        try:
            super().close()
        except BufferError:
            pass

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (bytes, bytearray, memoryview, mmap.mmap)):
            return NotImplemented
        if self.closed:
            return self is other
        with memoryview(other) as view:
            if view.nbytes != len(self):
                return False
            return all(
                self[low:low + _STEP] == view[low:low + _STEP]
                for low in range(0, len(self), _STEP)
            )

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # content equality, mutable lifetime

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self)} octets"
        return f"<SpooledLiteral {state}>"


def _bounds(size: int, start: int, end: int | None) -> tuple[int, int]:
    """``start``/``end`` resolved as the ``bytes`` search methods do: negative
    values count from the end, ``end`` is cut to ``size``; ``start`` may stay
    beyond ``size`` and ``end`` below ``start`` (the callers check)."""
    if end is None or end > size:
        end = size
    elif end < 0:
        end = max(0, end + size)
    if start < 0:
        start = max(0, start + size)
    return start, end


# What a message literal can be: small ones stay ``bytes``.
MessageData = Union[bytes, SpooledLiteral]


def message_bytes(data: MessageData) -> bytes:
    """The data as one ``bytes`` object (a copy for a spooled literal): for
    code that needs real bytes and small data."""
    return data if isinstance(data, bytes) else bytes(data)


__all__ = ["MessageData", "SpoolWriter", "SpooledLiteral", "message_bytes"]

"""The in-memory reference storage engine (``MemoryBackend``): the
contract's executable reading, for tests and for the mail-core rules."""

from __future__ import annotations

from imapd.storage.memory.backend import MemoryBackend
from imapd.storage.memory.data import MemoryData
from imapd.storage.memory.feed import MemoryFeed

__all__ = ["MemoryBackend", "MemoryData", "MemoryFeed"]

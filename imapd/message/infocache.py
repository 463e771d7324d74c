"""A bounded memo of ``MessageInfo.from_bytes``.

FETCH ENVELOPE/BODYSTRUCTURE/sections and SEARCH on headers decode a
message's stored analysis (``meta``) every time they touch it; in the mixed
load benchmark that decoding was about a fifth of the reactor thread's time
(8 decodes per command, 20-70 us each), mostly of the same few hundred
messages a client keeps looking at. A decoded ``MessageInfo`` is immutable
and a pure function of the bytes, so the bytes themselves are the key: no
invalidation is needed, a stale entry cannot exist. Bounded by the bytes of
the keys it holds (a decoded analysis takes about four times its JSON), and
large analyses (messages with very many parts) are never kept.

Two threads use the one memo: the reactor thread (FETCH, SEARCH) and the
SQLite engine's indexing thread (the full-text texts of an APPEND). Its
bookkeeping is under a lock; the decoding itself, the costly part, is not.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from imapd.message.model import MessageInfo

# Analyses larger than this are decoded each time (rare, and they would
# push out many ordinary ones).
MAX_ENTRY_BYTES = 16 * 1024
# About 20 MiB of decoded analyses in all.
DEFAULT_BUDGET_BYTES = 4 * 1024 * 1024


class InfoCache:
    """Least-recently-used ``meta`` -> ``MessageInfo`` within a byte budget."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._held = 0
        self._entries: OrderedDict[bytes, MessageInfo] = OrderedDict()
        self._lock = threading.Lock()

    def decode(self, meta: bytes) -> MessageInfo:
        """``MessageInfo.from_bytes(meta)``, from the memo when possible;
        ValueError as ``from_bytes`` (failures are not remembered)."""
        with self._lock:
            found = self._entries.get(meta)
            if found is not None:
                self._entries.move_to_end(meta)
                return found
        info = MessageInfo.from_bytes(meta)
        if len(meta) <= MAX_ENTRY_BYTES:
            with self._lock:
                if meta not in self._entries:  # another thread may have put it there meanwhile
                    self._entries[meta] = info
                    self._held += len(meta)
                while self._held > self._budget:
                    old, _ = self._entries.popitem(last=False)
                    self._held -= len(old)
        return info

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held_bytes(self) -> int:
        return self._held


# One per process: the analyses are the same for every session.
shared = InfoCache()
decode_info = shared.decode

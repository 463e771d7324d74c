"""Doorbells of the in-memory engine (``imapd.mail.backend.ChangeFeed``).

Every ``MemoryBackend`` has one ``MemoryFeed``; the shared ``MemoryData``
rings the feeds of every backend built over it, synchronously, right after
a change is applied, so two backends over one ``MemoryData`` behave like two
processes sharing one store whose rings arrive with no delay at all.
"""

from __future__ import annotations

import logging
from typing import Callable

from imapd.mail.backend import Ring

log = logging.getLogger(__name__)


class MemoryFeed:
    """A per-backend registry of subscribers by mailbox id."""

    def __init__(self) -> None:
        self._subscribers: dict[int, list[Ring]] = {}
        self.closed = False

    def subscribe(self, mailbox_id: int, ring: Ring) -> Callable[[], None]:
        """Call ``ring(mailbox_id, modseq)`` after each change to the
        mailbox; returns the (idempotent) unsubscribe function."""
        rings = self._subscribers.setdefault(mailbox_id, [])
        # A fresh wrapper per subscription, so subscribing the same callable
        # twice gives two independent subscriptions.
        entry: Ring = lambda box, modseq: ring(box, modseq)  # noqa: E731
        rings.append(entry)

        def unsubscribe() -> None:
            current = self._subscribers.get(mailbox_id)
            if current is not None and entry in current:
                current.remove(entry)
                if not current:
                    del self._subscribers[mailbox_id]

        return unsubscribe

    def ring(self, mailbox_id: int, modseq: int) -> None:
        """Ring every subscriber of ``mailbox_id``. A subscriber that raises
        is logged and skipped: the change it rings for has committed, and
        the other subscribers must still hear of it."""
        if self.closed:
            return
        for entry in list(self._subscribers.get(mailbox_id, ())):
            try:
                entry(mailbox_id, modseq)
            except Exception:  # pragma: no cover - defensive; logged
                log.exception("change feed subscriber failed")

    def subscriber_count(self, mailbox_id: int) -> int:
        """How many subscriptions the mailbox has (tests check unsubscribe)."""
        return len(self._subscribers.get(mailbox_id, ()))

    def close(self) -> None:
        """Stop ringing; drop every subscriber."""
        self.closed = True
        self._subscribers.clear()

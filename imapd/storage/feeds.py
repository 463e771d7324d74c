"""What the engines' change feeds (``imapd.mail.backend.ChangeFeed``) share.

``SubscriberFeed`` keeps subscribers by mailbox id and rings them; an engine
adds how it hears other processes (SQLite's poller, PostgreSQL's LISTEN).
``SiblingFeeds`` lists the feeds of every backend open on one store (a
database file, a DSN) in this process, so a commit through one rings the
others at once, as the memory engine's shared store does.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Callable, Generic, Sequence, TypeVar

from imapd.mail.backend import Ring

log = logging.getLogger(__name__)


class SubscriberFeed:
    """Subscribers by mailbox id. ``subscribe`` and ``ring`` run on the
    reactor thread; an engine's listening thread only reads
    ``subscribed_ids`` (under the lock)."""

    def __init__(self) -> None:
        self._subscribers: dict[int, list[Ring]] = {}
        self._lock = threading.Lock()
        self.closed = False

    def subscribe(self, mailbox_id: int, ring: Ring) -> Callable[[], None]:
        entry: Ring = lambda box, modseq: ring(box, modseq)  # noqa: E731 - one per subscription
        with self._lock:
            self._subscribers.setdefault(mailbox_id, []).append(entry)

        def unsubscribe() -> None:
            with self._lock:
                current = self._subscribers.get(mailbox_id)
                if current is not None and entry in current:
                    current.remove(entry)
                    if not current:
                        del self._subscribers[mailbox_id]
                        self._forget(mailbox_id)

        return unsubscribe

    def subscribed_ids(self) -> list[int]:
        with self._lock:
            return list(self._subscribers)

    def subscriber_count(self, mailbox_id: int) -> int:
        with self._lock:
            return len(self._subscribers.get(mailbox_id, ()))

    def ring(self, mailbox_id: int, modseq: int) -> None:
        """Ring every subscriber of the mailbox; one that raises is logged
        and skipped (the change has committed; the others must hear)."""
        if self.closed:
            return
        with self._lock:
            entries = list(self._subscribers.get(mailbox_id, ()))
            if entries:
                self._noted(mailbox_id, modseq)
        for entry in entries:
            try:
                entry(mailbox_id, modseq)
            except Exception:
                log.exception("change feed subscriber failed")

    def close(self) -> None:
        self.closed = True
        with self._lock:
            self._subscribers.clear()
            self._forget_all()

    # Hooks for engines that remember what they rang (called under the lock).
    def _noted(self, mailbox_id: int, modseq: int) -> None:
        pass

    def _forget(self, mailbox_id: int) -> None:
        pass

    def _forget_all(self) -> None:
        pass


F = TypeVar("F", bound=SubscriberFeed)


class SiblingFeeds(Generic[F]):
    """The feeds of the backends open on each store (by key) in this process."""

    def __init__(self) -> None:
        self._by_key: dict[str, weakref.WeakSet[F]] = {}
        self._lock = threading.Lock()

    def join(self, key: str, feed: F) -> None:
        with self._lock:
            self._by_key.setdefault(key, weakref.WeakSet()).add(feed)

    def leave(self, key: str, feed: F) -> None:
        with self._lock:
            feeds = self._by_key.get(key)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._by_key[key]

    def feeds(self, key: str) -> list[F]:
        with self._lock:
            return list(self._by_key.get(key, ()))

    def ring_all(self, key: str, rings: Sequence[tuple[int, int]]) -> None:
        """Ring (mailbox id, modseq) in every feed open on ``key``: a commit
        through one backend is heard by the others in this process at once
        (called on the reactor thread)."""
        if not rings:
            return
        for feed in self.feeds(key):
            for mailbox_id, modseq in rings:
                feed.ring(mailbox_id, modseq)

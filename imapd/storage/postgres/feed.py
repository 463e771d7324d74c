"""Doorbells of the PostgreSQL engine (``imapd.mail.backend.ChangeFeed``).

Own changes: the runner rings the feed on the reactor thread right after
COMMIT, before the caller's awaitable resolves; the feeds of the other
backends on the same database in this process are rung at the same moment
(``Siblings``).

Other processes and nodes: every write transaction sends
``pg_notify('imapd', '<mailbox id>:<modseq>')`` (delivered at COMMIT, only
if it commits; modseq 0 for a tree change). ONE ``Listener`` thread per
backend holds a dedicated connection that LISTENs on the channel and rings
the subscribed mailboxes through ``hop``. NOTIFY is only the doorbell: a
notification sent while the listener was disconnected is lost, so the
listener also compares each subscribed mailbox's row (HIGHESTMODSEQ,
UIDNEXT, name, UIDVALIDITY) every ``poll_interval`` seconds and at every
(re)connect, and rings those that moved (``catch_up``); the truth is
always ``changes_since``. After a lost connection it reconnects by itself,
waiting a little longer each time (at most ``poll_interval``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Callable

import psycopg

from imapd.mail.backend import Ring
from imapd.storage.postgres.schema import NOTIFY_CHANNEL
from imapd.storage.sqlite.writer import Hop

log = logging.getLogger(__name__)

RowState = tuple[int, int, str, int] | None
_UNKNOWN: RowState = (-1, -1, "", -1)
WAKE = 0.05  # seconds: the longest the listener waits before looking at ``stop``


class PgFeed:
    """Subscribers by mailbox id; ``subscribe`` and the rings run on the
    reactor thread, the listener reads ``subscribed_ids`` under the lock.
    ``remote`` rings skip a MODSEQ this process already rang (its own
    NOTIFY coming back); rings may still repeat, which the contract allows."""

    def __init__(self) -> None:
        self._subscribers: dict[int, list[Ring]] = {}
        self._rung: dict[int, int] = {}
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
                        self._rung.pop(mailbox_id, None)

        return unsubscribe

    def subscribed_ids(self) -> list[int]:
        with self._lock:
            return list(self._subscribers)

    def is_subscribed(self, mailbox_id: int) -> bool:
        with self._lock:
            return mailbox_id in self._subscribers

    def ring(self, mailbox_id: int, modseq: int) -> None:
        """Ring every subscriber of the mailbox (a failing one is logged)."""
        if self.closed:
            return
        with self._lock:
            entries = list(self._subscribers.get(mailbox_id, ()))
            if entries and modseq > self._rung.get(mailbox_id, 0):
                self._rung[mailbox_id] = modseq
        for entry in entries:
            try:
                entry(mailbox_id, modseq)
            except Exception:
                log.exception("change feed subscriber failed")

    def remote(self, mailbox_id: int, modseq: int) -> None:
        """A ring heard from the database (NOTIFY or catch-up)."""
        with self._lock:
            if modseq and modseq <= self._rung.get(mailbox_id, 0):
                return
        self.ring(mailbox_id, modseq)

    def close(self) -> None:
        self.closed = True
        with self._lock:
            self._subscribers.clear()
            self._rung.clear()


class Siblings:
    """The feeds of every open backend on one database (by DSN) in this
    process, so a commit through one rings the others at once."""

    _by_dsn: dict[str, weakref.WeakSet[PgFeed]] = {}
    _lock = threading.Lock()

    @classmethod
    def join(cls, dsn: str, feed: PgFeed) -> None:
        with cls._lock:
            cls._by_dsn.setdefault(dsn, weakref.WeakSet()).add(feed)

    @classmethod
    def leave(cls, dsn: str, feed: PgFeed) -> None:
        with cls._lock:
            feeds = cls._by_dsn.get(dsn)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del cls._by_dsn[dsn]

    @classmethod
    def feeds(cls, dsn: str) -> list[PgFeed]:
        with cls._lock:
            return list(cls._by_dsn.get(dsn, ()))


def _ring_value(before: RowState, after: RowState) -> int:
    """0 for a tree change (gone, renamed, re-created), else HIGHESTMODSEQ."""
    if after is None or before is None or before[2:] != after[2:]:
        return 0
    return after[0]


class Listener:
    """The LISTEN thread (see the module docstring)."""

    def __init__(self, dsn: str, feed: PgFeed, hop: Hop, poll_interval: float) -> None:
        self._dsn = dsn
        self._feed = feed
        self._hop = hop
        self._interval = poll_interval
        self._known: dict[int, RowState] = {}
        self._stop = threading.Event()
        self._outage = False
        self.connection: psycopg.Connection[tuple[object, ...]] | None = None
        self.connected = threading.Event()  # for tests: listening now
        self.connects = 0  # for tests: how many times it (re)connected
        self.catch_ups = 0
        self._thread = threading.Thread(target=self._loop, name="pg-listener", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.05
            except Exception as error:  # noqa: BLE001 - a lost server must not kill the thread
                if not self._outage and not self._stop.is_set():
                    # Once per outage; the retries until it is back are quiet.
                    self._outage = True
                    log.warning("change listener lost its connection (%s); reconnecting",
                                " ".join(str(error).split()) or type(error).__name__)
                self.connected.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, max(self._interval, 0.05))

    def _session(self) -> None:
        """One connection's life: LISTEN, catch up, then notifications and
        a catch-up every ``poll_interval`` until stopped or lost."""
        with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
            self.connection = conn
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.connects += 1
            if self._outage:
                log.info("change listener reconnected")
                self._outage = False
            self.connected.set()
            self._catch_up(conn)
            due = time.monotonic() + self._interval
            while not self._stop.is_set():
                wait = max(0.0, min(WAKE, due - time.monotonic()))
                # Each notification is rung as it arrives (the generator
                # ends only at the timeout: collecting first would add up
                # to WAKE to every ring).
                for note in conn.notifies(timeout=wait):
                    parsed = _parse(note.payload)
                    if parsed is not None:
                        self._ring([parsed])
                if time.monotonic() >= due:
                    self._catch_up(conn)
                    due = time.monotonic() + self._interval
            self.connection = None

    def _ring(self, heard: list[tuple[int, int]]) -> None:
        rings = [(box, modseq) for box, modseq in heard if self._feed.is_subscribed(box)]
        if rings:
            self._hop(lambda: _remote(self._feed, rings))

    def _catch_up(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Ring each subscribed mailbox whose row moved since the last look
        (or that was subscribed since: a change may have landed between its
        subscriber's read and the subscription)."""
        self.catch_ups += 1
        ids = self._feed.subscribed_ids()
        if not ids:
            self._known.clear()
            return
        current: dict[int, RowState] = {i: None for i in ids}
        for id_, modseq, uidnext, name, uidvalidity in conn.execute(
                "SELECT id, highestmodseq, uidnext, name, uidvalidity FROM mailboxes "
                "WHERE id = ANY(%s)", (ids,)).fetchall():
            current[int(str(id_))] = (int(str(modseq)), int(str(uidnext)), str(name),
                                      int(str(uidvalidity)))
        changed = [(box, _ring_value(self._known.get(box, _UNKNOWN), state))
                   for box, state in current.items()
                   if self._known.get(box, _UNKNOWN) != state]
        self._known = current
        if changed:
            self._hop(lambda: _remote(self._feed, changed))

    def stop(self) -> None:
        """Ask the thread to stop (it notices within ``WAKE`` seconds)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def _parse(payload: str) -> tuple[int, int] | None:
    box, _, modseq = payload.partition(":")
    try:
        return int(box), int(modseq)
    except ValueError:
        return None


def _remote(feed: PgFeed, rings: list[tuple[int, int]]) -> None:
    for box, modseq in rings:
        feed.remote(box, modseq)

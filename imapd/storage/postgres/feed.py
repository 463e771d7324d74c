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

import psycopg

from imapd.storage.feeds import SiblingFeeds, SubscriberFeed
from imapd.storage.postgres.schema import NOTIFY_CHANNEL
from imapd.storage.hops import Hop

log = logging.getLogger(__name__)

RowState = tuple[int, int, str, int] | None
_UNKNOWN: RowState = (-1, -1, "", -1)
WAKE = 0.05  # seconds: the longest the listener waits before looking at ``stop``


class PgFeed(SubscriberFeed):
    """Subscribers by mailbox id (``SubscriberFeed``); the listener reads
    ``subscribed_ids``. ``remote`` rings skip a MODSEQ this process already
    rang (its own NOTIFY coming back); rings may still repeat, which the
    contract allows."""

    def __init__(self) -> None:
        super().__init__()
        self._rung: dict[int, int] = {}

    def is_subscribed(self, mailbox_id: int) -> bool:
        with self._lock:
            return mailbox_id in self._subscribers

    def remote(self, mailbox_id: int, modseq: int) -> None:
        """A ring heard from the database (NOTIFY or catch-up)."""
        with self._lock:
            if modseq and modseq <= self._rung.get(mailbox_id, 0):
                return
        self.ring(mailbox_id, modseq)

    def _noted(self, mailbox_id: int, modseq: int) -> None:
        if modseq > self._rung.get(mailbox_id, 0):
            self._rung[mailbox_id] = modseq

    def _forget(self, mailbox_id: int) -> None:
        self._rung.pop(mailbox_id, None)

    def _forget_all(self) -> None:
        self._rung.clear()


# The feeds of every open backend on one database (by DSN) in this process.
Siblings: SiblingFeeds[PgFeed] = SiblingFeeds()


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

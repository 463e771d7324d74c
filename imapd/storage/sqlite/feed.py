"""Doorbells of the SQLite engine (``imapd.mail.backend.ChangeFeed``).

Own changes: the writer rings right after COMMIT, on the reactor thread,
before the callers' awaitables resolve (``writer``). Backends over the same
database file in this process are rung too, at the same moment (they are
registered per file here), so two instances in one process behave like the
memory engine's shared store.

Other processes' changes: a ``Poller`` thread with its own connection asks
``PRAGMA data_version`` every ``poll_interval`` seconds (it changes only
when another connection committed, so an idle poll costs one pragma); when
it moved, one indexed read of the subscribed mailboxes' rows finds those
whose HIGHESTMODSEQ, UIDNEXT, name or UIDVALIDITY changed (every change to
a mailbox raises HIGHESTMODSEQ, RFC 7162 §3.1; RENAME changes the name;
DELETE removes the row) and rings them through ``hop`` on the reactor
thread. Rings carry no data; the truth is ``changes_since``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable, Sequence

from imapd.storage.feeds import SiblingFeeds, SubscriberFeed
from imapd.storage.hops import Hop

log = logging.getLogger(__name__)

# (highestmodseq, uidnext, name, uidvalidity) of a mailbox row, or None.
RowState = tuple[int, int, str, int] | None


class SqliteFeed(SubscriberFeed):
    """Subscribers by mailbox id (``SubscriberFeed``); the poller thread
    only reads ``subscribed_ids``."""


# The feeds of every open backend over one database file in this process.
Siblings: SiblingFeeds[SqliteFeed] = SiblingFeeds()


def row_states(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, RowState]:
    """The change-relevant columns of the given mailbox rows (None: gone)."""
    states: dict[int, RowState] = {i: None for i in ids}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        marks = ",".join("?" * len(chunk))
        for id_, modseq, uidnext, name, uidvalidity in conn.execute(
            f"SELECT id, highestmodseq, uidnext, name, uidvalidity FROM mailboxes "
            f"WHERE id IN ({marks})", chunk,
        ):
            states[int(id_)] = (int(modseq), int(uidnext), str(name), int(uidvalidity))
    return states


_UNKNOWN: RowState = (-1, -1, "", -1)


def _ring_value(before: RowState, after: RowState) -> int:
    """The ring's modseq: 0 for a tree change (gone, renamed, re-created),
    else the new HIGHESTMODSEQ."""
    if after is None or before is None or before[2:] != after[2:]:
        return 0
    return after[0]


class Detector:
    """What changed in the subscribed mailboxes since the last look: one
    ``PRAGMA data_version`` when nothing was committed by another
    connection, else one read of the subscribed rows."""

    def __init__(self, feed: SqliteFeed) -> None:
        self._feed = feed
        self._version: int | None = None
        self._known: dict[int, RowState] = {}
        self._lock = threading.Lock()  # ``note`` comes from the writer thread

    def note(self, states: dict[int, RowState]) -> None:
        """This process committed ``states`` (and rang for them): do not
        ring them again. Ordering is safe either way: a look before the
        note rang (a repeat), a look after it compares with these."""
        with self._lock:
            for mailbox_id, state in states.items():
                if mailbox_id in self._known:
                    self._known[mailbox_id] = state

    def poll(self, conn: sqlite3.Connection) -> list[tuple[int, int]]:
        """(mailbox id, modseq or 0) to ring; must not run inside a transaction."""
        try:
            now = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if now == self._version:
                return []
            self._version = now
            return self._changed(conn)
        except sqlite3.Error:
            self._version = None  # look again next time
            raise

    def _changed(self, conn: sqlite3.Connection) -> list[tuple[int, int]]:
        ids = self._feed.subscribed_ids()
        if not ids:
            self._known.clear()
            return []
        current = row_states(conn, ids)
        changed: list[tuple[int, int]] = []
        with self._lock:
            for mailbox_id, state in current.items():
                before = self._known.get(mailbox_id, _UNKNOWN)
                # A mailbox subscribed since the last look is rung too: a
                # change may have landed between its subscriber's read and
                # the subscription.
                if before != state:
                    changed.append((mailbox_id, _ring_value(before, state)))
            self._known = current
        return changed


class Poller:
    """The cross-process change detector thread (see the module docstring)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        feed: SqliteFeed,
        hop: Hop,
        interval: float,
    ) -> None:
        self._connect = connect
        self._feed = feed
        self._hop = hop
        self._interval = interval
        self._stop = threading.Event()
        self.detector = Detector(feed)
        self.polls = 0  # for tests: how many times the pragma was asked
        self._thread = threading.Thread(target=self._loop, name="sqlite-poller", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        conn = self._connect()
        try:
            while not self._stop.wait(self._interval):
                self.polls += 1
                try:
                    changed = self.detector.poll(conn)
                except sqlite3.Error:
                    log.exception("change poll failed; retrying")
                    continue
                if changed:
                    self._hop(_ringer(self._feed, changed))
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _ringer(feed: SqliteFeed, changed: list[tuple[int, int]]) -> Callable[[], None]:
    def ring() -> None:
        for mailbox_id, modseq in changed:
            feed.ring(mailbox_id, modseq)

    return ring

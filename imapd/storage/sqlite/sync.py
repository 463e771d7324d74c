"""Delivering changes to selections, and ``\\Recent`` ownership, for the
SQLite store.

Change detection needs no change-log table: every change to a mailbox
raises its HIGHESTMODSEQ, each message row carries the MODSEQ of its last
change, and expunged UIDs are kept with theirs (the same data CONDSTORE and
QRESYNC need, RFC 7162). A selection remembers the HIGHESTMODSEQ and UIDNEXT
it is synchronised to; bringing it up to date is two indexed range queries
(``modseq > synced``). Changes made through this process are delivered
right after they commit; changes made by other processes are found by
``poll``, which first asks ``PRAGMA data_version`` (it changes only when
another connection committed) so an idle poll costs one pragma.

``\\Recent`` (RFC 3501 §2.3.2): ``mailboxes.recent_from`` is the lowest UID
no session has claimed. A read-write selection claims ``[recent_from, n]``
by moving it past ``n`` in a write transaction, so across all processes
exactly one session owns each message as recent. Claims happen at SELECT,
inside the APPEND/COPY transaction when this process has a read-write
selection of the target, and in ``poll`` for messages other processes added.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from typing import Any, Iterable, Sequence

from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded,
    MessagesExpunged, Selection,
)
from imapd.mail.records import FlagState, MailboxSnapshot
from imapd.storage.sqlite.schema import read_transaction, write_transaction
from imapd.mail.flags import decode_keywords
from imapd.storage.sqlite.messages import changed_rows, decode_flags, expunged_since


class SqliteSelection(Selection):
    """A Selection plus what the SQLite store needs to keep it in sync."""

    def __init__(
        self,
        hub: SyncHub,
        mailbox_id: int,
        user: str,
        name: str,
        readonly: bool,
        snapshot: MailboxSnapshot,
    ) -> None:
        super().__init__(user, name, readonly, snapshot)
        self.hub = hub
        self.mailbox_id = mailbox_id
        self.synced_modseq = snapshot.highestmodseq
        self.known_uidnext = snapshot.uidnext
        # Inclusive UID ranges this session has claimed as \Recent.
        self.claimed: list[tuple[int, int]] = []

    def add_claim(self, low: int, high: int) -> None:
        if high < low:
            return
        if self.claimed and self.claimed[-1][1] + 1 >= low:
            self.claimed[-1] = (self.claimed[-1][0], max(high, self.claimed[-1][1]))
        else:
            self.claimed.append((low, high))

    def owns_recent(self, uid: int) -> bool:
        return any(low <= uid <= high for low, high in self.claimed)

    def close(self) -> None:
        if not self.closed:
            self.hub.unregister(self)
        super().close()


class PendingClaim:
    """A \\Recent claim written in a transaction, applied after it commits."""

    def __init__(self, selection: SqliteSelection, low: int, high: int) -> None:
        self.selection = selection
        self.low = low
        self.high = high

    def apply(self) -> None:
        self.selection.add_claim(self.low, self.high)


class OwnChange:
    """A STORE made through ``selection`` that just committed at ``modseq``;
    ``prior`` maps each changed UID to its MODSEQ before the change."""

    def __init__(self, selection: SqliteSelection, modseq: int, prior: dict[int, int]) -> None:
        self.selection = selection
        self.modseq = modseq
        self.prior = prior

    def told(self, uid: int, modseq: int, synced: int) -> bool:
        """True when the session's own STORE response already showed this
        state: the row is still at the STORE's MODSEQ and the session had
        been told about the message's state before the STORE."""
        return modseq == self.modseq and self.prior.get(uid, synced + 1) <= synced


class SyncHub:
    """This process's selections, by mailbox id."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.by_mailbox: dict[int, list[SqliteSelection]] = {}
        self._data_version: int | None = None

    def register(self, selection: SqliteSelection) -> None:
        self.by_mailbox.setdefault(selection.mailbox_id, []).append(selection)

    def unregister(self, selection: SqliteSelection) -> None:
        selections = self.by_mailbox.get(selection.mailbox_id, [])
        if selection in selections:
            selections.remove(selection)
        if not selections:
            self.by_mailbox.pop(selection.mailbox_id, None)

    def watched(self, mailbox_ids: Iterable[int]) -> list[int]:
        return [m for m in dict.fromkeys(mailbox_ids) if m in self.by_mailbox]

    def claimer(self, mailbox_id: int) -> SqliteSelection | None:
        """The session that claims new messages of a mailbox in this process:
        the longest-standing read-write selection."""
        for selection in self.by_mailbox.get(mailbox_id, []):
            if not selection.readonly:
                return selection
        return None

    def claim_in_transaction(
        self, mailbox_id: int, recent_from: int, uidnext: int
    ) -> PendingClaim | None:
        """Inside the caller's write transaction: claim every unclaimed UID
        below ``uidnext`` for this process's claimer, if any."""
        selection = self.claimer(mailbox_id)
        if selection is None or recent_from >= uidnext:
            return None
        self.conn.execute("UPDATE mailboxes SET recent_from=? WHERE id=?", (uidnext, mailbox_id))
        return PendingClaim(selection, recent_from, uidnext - 1)

    # --- delivery ------------------------------------------------------------

    def poll(self) -> None:
        """Deliver other processes' changes (see module docstring)."""
        if not self.by_mailbox:
            return
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._data_version:
            return
        self._data_version = version
        self.sync(list(self.by_mailbox))

    def sync(self, mailbox_ids: Iterable[int], own: OwnChange | None = None) -> None:
        """Bring this process's selections of ``mailbox_ids`` up to date.

        ``own``: a STORE that just committed through one of them. That
        session gets its own change with ``own=True`` (its STORE response
        reported it) only when ``OwnChange.told`` holds; otherwise it missed
        an earlier change and gets the flags like any other session.
        """
        ids = self.watched(mailbox_ids)
        if not ids:
            return
        try:
            self._claim_new_messages(ids)
        except sqlite3.OperationalError:
            # Busy past the timeout: leave the messages unclaimed for the
            # next sync rather than fail a caller whose change has committed.
            pass
        with read_transaction(self.conn):
            for mailbox_id in ids:
                self._sync_one(mailbox_id, own)

    def _claim_new_messages(self, mailbox_ids: list[int]) -> None:
        wanted = [m for m in mailbox_ids if self.claimer(m) is not None]
        if not wanted or not self._unclaimed(wanted):
            return
        claims: list[PendingClaim] = []
        with write_transaction(self.conn):
            for mailbox_id, recent_from, uidnext in self._claim_rows(wanted):
                claim = self.claim_in_transaction(mailbox_id, recent_from, uidnext)
                if claim is not None:
                    claims.append(claim)
        for claim in claims:
            claim.apply()

    def _claim_rows(self, mailbox_ids: list[int]) -> list[Any]:
        marks = ",".join("?" * len(mailbox_ids))
        return self.conn.execute(
            f"SELECT id, recent_from, uidnext FROM mailboxes WHERE id IN ({marks}) "
            "AND selectable AND recent_from < uidnext",
            mailbox_ids,
        ).fetchall()

    def _unclaimed(self, mailbox_ids: list[int]) -> bool:
        # Cheap read first, so a sync with nothing to claim never takes the write lock.
        return bool(self._claim_rows(mailbox_ids))

    def _sync_one(self, mailbox_id: int, own: OwnChange | None) -> None:
        selections = list(self.by_mailbox.get(mailbox_id, []))
        row = self.conn.execute(
            "SELECT name, uidvalidity, highestmodseq, uidnext, recent_from, selectable "
            "FROM mailboxes WHERE id=?",
            (mailbox_id,),
        ).fetchone()
        if row is None or not row[5] or row[1] != selections[0].uidvalidity:
            for selection in selections:
                selection.deliver([MailboxDeleted()])
                selection.close()
            return
        name, _, highestmodseq, uidnext, recent_from, _ = row
        since = min(s.synced_modseq for s in selections)
        changed: list[Any] = []
        expunged: list[Any] = []
        if highestmodseq > since:
            changed = changed_rows(self.conn, mailbox_id, since)
            expunged = expunged_since(self.conn, mailbox_id, since)
        for selection in selections:
            events = _events_for(
                selection, changed, expunged, int(recent_from),
                own if own is not None and own.selection is selection else None,
            )
            if name != selection.name:
                events.append(MailboxRenamed(str(name)))
            selection.synced_modseq = int(highestmodseq)
            selection.known_uidnext = int(uidnext)
            selection.highestmodseq = int(highestmodseq)
            selection.deliver(events)


def _events_for(
    selection: SqliteSelection,
    changed: Sequence[Any],
    expunged: Sequence[Any],
    recent_from: int,
    own_change: OwnChange | None,
) -> list[ChangeEvent]:
    synced = selection.synced_modseq
    known = selection.known_uidnext
    gone = [(uid, ms) for uid, ms in expunged if ms > synced and uid < known]
    others: list[FlagState] = []
    own: list[FlagState] = []
    added: list[int] = []
    added_keywords: set[str] = set()  # encoded lists, decoded once each below
    for uid, bits, keywords, modseq in changed:
        if modseq <= synced:
            continue
        if uid >= known:
            added.append(uid)
            if keywords:
                added_keywords.add(keywords)
            continue
        state = FlagState(uid, decode_flags(bits, keywords), modseq)
        if own_change is not None and own_change.told(uid, modseq, synced):
            own.append(state)
        else:
            others.append(state)
    events: list[ChangeEvent] = []
    if gone:
        events.append(MessagesExpunged(tuple(u for u, _ in gone), max(m for _, m in gone)))
    if others:
        events.append(FlagsChanged(tuple(others)))
    if own:
        events.append(FlagsChanged(tuple(own), own=True))
    if added:
        if selection.readonly:
            recent = frozenset(u for u in added if u >= recent_from)
        else:
            recent = frozenset(u for u in added if selection.owns_recent(u))
        names = dict.fromkeys(k for text in sorted(added_keywords) for k in decode_keywords(text))
        events.append(MessagesAdded(tuple(added), recent, tuple(names)))
    return events


def recent_in(uids: Sequence[int], low: int, high: int) -> frozenset[int]:
    """The UIDs of the ascending ``uids`` within [low, high]. A run without
    gaps (new mail usually is one) is built from a range, twice as fast as
    from the items: the first SELECT of 100k new messages claims them all."""
    start, stop = bisect_left(uids, low), bisect_right(uids, high)
    if start < stop and uids[stop - 1] - uids[start] == stop - 1 - start:
        return frozenset(range(uids[start], uids[stop - 1] + 1))
    return frozenset(uids[start:stop])

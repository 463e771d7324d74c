"""A per-process cache of large mailboxes' UID lists, so that SELECT of a
100,000-message mailbox does not rebuild the list row by row each time.

Reading every UID costs about half a microsecond per message in Python
(tens of milliseconds for 100k), and SELECT needs the whole list (RFC 3501
§6.3.1: the session's sequence numbers). The cache keeps the list a SELECT
read, with the mailbox's UIDVALIDITY, HIGHESTMODSEQ and UIDNEXT at that
moment, and brings it up to date at the next SELECT from the same data the
change delivery uses (``sqlite_sync``), inside the caller's read
transaction:

* every change to a mailbox raises its HIGHESTMODSEQ, so an equal
  HIGHESTMODSEQ means an unchanged UID list;
* messages only ever arrive with UIDs at or above the UIDNEXT the cache saw
  (UIDs are assigned in ascending order and never reused);
* every message that leaves a mailbox (EXPUNGE, MOVE, RENAME of INBOX) is
  recorded in ``expunged`` with the MODSEQ of its removal; DELETE removes
  the mailbox row itself, and row ids are never reused.

Other processes' changes are covered the same way: the check reads the
mailbox row in the same transaction as the delta.

A list that is not cached (the first SELECT after the server starts) is
derived from the same facts instead of being read row by row: it is every
UID below UIDNEXT minus the UIDs recorded as expunged (see
``derived_uids``), checked against the count and the sum of the UIDs the
mailbox holds, which SQLite computes without handing rows to Python.
"""

from __future__ import annotations

import sqlite3
from array import array
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass

from imapd.storage.rows import MailboxRow

# Small mailboxes are read directly: caching them saves nothing.
MIN_CACHED_MESSAGES = 2048
MAX_CACHED_MAILBOXES = 16
# Up to this many removals are applied one by one (a memmove each);
# beyond it the list is rebuilt in one pass.
_DELETE_ONE_BY_ONE = 64


@dataclass(slots=True)
class _Entry:
    uidvalidity: int
    highestmodseq: int
    uidnext: int
    uids: array[int]


def read_all_uids(conn: sqlite3.Connection, row: MailboxRow) -> array[int]:
    """The mailbox's UIDs, ascending, as of the caller's read transaction:
    derived (``derived_uids``) when possible, else read row by row."""
    uids = derived_uids(conn, row)
    if uids is None:
        uids = array("I", [r[0] for r in conn.execute(
            "SELECT uid FROM messages WHERE mailbox_id=? ORDER BY uid", (row.id,))])
    return uids


def derived_uids(conn: sqlite3.Connection, row: MailboxRow) -> array[int] | None:
    """The UIDs as ``[1, UIDNEXT)`` minus the expunged ones, or None when
    that cannot be vouched for or would not be cheaper.

    Each UID below UIDNEXT was given to a message of this mailbox (UIDs are
    assigned in ascending order, RFC 3501 §2.3.1.1) and every message that
    left is recorded in ``expunged``; so the mailbox holds a subset of the
    derived list, and equal count and sum make it the same set. Where that
    history does not hold (RENAME INBOX gives the new mailbox UIDs whose
    gaps it never recorded) the totals differ and None sends the caller
    to the rows. With more expunged UIDs than messages, reading the
    messages is the cheaper way."""
    count, total = conn.execute(
        "SELECT count(*), coalesce(sum(uid), 0) FROM messages WHERE mailbox_id=?", (row.id,)
    ).fetchone()
    below = row.uidnext - 1  # UIDs 1..below were handed out
    if count > below or below - count > count:
        return None
    gone = [int(r[0]) for r in conn.execute(
        "SELECT uid FROM expunged WHERE mailbox_id=? AND uid<? ORDER BY uid LIMIT ?",
        (row.id, row.uidnext, below - count + 1),
    )]
    if len(gone) != below - count or below * (below + 1) // 2 - sum(gone) != total:
        return None
    uids = array("I")
    start = 1
    for uid in gone:
        uids.extend(range(start, uid))
        start = uid + 1
    uids.extend(range(start, row.uidnext))
    return uids


class UidCache:
    """Least-recently-used UID lists of up to ``max_mailboxes`` mailboxes
    holding at least ``min_messages`` messages."""

    def __init__(
        self,
        max_mailboxes: int = MAX_CACHED_MAILBOXES,
        min_messages: int = MIN_CACHED_MESSAGES,
    ) -> None:
        self.max_mailboxes = max_mailboxes
        self.min_messages = min_messages
        self._entries: OrderedDict[int, _Entry] = OrderedDict()

    def uids(self, conn: sqlite3.Connection, row: MailboxRow) -> array[int]:
        """The UIDs of ``row``'s mailbox, ascending, as of the caller's open
        read transaction (in which ``row`` was read). The caller owns the
        returned array."""
        entry = self._entries.pop(row.id, None)
        uids: array[int]
        if (
            entry is None
            or entry.uidvalidity != row.uidvalidity
            or entry.highestmodseq > row.highestmodseq
            or entry.uidnext > row.uidnext
        ):
            uids = read_all_uids(conn, row)
        elif entry.highestmodseq == row.highestmodseq:
            uids = entry.uids
        else:
            uids = _updated(conn, row.id, entry)
        if len(uids) >= self.min_messages:
            self._entries[row.id] = _Entry(row.uidvalidity, row.highestmodseq, row.uidnext, uids)
            while len(self._entries) > self.max_mailboxes:
                self._entries.popitem(last=False)
        return array("I", uids)

    def clear(self) -> None:
        self._entries.clear()


def _updated(conn: sqlite3.Connection, mailbox_id: int, entry: _Entry) -> array[int]:
    """``entry``'s list with the removals and arrivals since it was read."""
    gone = sorted(int(r[0]) for r in conn.execute(
        "SELECT uid FROM expunged INDEXED BY expunged_by_modseq "
        "WHERE mailbox_id=? AND modseq>? AND uid<?",
        (mailbox_id, entry.highestmodseq, entry.uidnext),
    ))
    uids = array("I", entry.uids)
    if len(gone) <= _DELETE_ONE_BY_ONE:
        for uid in reversed(gone):
            i = bisect_left(uids, uid)
            if i < len(uids) and uids[i] == uid:
                del uids[i]
    else:
        removed = set(gone)
        uids = array("I", [uid for uid in uids if uid not in removed])
    uids.extend(int(r[0]) for r in conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id=? AND uid>=? ORDER BY uid",
        (mailbox_id, entry.uidnext),
    ))
    return uids

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
"""

from __future__ import annotations

import sqlite3
from array import array
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass

from imapd.mailstore.sqlite_mailboxes import MailboxRow

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


def read_all_uids(conn: sqlite3.Connection, mailbox_id: int) -> array[int]:
    return array("I", [r[0] for r in conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id=? ORDER BY uid", (mailbox_id,))])


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
            uids = read_all_uids(conn, row.id)
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

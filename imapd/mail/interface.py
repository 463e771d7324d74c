"""The mail store contract. Every backend implements ``MailStore``; the
docstrings below ARE the contract, and ``tests/storage/sqlite/test_contract.py``
checks every backend against them.

General rules (all methods):

* **Users.** ``user`` is an authenticated user name; the store never checks
  credentials. Each user has a private hierarchy; nothing outside it is
  reachable by any name. A user's ``INBOX`` exists from the first call that
  names the user (RFC 3501 §5.1) and can never be deleted. A backend opened
  with default mailboxes (``sqlite.open_store(default_mailboxes=...)``, e.g.
  ``Sent`` with ``\\Sent``, RFC 6154) creates them, subscribed, at that
  first call too, once per user: one the user deletes is not recreated.
* **Names** are Unicode ``str`` with ``/`` as the hierarchy delimiter;
  ``INBOX`` (and the first level of ``INBOX/...``) is case-insensitive.
  Invalid names (see ``names.normalize_name``) raise ``ImapError`` NO
  [CANNOT] with the reason.
* **Errors** are ``imapd.core.errors.ImapError`` with RFC 5530 codes:
  NONEXISTENT (no such mailbox), TRYCREATE (APPEND/COPY/MOVE target missing,
  RFC 3501 §6.3.11, §6.4.7), ALREADYEXISTS, CANNOT, HASCHILDREN (RFC 9051
  §7.1), READ-ONLY (change through an EXAMINEd selection), LIMIT.
* **Durability.** When a mutating coroutine returns, its change is committed
  and synced to stable storage; a crash at any later moment does not lose
  it. A change that raised was not made at all (every call is atomic).
* **Identifiers.** UIDVALIDITY values are never reused by a user's
  mailboxes, so a name never shows the same UIDVALIDITY for different
  contents, even after DELETE + CREATE (RFC 3501 §2.3.1.1). UIDs are
  assigned in strictly ascending order and never reused within a
  UIDVALIDITY, even after expunge or restart. MODSEQs (RFC 7162 §3.1) are
  per mailbox, positive and increasing; every change to a message (append,
  flag change, expunge) gets a MODSEQ above every earlier one; the messages
  changed by one call share it; a STORE that changes nothing assigns none.
* **Change notification.** Every change is delivered to every ``Selection``
  of the mailbox (including the one that made it; see ``events``) in this
  process right after the change commits, and in other processes sharing
  the data directory on their next ``poll_changes``.
"""

from __future__ import annotations

import datetime
from typing import Iterable, Protocol, Sequence

from imapd.mail.events import Selection
from imapd.mail.flags import FlagOp
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MailboxInfo, MailboxStatus,
    MessageBody, MessageRecord, StoreResult,
)


class MailStore(Protocol):
    # --- mailboxes (RFC 3501 §6.3) ----------------------------------------

    async def list_mailboxes(
        self, user: str, reference: str, pattern: str, subscribed_only: bool = False
    ) -> list[MailboxInfo]:
        """LIST / LSUB (RFC 3501 §6.3.8, §6.3.9).

        ``reference`` and ``pattern`` are combined by concatenation; ``*``
        matches any characters, ``%`` any but ``/``. Results: INBOX first,
        then by name. LIST returns existing names including ``\\Noselect``
        placeholders. LSUB (``subscribed_only``) returns subscribed names
        whether or not they exist, plus — when ``%`` is in the pattern —
        unsubscribed superiors of subscribed names that match, with
        ``subscribed=False`` (they get ``\\Noselect``). An empty pattern
        returns ``[]``: the handler answers it with the delimiter and
        ``names.list_root(reference)`` (RFC 3501 §6.3.8).
        """
        ...

    async def create_mailbox(
        self, user: str, name: str, special_use: str | None = None
    ) -> None:
        """CREATE (RFC 3501 §6.3.3).

        A trailing ``/`` is dropped (it declares intent to create inferiors).
        Missing superiors are created as selectable mailboxes. A name held
        by a ``\\Noselect`` placeholder becomes a real mailbox. Raises
        ALREADYEXISTS if a mailbox by that name exists (INBOX always does).
        A new mailbox gets a fresh UIDVALIDITY, UIDNEXT 1 and HIGHESTMODSEQ 1.
        ``special_use`` (RFC 6154, e.g. ``"\\\\Sent"``; several attributes
        separated by spaces) is kept across RENAME and reported by LIST
        (``MailboxInfo.special_uses``); the caller validates it.
        """
        ...

    async def delete_mailbox(self, user: str, name: str) -> None:
        """DELETE (RFC 3501 §6.3.4).

        INBOX: CANNOT. Unknown name: NONEXISTENT. A mailbox with inferiors
        loses its messages and becomes a ``\\Noselect`` placeholder; a
        placeholder with inferiors cannot be deleted (HASCHILDREN). Otherwise
        the mailbox and its messages are removed, and superior placeholders
        left without inferiors disappear. Subscriptions are not touched
        (RFC 3501 §6.3.6). Selections of it receive ``MailboxDeleted``.
        """
        ...

    async def rename_mailbox(self, user: str, old: str, new: str) -> None:
        """RENAME (RFC 3501 §6.3.5).

        Moves ``old`` and all its inferiors to ``new`` keeping UIDVALIDITY,
        UIDs, flags and MODSEQs; creates missing superiors of ``new``;
        removes superior placeholders of ``old`` left without inferiors.
        ``old`` missing: NONEXISTENT; ``new`` existing (or INBOX):
        ALREADYEXISTS; ``new`` inside ``old``: CANNOT.

        Renaming INBOX moves all its messages into a new mailbox ``new``
        (fresh UIDVALIDITY; the UIDs are kept) and leaves INBOX existing and
        empty, with its UIDVALIDITY and UIDNEXT unchanged; INBOX's inferiors
        stay where they are. Subscriptions are not touched.
        """
        ...

    async def subscribe(self, user: str, name: str) -> None:
        """SUBSCRIBE (RFC 3501 §6.3.6): add a valid name to the subscription
        list, whether or not such a mailbox exists. Idempotent."""
        ...

    async def unsubscribe(self, user: str, name: str) -> None:
        """UNSUBSCRIBE (RFC 3501 §6.3.7). Idempotent: removing a name that is
        not subscribed succeeds."""
        ...

    async def subscriptions(self, user: str) -> list[str]:
        """The subscribed names (canonical spelling), sorted."""
        ...

    async def status(self, user: str, name: str) -> MailboxStatus:
        """STATUS (RFC 3501 §6.3.10, RFC 7162 §3.1.9 HIGHESTMODSEQ, RFC 8438
        SIZE: the sum of RFC822.SIZE). ``recent`` is the number of messages
        no read-write session has claimed yet. NONEXISTENT for unknown names
        and placeholders."""
        ...

    async def append(
        self,
        user: str,
        name: str,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime.datetime | None = None,
        meta: bytes = b"",
    ) -> AppendResult:
        """APPEND one message (RFC 3501 §6.3.11); see ``append_many``."""
        ...

    async def append_many(
        self, user: str, name: str, items: Sequence[AppendItem]
    ) -> AppendResult:
        """APPEND (RFC 3501 §6.3.11) and MULTIAPPEND (RFC 3502): all items or
        none. Each message gets the next UID, the given flags (``\\Recent``
        or unknown ``\\`` flags: BAD), internal date (timezone-aware; None =
        now) and a MODSEQ. The exact bytes are stored and later returned byte
        for byte; RFC822.SIZE is their length. The new messages are
        ``\\Recent`` for exactly one read-write session (RFC 3501 §2.3.2).
        Target missing or a placeholder: TRYCREATE. UID space exhausted: LIMIT.
        """
        ...

    async def select(self, user: str, name: str, readonly: bool) -> Selection:
        """SELECT / EXAMINE (RFC 3501 §6.3.1, §6.3.2).

        Returns a ``Selection`` whose snapshot lists the messages as of one
        committed state. A read-write selection claims every message not yet
        claimed as ``\\Recent`` (they are recent in it and in no other
        session), and later claims new messages it is told about if no
        session has claimed them. A read-only selection claims nothing: it
        reports unclaimed messages as recent without consuming them
        (RFC 3501 §6.3.2). NONEXISTENT for unknown names and placeholders.
        """
        ...

    # --- messages of a selected mailbox (RFC 3501 §6.4) --------------------
    # ``sel`` is a live Selection from this store. If its mailbox was
    # deleted these raise NONEXISTENT; mutations through a read-only
    # selection raise READ-ONLY. UIDs that no longer exist are skipped.

    async def fetch_records(
        self, sel: Selection, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        """The records of the given UIDs (all messages when None), ascending
        by UID. ``meta`` is filled only when ``with_meta``."""
        ...

    async def fetch_flags(
        self, sel: Selection, uids: Sequence[int] | None = None
    ) -> list[FlagState]:
        """Flags and MODSEQ of the given UIDs (all messages when None),
        ascending by UID: the cheap path for ``FETCH 1:* (FLAGS)`` and
        CONDSTORE's MODSEQ (RFC 7162 §3.1.4)."""
        ...

    async def read_message(
        self, sel: Selection, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        """The message's bytes exactly as appended, or the range
        ``[offset, offset+length)`` of them (clipped to the size); None if
        the message does not exist."""
        ...

    async def open_message(self, sel: Selection, uid: int) -> MessageBody | None:
        """A streamable handle on the message's bytes (for large literals,
        RFC 3501 §4.3), or None if the message does not exist."""
        ...

    async def store_flags(
        self,
        sel: Selection,
        uids: Sequence[int],
        op: FlagOp,
        flags: Iterable[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        """STORE (RFC 3501 §6.4.6) with optional UNCHANGEDSINCE (RFC 7162
        §3.1.3): messages whose MODSEQ is above it are not changed and are
        listed in ``modified``. Only messages whose flags change get a new
        MODSEQ. ``\\Recent`` or unknown ``\\`` flags: BAD. Other selections
        receive ``FlagsChanged``; ``sel`` receives it with ``own=True``.
        """
        ...

    async def expunge(self, sel: Selection, uids: Sequence[int] | None = None) -> list[int]:
        """EXPUNGE (RFC 3501 §6.4.3), or UID EXPUNGE (RFC 4315 §2.1) when
        ``uids`` is given: permanently remove the messages with ``\\Deleted``
        (among ``uids``). Returns the expunged UIDs ascending. Each is
        remembered with the expunge's MODSEQ (``expunged_since``). Every
        selection, ``sel`` included, receives ``MessagesExpunged``."""
        ...

    async def copy(self, sel: Selection, uids: Sequence[int], target: str) -> CopyResult:
        """COPY (RFC 3501 §6.4.7): atomically copy the messages, with flags
        and internal date, to ``target`` (which may be the selected mailbox)
        under new UIDs; the copies are ``\\Recent`` there. Target missing:
        TRYCREATE. Nothing to copy: an empty result."""
        ...

    async def move(self, sel: Selection, uids: Sequence[int], target: str) -> CopyResult:
        """MOVE (RFC 6851 §3.1): ``copy`` and expunge of the sources in one
        transaction; the sources get the expunge's MODSEQ in the history and
        every selection of the source, ``sel`` included, receives
        ``MessagesExpunged``. Moving into the selected mailbox itself gives
        the messages new UIDs."""
        ...

    async def changes_since(self, sel: Selection, modseq: int) -> list[FlagState]:
        """Messages whose MODSEQ is above ``modseq`` (RFC 7162 §3.1.4.1
        CHANGEDSINCE, §3.2.5 QRESYNC), ascending by UID."""
        ...

    async def expunged_since(self, sel: Selection, modseq: int) -> list[int]:
        """UIDs expunged with a MODSEQ above ``modseq``, ascending (RFC 7162
        §3.2.5.2 VANISHED (EARLIER)). History is kept for the life of the
        mailbox."""
        ...

    # --- process-level -----------------------------------------------------

    async def poll_changes(self) -> None:
        """Deliver changes committed by other processes since the last poll
        to this process's selections. Cheap when nothing changed; the server
        calls it on a short timer."""
        ...

    async def close(self) -> None:
        """Release the store's resources; selections stop receiving events."""
        ...

"""THE storage contract: what every storage engine implements.

``MailBackend`` is everything a storage engine (``imapd.storage.memory``,
``imapd.storage.sqlite``, later ``storage.postgres``) provides; the
docstrings ARE the contract and ``tests/mail/contract/`` checks every
backend against them, also wrapped so that each call yields to the reactor
before and after it. Hierarchy rules (RFC 3501 §6.3.3-§6.3.5), LIST
matching, name validation and ``\\Recent`` bookkeeping per session live in
``imapd.mail.service`` / ``imapd.mail.watch``, once, above every engine.

General rules:

* **Every call may really await** (a thread, a socket). Atomicity comes from
  the engine's transactions and compare-and-set (``claim_recent``,
  ``edit_tree``), never from a coroutine not yielding. Nothing that blocks
  (fsync, lock waits, large reads) may run on the caller's (reactor) thread.
* **Durability.** When a mutating call returns, its change is committed
  and synced to stable storage; a crash at any later moment does not lose
  it. A call that raised made no change at all.
* **Identity.** A mailbox is addressed by ``MailboxRef(id, uidvalidity)``
  obtained from ``lookup``/``mailboxes``. ``id`` is the engine's stable
  identity (kept across RENAME); a call on a ref whose mailbox no longer
  exists with that UIDVALIDITY raises ``NoSuchMailbox``.
* **Identifiers** (RFC 3501 §2.3.1.1, RFC 7162 §3.1): UIDVALIDITY values are
  never reused among a user's mailboxes, even after DELETE + CREATE. UIDs are
  assigned strictly ascending and never reused within a UIDVALIDITY, even
  after expunge or restart; commit order equals UID order (a lower UID never
  becomes visible after a higher one). MODSEQs are per mailbox, positive,
  increasing; every change to a message (append, flag change, expunge) gets
  a MODSEQ above every earlier one; the messages changed by one call share
  it; a call that changes nothing assigns none. A new mailbox starts with
  UIDNEXT 1 and HIGHESTMODSEQ 1.
* **Errors** are ``imapd.mail.errors`` (``NoSuchMailbox``, ``InvalidFlag``,
  ``OverLimit``, ``Unavailable`` ...), never protocol errors.
* **Doorbells.** After any committed change to a mailbox (messages, flags,
  expunges, rename, removal), ``feed`` rings every subscriber of that
  mailbox: for changes made through this backend object *before the mutating
  call returns*; for changes by other processes (or nodes) sharing the store
  within a short, bounded delay. Rings carry no data and may coalesce or
  repeat; the truth is ``changes_since``.
* The backend knows no sessions: it never records what a client was told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, Union

from imapd.mail.flags import FlagOp
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MailboxSnapshot, MailboxStatus,
    MessageBody, MessageRecord, StoreResult,
)


@dataclass(frozen=True, slots=True)
class MailboxRef:
    """A handle on one incarnation of a mailbox: the engine's id and the
    UIDVALIDITY it had when looked up."""

    id: int
    uidvalidity: int


@dataclass(frozen=True, slots=True)
class MailboxEntry:
    """One row of a user's mailbox tree. ``selectable`` False: a
    ``\\Noselect`` placeholder (RFC 3501 §6.3.4), which has no messages.
    ``special_use``: RFC 6154 attributes separated by spaces, or None."""

    id: int
    name: str
    selectable: bool
    uidvalidity: int
    special_use: str | None = None

    @property
    def ref(self) -> MailboxRef:
        return MailboxRef(self.id, self.uidvalidity)


# --- edits of a user's mailbox tree (planned by mail.hierarchy) -------------

@dataclass(frozen=True, slots=True)
class AddMailbox:
    """Add a mailbox ``name`` (no row by that name may exist): a fresh id, a
    UIDVALIDITY never used by this user, UIDNEXT 1, HIGHESTMODSEQ 1."""

    name: str
    selectable: bool = True
    special_use: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveMailbox:
    """Remove the row ``name`` with its messages and history; its ref stops
    working (``NoSuchMailbox``) and its subscribers are rung."""

    name: str


@dataclass(frozen=True, slots=True)
class RenameMailbox:
    """Give row ``old`` the name ``new`` (no row ``new`` may exist), keeping
    id, UIDVALIDITY, UIDs, flags, MODSEQs and special use; subscribers rung."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TransferMessages:
    """RENAME INBOX (RFC 3501 §6.3.5): move every message of ``source`` into
    the empty, just-added ``target`` keeping UIDs, flags, internal dates and
    sizes; ``target``'s UIDNEXT becomes ``source``'s. ``source`` keeps its
    UIDVALIDITY and UIDNEXT, and the moved messages are expunged from it
    under one new MODSEQ (its subscribers see them vanish)."""

    source: str
    target: str


TreeOp = Union[AddMailbox, RemoveMailbox, RenameMailbox, TransferMessages]
# Called inside the engine's transaction with the user's current tree;
# returns the edits to apply, or raises MailError to change nothing. Pure
# and quick: it may run on the engine's writer thread.
TreePlan = Callable[[Sequence[MailboxEntry]], Sequence[TreeOp]]


@dataclass(frozen=True, slots=True)
class QuotaInfo:
    """A user's quota root "" (RFC 9208 §3): usage and limits of the
    resources STORAGE (bytes: the sum of RFC822.SIZE over every message of
    every mailbox of the user; RFC 9208 §5.1 counts it in KiB, the protocol
    layer rounds) and MESSAGE (their number, §5.2). A limit None: unlimited."""

    storage_used: int
    storage_limit: int | None
    messages_used: int
    messages_limit: int | None


@dataclass(frozen=True, slots=True)
class Changes:
    """What ``changes_since(ref, modseq, uidnext)`` found, read in one
    consistent state.

    ``exists`` False: the mailbox was removed (or re-created with another
    UIDVALIDITY); every other field is then empty/zero. ``name`` is its
    current name (RENAME). ``changed``: messages with UID < the given
    uidnext whose MODSEQ is above the given modseq, ascending by UID.
    ``added``: messages with UID >= the given uidnext, ascending, with their
    flags. ``expunged``: (uid, modseq) of messages expunged with a MODSEQ above
    the given modseq (any UID), ascending by UID. ``recent_from``: the lowest
    UID no session has claimed as ``\\Recent``.
    """

    exists: bool
    name: str = ""
    highestmodseq: int = 0
    uidnext: int = 0
    recent_from: int = 0
    changed: tuple[FlagState, ...] = ()
    added: tuple[FlagState, ...] = ()
    expunged: tuple[tuple[int, int], ...] = ()


Ring = Callable[[int, int], None]  # (mailbox id, modseq or 0 for tree changes)


class ChangeFeed(Protocol):
    """Doorbells. ``subscribe(mailbox_id, ring)`` calls ``ring(mailbox_id,
    modseq)`` on the reactor thread after changes to that mailbox (see the
    module docstring: before the mutating call returns for this process's
    changes, within a bounded delay for others'). May coalesce or repeat.
    Returns the function that unsubscribes (idempotent)."""

    def subscribe(self, mailbox_id: int, ring: Ring) -> Callable[[], None]: ...


class MailBackend(Protocol):
    """See the module docstring for the rules every method follows."""

    feed: ChangeFeed

    # --- users and their mailbox trees -------------------------------------

    async def ensure_user(
        self, user: str, defaults: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        """Make sure ``user`` has a tree with ``INBOX`` (RFC 3501 §5.1) and
        provision each of ``defaults`` (name, special-use or None; RFC 6154)
        once per user ever, recorded durably in the same transaction: a
        default added to the configuration later reaches existing users at
        their next call; one the user deleted is not recreated. Provisioning
        creates the mailbox (and missing superiors) selectable and
        subscribed, unless some mailbox already has that special use; an
        existing mailbox by the default's name gets the attribute added.
        Idempotent and cheap (one read) once done."""
        ...

    async def mailboxes(self, user: str) -> list[MailboxEntry]:
        """Every row of the user's tree (placeholders included), by name."""
        ...

    async def lookup(self, user: str, name: str) -> MailboxEntry | None:
        """The row named exactly ``name`` (names are canonical: the service
        normalizes them), or None."""
        ...

    async def edit_tree(self, user: str, plan: TreePlan) -> None:
        """Run ``plan`` on the user's current tree and apply the edits it
        returns, in order, atomically and durably; no other edit of this
        user's tree interleaves. Raises what ``plan`` raises (nothing
        changed). Rings the subscribers of every mailbox removed or renamed,
        and of the source of ``TransferMessages``."""
        ...

    async def subscriptions(self, user: str) -> list[str]:
        """Subscribed names (RFC 3501 §6.3.6), sorted, whether or not they exist."""
        ...

    async def set_subscribed(self, user: str, name: str, subscribed: bool) -> None:
        """Add or remove ``name`` in the subscription list; idempotent, durable."""
        ...

    # --- whole accounts (``imapd user del`` / ``user rename``) ---------------

    async def delete_account(self, user: str) -> bool:
        """Remove everything ``user`` has: every mailbox with its messages
        and history, the subscriptions, the quota limits and usage, and the
        record of provisioned defaults, in one atomic, durable step; rings
        the subscribers of every mailbox removed (open watches see
        ``MailboxDeleted``). An account made later under the same name
        starts empty, gets the defaults again, and never sees a UIDVALIDITY
        of the old one (RFC 3501 §2.3.1.1: a client's cache of the old
        account is invalid). False when the user had nothing stored."""
        ...

    async def rename_account(self, old: str, new: str) -> bool:
        """Give everything ``old`` has (as ``delete_account`` lists it) to
        ``new`` in one atomic, durable step, keeping mailbox ids,
        UIDVALIDITY, UIDs and MODSEQs (a client's cache stays valid under
        the new name); rings the subscribers of every mailbox moved.
        ``new`` may already have an account without messages (a tree made
        by a login or a delivery attempt): it is replaced. ``AlreadyExists``
        when ``new`` has messages; ``Cannot`` when ``old == new``. False
        (nothing changed) when ``old`` had nothing stored."""
        ...

    # --- one mailbox --------------------------------------------------------

    async def status(self, ref: MailboxRef) -> MailboxStatus:
        """STATUS values (RFC 3501 §6.3.10, RFC 7162 §3.1.9, RFC 8438 SIZE);
        ``recent`` counts messages no session has claimed yet."""
        ...

    async def snapshot(self, ref: MailboxRef) -> tuple[MailboxSnapshot, int]:
        """The mailbox as of one committed state, for SELECT (RFC 3501
        §6.3.1): the snapshot with ``recent`` empty (sessions own \\Recent,
        see ``claim_recent``), and ``recent_from`` (lowest unclaimed UID)."""
        ...

    async def claim_recent(self, ref: MailboxRef, uidnext: int) -> tuple[int, int] | None:
        """Compare-and-set for ``\\Recent`` (RFC 3501 §2.3.2): atomically claim
        every unclaimed UID below ``uidnext`` for the caller; returns the
        claimed inclusive range (low, high), or None when nothing below
        ``uidnext`` was unclaimed. Across all processes each UID is claimed at
        most once. Not necessarily synced to disk (\\Recent is per session)."""
        ...

    async def append(
        self, ref: MailboxRef, items: Sequence[AppendItem], claim: bool = False
    ) -> AppendResult:
        """APPEND (RFC 3501 §6.3.11) / MULTIAPPEND (RFC 3502): all items or
        none, consecutive new UIDs in the order given, one new MODSEQ. Flags
        are stored as given (the service validated them); internal date
        timezone-aware (None = now); exact bytes kept, RFC822.SIZE is their
        length; ``meta`` stored opaque. ``claim``: in the same transaction
        claim the new (and any older unclaimed) UIDs as ``\\Recent`` for the
        caller (``AppendResult.claimed``). UID space exhausted: OverLimit.
        Quota (RFC 9208 §5): if the user's usage plus the items would pass
        a limit, OverQuota and nothing stored; the check and the insert are
        one transaction, so concurrent appends never pass a limit together."""
        ...

    async def fetch_records(
        self, ref: MailboxRef, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        """Records of the existing ``uids`` (all when None), ascending;
        ``meta`` only when ``with_meta``."""
        ...

    async def sort_facts(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        """SORT and THREAD's facts (RFC 5256; ``imapd.message.sortfacts``)
        of the existing ``uids``, by UID, as the engine computed them from
        the message and its ``meta`` when it was stored (``sortfacts.
        facts_for``); a message without stored facts (stored before the
        engine kept them, or too large to hold in memory) is left out and
        the caller computes them. Never changes anything."""
        ...

    async def fetch_flags(
        self, ref: MailboxRef, uids: Sequence[int] | None = None
    ) -> list[FlagState]:
        """Flags and MODSEQ of the existing ``uids`` (all when None), ascending."""
        ...

    async def read_message(
        self, ref: MailboxRef, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        """The exact bytes, or ``[offset, offset+length)`` of them clipped to
        the size; None if the message does not exist."""
        ...

    async def read_messages(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole bytes of each existing message of ``uids``, by UID, from
        one consistent read (one or two queries for the batch, not one per
        message); messages that do not exist are left out. The caller bounds
        the batch by the records' total size (the bytes are all in memory at
        once). Never changes anything."""
        ...

    async def open_message(self, ref: MailboxRef, uid: int) -> MessageBody | None:
        """A streamable handle on the message's bytes from a consistent
        snapshot (an expunge meanwhile does not cut it short), or None."""
        ...

    async def store_flags(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        op: FlagOp,
        flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        """STORE (RFC 3501 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3):
        messages whose MODSEQ is above it are left alone and listed in
        ``modified``; only messages whose flags change get the new MODSEQ."""
        ...

    async def expunge(self, ref: MailboxRef, uids: Sequence[int] | None = None) -> list[int]:
        """Remove the messages flagged ``\\Deleted`` (among ``uids`` when
        given: UID EXPUNGE, RFC 4315 §2.1); returns their UIDs ascending, each
        remembered with the expunge's MODSEQ for ``changes_since``."""
        ...

    async def store_and_expunge(
        self, ref: MailboxRef, uids: Sequence[int], flags: Sequence[str],
        expunge: Sequence[int],
    ) -> list[int]:
        """POP3's UPDATE state (RFC 1939 §6) in one atomic, durable step
        (one commit, one sync): add ``flags`` (validated by the service) to
        the existing messages among ``uids`` that are not also in
        ``expunge``, and remove the existing messages among ``expunge``
        whatever their flags (the caller marked exactly those: RFC 4315
        §2.1 semantics, so a message flagged ``\\Deleted`` by someone else
        stays). Messages whose flags change and those removed share one new
        MODSEQ (none when nothing changed); the removed are remembered with
        it for ``changes_since`` as an ``expunge`` would. Rings the
        mailbox's subscribers once. Returns the UIDs removed, ascending."""
        ...

    async def copy(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        target: MailboxRef,
        move: bool = False,
        claim: bool = False,
    ) -> CopyResult:
        """COPY (RFC 3501 §6.4.7) / MOVE (RFC 6851 §3.1) of the existing
        ``uids`` into ``target`` (may be ``ref`` itself) under new UIDs, with
        flags and internal dates, atomically; MOVE also expunges the sources
        in the same transaction. ``claim`` as for ``append``. A missing target:
        NoSuchMailbox (the service reports TargetMissing). Quota as for
        ``append`` (a copy counts again); a MOVE between mailboxes of one
        user changes no usage and is never refused for quota."""
        ...

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        """The one catch-up primitive (RFC 7162 §3.1.4.1, §3.2.5): see
        ``Changes``. Never raises NoSuchMailbox: a vanished mailbox is
        ``Changes(exists=False)``. Expunge history is kept for the life of
        the mailbox."""
        ...

    async def text_candidates(
        self, ref: MailboxRef, scope: str, folded: str
    ) -> frozenset[int] | None:
        """A full-text index's push-down for SEARCH's string keys (RFC 3501
        §6.4.4). ``scope``: "TEXT", "BODY" or "HEADER" (SUBJECT, FROM, TO,
        CC, BCC and HEADER field); ``folded``: the search string already
        folded with ``imapd.message.casemap.fold`` (RFC 5051). Returns UIDs
        of the mailbox's messages that MAY match: every message whose
        decoded text in that scope (``imapd.message.searchtext``) contains
        ``folded`` must be in it, others may be; the caller confirms each
        candidate exactly. Optional: an engine without an index (or with a
        needle too short for it) answers None and the caller evaluates every
        message. Never changes anything.

        An engine whose index can also confirm matches may offer
        ``text_matches(ref, scope, folded) -> (sure, maybe) | None``: UIDs
        that certainly match and UIDs still to confirm (the SQLite and
        PostgreSQL engines for TEXT, whose indexed column is exactly the
        text SEARCH TEXT compares). It is optional and looked up at run
        time (``MailboxWatch.text_matches``), so it is not a member here."""
        ...

    # --- quota (RFC 9208) ---------------------------------------------------

    async def quota(self, user: str) -> QuotaInfo:
        """The user's usage and limits, read in one consistent state (a
        user without a tree has zero usage)."""
        ...

    async def set_quota(self, user: str, storage: int | None, messages: int | None) -> None:
        """Set both limits of the user (None: unlimited); durable. Usage
        already above a new limit is kept (RFC 9208 §4.1.4: only new
        additions are refused)."""
        ...

    async def close(self) -> None:
        """Release everything; pending writes finish first; feeds stop."""
        ...

"""MailService: the mail rules every protocol uses, once, over any backend.

Hierarchy and subscription rules (RFC 3501 §6.3.3-§6.3.9, planned in
``imapd.mail.hierarchy`` and applied with ``MailBackend.edit_tree``), name
validation (``imapd.mail.names``), STATUS, ``open`` (a ``MailboxWatch``), and
``deliver`` = message analysis + one durable append (group commit is the
backend's: concurrent deliveries share commits). IMAP APPEND uses
``deliver`` now; LMTP, POP3 and admin use the same service next.

Errors are ``imapd.mail.errors``; names are Unicode with ``/`` as the
hierarchy delimiter, ``INBOX`` case-insensitive (see ``names``). An invalid
name is Cannot (RFC 5530 CANNOT) with the reason ``names`` gives.

``\\Recent`` (RFC 3501 §2.3.2): the service knows this process's open
watches; new messages (``deliver``, COPY/MOVE through a watch) are claimed
in the backend's transaction for the longest-open read-write watch of the
target, if there is one; otherwise the first read-write watch to catch up
claims them (``MailboxWatch.catch_up``). Across processes the backend's
compare-and-set makes each UID recent in at most one session.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Awaitable, Callable, Sequence, TypeVar, cast

from imapd.core.errors import ImapError
from imapd.core.runtime import Runtime, Signal
from imapd.mail import hierarchy, names
from imapd.mail.backend import Changes, MailBackend, MailboxEntry, MailboxRef, QuotaInfo
from imapd.mail.errors import Cannot, MailError, NoSuchMailbox, OverLimit, TargetMissing
from imapd.mail.records import AppendItem, AppendResult, CopyResult, MailboxInfo, MailboxStatus
from imapd.mail.watch import MailboxWatch, check_flags, claim_or_none
from imapd.message import analyze

# Messages above this size are analysed in a worker thread (``Runtime``) so a
# large delivery does not stall every other connection; small ones are
# cheaper inline than the thread hand-off.
THREAD_ANALYSIS_THRESHOLD = 256 * 1024

E = TypeVar("E", bound=MailError)
R = TypeVar("R", AppendResult, CopyResult)


def analysis_blob(message: object) -> bytes:
    """The stored MIME analysis (``MessageInfo.to_bytes()``) of a message;
    a ``SpooledLiteral`` is analysed in place (it reads like bytes)."""
    return analyze(cast(bytes, message)).to_bytes()


def _valid(normalize: Callable[[str], str], name: str, error: type[E]) -> str:
    """``normalize(name)``, its ImapError turned into the mail ``error``."""
    try:
        return normalize(name)
    except ImapError as failure:
        raise error(failure.text) from None


class MailService:
    """See the module docstring. ``runtime`` runs the analysis of large
    messages off the reactor thread (None: inline). ``default_mailboxes``:
    (name, special-use or None) created once per user (RFC 6154)."""

    def __init__(
        self,
        backend: MailBackend,
        runtime: Runtime | None = None,
        default_mailboxes: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        self.backend = backend
        self.runtime = runtime
        self.default_mailboxes = tuple(
            (self._default_name(name), use) for name, use in default_mailboxes
        )
        self._ensured: set[str] = set()
        # Open watches by mailbox id, in opening order (the first read-write
        # one is the claimer of new messages in this process).
        self._watches: dict[int, list[MailboxWatch]] = {}
        # Shared catch-up reads (``changes_for``): doorbells heard per
        # mailbox, and the last read with the ring count it was made at.
        self._rings: dict[int, int] = {}
        self._last_read: dict[int, tuple[int, tuple[int, int, int], Changes]] = {}
        # The shared read in flight per mailbox: (rings, key, fired when done).
        self._reading: dict[int, tuple[int, tuple[int, int, int], Signal]] = {}

    @staticmethod
    def _default_name(name: str) -> str:
        canonical = names.normalize_name(name)  # ImapError: a configuration error
        if canonical == names.INBOX:
            raise ValueError("INBOX cannot be a default mailbox")
        return canonical

    async def _user(self, user: str) -> None:
        """``ensure_user`` before the user's first operation (RFC 3501
        §5.1: INBOX exists); once per user and service."""
        if user not in self._ensured:
            await self.backend.ensure_user(user, self.default_mailboxes)
            self._ensured.add(user)

    async def _lookup(self, user: str, name: str) -> MailboxEntry | None:
        """``backend.lookup``; a missing INBOX of a user this service
        ensured means another process deleted or renamed the account
        since (``imapd user del``): the account of that name is new, and
        INBOX always exists (RFC 3501 §5.1), so it is provisioned afresh."""
        entry = await self.backend.lookup(user, name)
        if entry is None and name == names.INBOX and user in self._ensured:
            self._ensured.discard(user)
            await self._user(user)
            entry = await self.backend.lookup(user, name)
        return entry

    # --- the hierarchy (RFC 3501 §6.3.3-§6.3.9) -------------------------------

    async def list_mailboxes(
        self, user: str, reference: str, pattern: str, subscribed_only: bool = False
    ) -> list[MailboxInfo]:
        """LIST / LSUB (RFC 3501 §6.3.8, §6.3.9): INBOX first, then by
        name (see ``hierarchy.list_mailboxes``). Pattern work past the budget of
        ``listpattern``: OverLimit."""
        await self._user(user)
        if pattern == "":
            return []
        tree = await self.backend.mailboxes(user)
        if not any(entry.name == names.INBOX for entry in tree):
            await self._lookup(user, names.INBOX)  # re-provisions (see there)
            tree = await self.backend.mailboxes(user)
        subscribed = await self.backend.subscriptions(user)
        try:
            return hierarchy.list_mailboxes(tree, subscribed, reference, pattern,
                                            subscribed_only)
        except ImapError as failure:
            raise OverLimit(failure.text) from None

    async def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> None:
        """CREATE (RFC 3501 §6.3.3): see ``hierarchy``. A trailing ``/`` is
        dropped; ``special_use`` (RFC 6154) is validated by the caller."""
        await self._user(user)
        name = _valid(names.normalize_create_name, name, Cannot)
        await self.backend.edit_tree(user, hierarchy.plan_create(name, special_use))

    async def delete_mailbox(self, user: str, name: str) -> None:
        """DELETE (RFC 3501 §6.3.4): see ``hierarchy``."""
        await self._user(user)
        name = _valid(names.normalize_name, name, Cannot)
        await self.backend.edit_tree(user, hierarchy.plan_delete(name))

    async def rename_mailbox(self, user: str, old: str, new: str) -> None:
        """RENAME (RFC 3501 §6.3.5), RENAME INBOX included: see ``hierarchy``."""
        await self._user(user)
        old = _valid(names.normalize_name, old, Cannot)
        new = _valid(names.normalize_name, new, Cannot)
        await self.backend.edit_tree(user, hierarchy.plan_rename(old, new))

    async def subscribe(self, user: str, name: str) -> None:
        """SUBSCRIBE (RFC 3501 §6.3.6): any valid name, existing or not."""
        await self._user(user)
        await self.backend.set_subscribed(user, _valid(names.normalize_name, name, Cannot), True)

    async def unsubscribe(self, user: str, name: str) -> None:
        """UNSUBSCRIBE (RFC 3501 §6.3.7); idempotent."""
        await self._user(user)
        await self.backend.set_subscribed(user, _valid(names.normalize_name, name, Cannot), False)

    async def subscriptions(self, user: str) -> list[str]:
        await self._user(user)
        return await self.backend.subscriptions(user)

    async def quota(self, user: str) -> QuotaInfo:
        """The user's quota root "" (RFC 9208 §3): usage and limits."""
        return await self.backend.quota(user)

    async def set_quota(self, user: str, storage: int | None, messages: int | None) -> None:
        """Set the user's limits (operators: CLI, admin SETQUOTA; RFC 9208
        §4.1.4). Negative limits are refused (Cannot)."""
        if (storage is not None and storage < 0) or (messages is not None and messages < 0):
            raise Cannot("Quota limits cannot be negative")
        await self.backend.set_quota(user, storage, messages)

    async def status(self, user: str, name: str) -> MailboxStatus:
        """STATUS (RFC 3501 §6.3.10); NoSuchMailbox for unknown names and
        placeholders."""
        await self._user(user)
        name = _valid(names.normalize_name, name, Cannot)
        entry = await self._lookup(user, name)
        if entry is None or not entry.selectable:
            raise NoSuchMailbox(f"Mailbox does not exist: {name}")
        return await self.backend.status(entry.ref)

    # --- whole accounts (``imapd user del`` / ``user rename``) ---------------------

    async def delete_account(self, user: str) -> bool:
        """Remove the user's mail, subscriptions and quota
        (``MailBackend.delete_account``); open watches of its mailboxes see
        ``MailboxDeleted``. False when there was nothing stored."""
        self._ensured.discard(user)
        return await self.backend.delete_account(user)

    async def rename_account(self, old: str, new: str) -> bool:
        """Move the user's mail, subscriptions and quota to ``new``
        (``MailBackend.rename_account``; ``AlreadyExists`` when ``new`` has
        mail). False when ``old`` had nothing stored."""
        self._ensured.discard(old)
        self._ensured.discard(new)
        return await self.backend.rename_account(old, new)

    # --- messages in -------------------------------------------------------------

    async def target_entry(self, user: str, name: str) -> MailboxEntry:
        """The selectable mailbox ``name`` as an APPEND/COPY/MOVE target, or
        TargetMissing (RFC 3501 §6.3.11, §6.4.7: NO [TRYCREATE])."""
        await self._user(user)
        name = _valid(names.normalize_name, name, Cannot)
        entry = await self._lookup(user, name)
        if entry is None or not entry.selectable:
            raise TargetMissing(f"Mailbox does not exist: {name}")
        return entry

    async def deliver(self, user: str, name: str, items: Sequence[AppendItem]) -> AppendResult:
        """Analyse each message (``imapd.message.analyze``; the blob becomes
        ``meta``, large messages analysed via ``runtime.in_thread``; an item
        that already carries ``meta`` keeps it) and append them all in one
        atomic, durable call; the new messages are ``\\Recent`` for exactly
        one session (the longest-open read-write watch of the target in
        this process claims them in the same transaction, else the first
        session to catch up). Target missing or a placeholder:
        TargetMissing; bad flags: InvalidFlag."""
        for item in items:
            check_flags(item.flags)
        entry = await self.target_entry(user, name)
        analysed = [await self._analysed(item) for item in items]
        try:
            return await self.claiming(
                entry.id, lambda claim: self.backend.append(entry.ref, analysed, claim))
        except NoSuchMailbox:
            raise TargetMissing(f"Mailbox does not exist: {entry.name}") from None

    async def _analysed(self, item: AppendItem) -> AppendItem:
        if item.meta:
            return item
        if self.runtime is not None and len(item.message) > THREAD_ANALYSIS_THRESHOLD:
            meta = await self.runtime.in_thread(analysis_blob, item.message)
        else:
            meta = analysis_blob(item.message)
        return AppendItem(item.message, item.flags, item.internal_date, meta)

    # --- open mailboxes ------------------------------------------------------------

    async def open(self, user: str, name: str, readonly: bool) -> MailboxWatch:
        """SELECT / EXAMINE (RFC 3501 §6.3.1, §6.3.2): a watch on the mailbox
        as of one committed state; read-write claims unclaimed messages as
        \\Recent. NoSuchMailbox for unknown names and placeholders."""
        await self._user(user)
        name = _valid(names.normalize_name, name, Cannot)
        entry = await self._lookup(user, name)
        if entry is None or not entry.selectable:
            raise NoSuchMailbox(f"Mailbox does not exist: {name}")
        watch = MailboxWatch(self, user, entry.name, readonly, entry.ref)
        # Registered and listening before the snapshot: a delivery meanwhile
        # either is in the snapshot or rings / is claimed for this watch.
        self._watches.setdefault(entry.id, []).append(watch)
        watch._subscribe()
        try:
            snapshot, recent_from = await self.backend.snapshot(entry.ref)
            if not readonly:
                watch.add_claim(await claim_or_none(self.backend, entry.ref, snapshot.uidnext))
        except BaseException:
            watch.close()
            raise
        watch._start(snapshot, recent_from)
        return watch

    def heard_ring(self, mailbox_id: int) -> None:
        """A watch of ``mailbox_id`` heard the doorbell: reads made before
        it may be stale, so they are no longer shared."""
        self._rings[mailbox_id] = self._rings.get(mailbox_id, 0) + 1
        self._last_read.pop(mailbox_id, None)

    async def changes_for(
        self, ref: MailboxRef, modseq: int, uidnext: int, at_least: int = 0
    ) -> Changes:
        """``MailBackend.changes_since`` shared by this process's watches of
        one mailbox: after one commit every watch of it (10,000 idlers on one
        INBOX) asks the same question at the same state, and one read answers
        them all. A read is reused only until the next doorbell of that
        mailbox, and only when no doorbell rang while it was made, so a
        watch never gets an answer older than a ring it has heard; changes
        that have not rung yet ring later and are caught up then.

        ``at_least``: a HIGHESTMODSEQ the caller has already read itself
        (``MailboxWatch.history``). A commit is visible to reads before its
        doorbell is heard, so a shared read made before it can still be
        "current" by the ring count; it is not reused for such a caller,
        whose fresh read is then at least as new as what it saw."""
        key = (ref.uidvalidity, modseq, uidnext)
        while True:
            rings = self._rings.get(ref.id, 0)
            last = self._last_read.get(ref.id)
            if (last is not None and last[0] == rings and last[1] == key
                    and last[2].highestmodseq >= at_least):
                return last[2]
            flight = self._reading.get(ref.id)
            if flight is None or flight[0] != rings or flight[1] != key:
                break
            # The same question at the same state is being read (an engine
            # that reads on other threads: every idler asks at once): wait
            # for that read, then look again.
            await flight[2].wait()
        return await self._read_shared(ref, modseq, uidnext, rings, key)

    async def _read_shared(
        self, ref: MailboxRef, modseq: int, uidnext: int, rings: int, key: tuple[int, int, int]
    ) -> Changes:
        """One ``changes_since`` that later callers at the same state share:
        kept while no doorbell rang; callers waiting for it are woken after
        it is kept (or failed: they then read themselves)."""
        flight = None if self.runtime is None else (rings, key, self.runtime.signal())
        if flight is not None:
            self._reading[ref.id] = flight
        try:
            changes = await self.backend.changes_since(ref, modseq, uidnext)
            if self._rings.get(ref.id, 0) == rings:
                self._last_read[ref.id] = (rings, key, changes)
            return changes
        finally:
            if flight is not None:
                if self._reading.get(ref.id) is flight:
                    del self._reading[ref.id]
                flight[2].fire()

    def heard_claim(self, mailbox_id: int, claimed: tuple[int, int] | None) -> None:
        """A watch claimed ``claimed`` as \\Recent: a shared read must not
        offer those UIDs as unclaimed to the next watch."""
        last = self._last_read.get(mailbox_id)
        if claimed is not None and last is not None:
            changes = last[2]
            recent_from = max(changes.recent_from, claimed[1] + 1)
            self._last_read[mailbox_id] = (last[0], last[1], replace(changes, recent_from=recent_from))

    def claimer(self, mailbox_id: int) -> MailboxWatch | None:
        """The watch that claims new messages of the mailbox in this
        process: the longest-open read-write one."""
        for watch in self._watches.get(mailbox_id, ()):
            if not watch.readonly and not watch.closed:
                return watch
        return None

    async def claiming(self, mailbox_id: int, call: Callable[[bool], Awaitable[R]]) -> R:
        """Run an APPEND/COPY/MOVE into ``mailbox_id`` (``call(claim)``) that
        claims the new messages for this process's claimer, if any, in the
        backend's transaction, and hand the claimed range to that watch.

        While the call is in flight the claimer's ``pending_claims`` is
        raised: the doorbell rings before the call returns, and a catch-up
        in between would otherwise see the new UIDs claimed by nobody it
        knows and report them as not recent (``MailboxWatch.catch_up``
        waits for the pending claim instead). If the claimer closed
        meanwhile the next one gets the range; with none, those messages
        are recent nowhere, which RFC 3501 §2.3.2 allows for a session
        that is gone."""
        claimer = self.claimer(mailbox_id)
        if claimer is None:
            return await call(False)
        claimer.pending_claims += 1
        try:
            result = await call(True)
        except BaseException:
            claimer.pending_claims -= 1
            claimer.settle()
            raise
        claimer.pending_claims -= 1
        if result.claimed is not None:
            owner = claimer if not claimer.closed else self.claimer(mailbox_id)
            if owner is not None:
                owner.add_claim(result.claimed)
        # Only now: a catch-up waiting for this claim re-checks with it added.
        claimer.settle()
        return result

    def watches(self, mailbox_id: int) -> list[MailboxWatch]:
        """This service's open watches of a mailbox, in opening order."""
        return list(self._watches.get(mailbox_id, ()))

    def forget(self, watch: MailboxWatch) -> None:
        """Called by ``MailboxWatch.close``."""
        watches = self._watches.get(watch.ref.id)
        if watches is not None and watch in watches:
            watches.remove(watch)
            if not watches:
                # Nobody watches it any more: its shared read (which may
                # hold a whole mailbox's flag changes) and ring count go too.
                del self._watches[watch.ref.id]
                self._rings.pop(watch.ref.id, None)
                self._last_read.pop(watch.ref.id, None)

    async def close(self) -> None:
        """Close every open watch and the backend."""
        for watches in list(self._watches.values()):
            for watch in list(watches):
                watch.close()
        await self.backend.close()

"""MailboxWatch: the protocol-neutral catch-up state of one open mailbox.

``MailService.open`` returns one per session that opens a mailbox (IMAP
SELECT/EXAMINE, later a POP3 maildrop). It knows the state the session was
last brought to (HIGHESTMODSEQ, UIDNEXT, the UIDs it knows), the UID ranges
it claimed as ``\\Recent`` (RFC 3501 §2.3.2), and whether the doorbell rang
since it last caught up. It knows nothing of any protocol: what a client was
*told* is the protocol view's business (``imapd.imap.session.view``).

Changes reach the session only through ``catch_up()``: the doorbell
(``MailBackend.feed``) just sets ``rang`` and calls ``on_ring``; the session
then awaits ``catch_up()`` at a moment its protocol allows. No session ever
writes to another session's connection.

Every change is reported by ``catch_up``, the session's own included
(its STORE, EXPUNGE, MOVE): the view knows what it already told the client
and drops what is not news.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from imapd.core.runtime import Signal
from imapd.core.errors import ImapError
from imapd.mail.backend import Changes, MailBackend, MailboxRef
from imapd.mail.errors import (
    InvalidFlag, NoSuchMailbox, ReadOnly, StorageFull, TargetMissing, Unavailable,
)
from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged,
)
from imapd.mail.flags import FlagOp, split_flags
from imapd.mail.records import (
    CopyResult, FlagState, MailboxSnapshot, MessageBody, MessageRecord, StoreResult,
)

if TYPE_CHECKING:
    from imapd.mail.service import MailService

# Above every UID (RFC 3501 §9 nz-number): ``changes_since`` with this
# UIDNEXT reports every changed message as ``changed``.
_BEYOND_UIDS = 2**32


def check_flags(flags: Sequence[str]) -> None:
    """``\\Recent``, unknown system flags and malformed keywords are
    InvalidFlag (RFC 3501 §2.3.2, §9 flag-keyword)."""
    try:
        split_flags(flags)
    except ImapError as error:
        raise InvalidFlag(error.text) from None


def _keywords_of(states: Sequence[FlagState]) -> tuple[str, ...]:
    """The distinct keywords of ``states``, in first-seen order."""
    found: dict[str, None] = {}
    for state in states:
        for flag in state.flags:
            if not flag.startswith("\\"):
                found.setdefault(flag, None)
    return tuple(found)


async def claim_or_none(
    backend: MailBackend, ref: MailboxRef, uidnext: int
) -> tuple[int, int] | None:
    """``claim_recent``, or None (nothing recent in this session) when the
    claim cannot be written: disk full, or the store busy past its bounded
    wait (issue 13). The claim is a write, but SELECT and a catch-up are
    reads that must keep working; the messages stay unclaimed for the next
    session (RFC 3501 §2.3.2; \\Recent is advisory, RFC 9051 dropped it)."""
    try:
        return await backend.claim_recent(ref, uidnext)
    except (StorageFull, Unavailable):
        return None


class MailboxWatch:
    """One session's open mailbox. Built by ``MailService.open``.

    Attributes: ``user``; ``name`` (current; follows RENAME once caught
    up); ``readonly``; ``ref``; ``snapshot`` (as opened, with ``recent`` =
    the UIDs recent in this session); ``highestmodseq`` and ``uidnext`` (as
    caught up); ``deleted`` (the mailbox went away); ``rang`` (a doorbell
    rang since the last ``catch_up``); ``on_ring`` (called on the reactor
    thread when it rings; must only schedule work, never write to a client);
    ``claimed``: the inclusive UID ranges this session owns as ``\\Recent``;
    ``pending_claims``: claiming APPEND/COPY calls in flight for it.
    """

    user: str
    name: str
    readonly: bool
    ref: MailboxRef
    snapshot: MailboxSnapshot
    highestmodseq: int
    deleted: bool
    rang: bool
    on_ring: Callable[[], None] | None

    def __init__(
        self, service: MailService, user: str, name: str, readonly: bool, ref: MailboxRef
    ) -> None:
        """Internal: ``MailService.open`` builds, subscribes and starts it."""
        self._service = service
        self._backend: MailBackend = service.backend
        self.user = user
        self.name = name
        self.readonly = readonly
        self.ref = ref
        self.highestmodseq = 0
        self.uidnext = 0
        self.deleted = False
        self.closed = False
        self.rang = False
        self.on_ring = None
        self.claimed: list[tuple[int, int]] = []
        # APPEND/COPY calls in flight that will hand this watch a claim
        # (``MailService.claiming``).
        self.pending_claims = 0
        self._busy = False
        # Fired when a catch-up ends or a pending claim is handed over: what
        # a second catch-up waits for (``_settled``). Made on first need.
        self._settled_signal: Signal | None = None
        # The highest HIGHESTMODSEQ this watch has read directly
        # (``history``): its next catch-up must not be older (``_catch_up``).
        self._seen_modseq = 0
        self._unsubscribe: Callable[[], None] | None = None

    # --- life cycle (MailService) --------------------------------------------

    def _subscribe(self) -> None:
        """Listen before the snapshot is read, so no ring is lost."""
        self._unsubscribe = self._backend.feed.subscribe(self.ref.id, self._ring)

    def _start(self, snapshot: MailboxSnapshot, recent_from: int) -> None:
        """Adopt the snapshot: the UIDs this session claimed are recent in
        it (read-write), or the unclaimed ones (read-only, RFC 3501 §6.3.2)."""
        if self.readonly:
            recent = frozenset(u for u in snapshot.uids if u >= recent_from)
        else:
            recent = frozenset(u for u in snapshot.uids if self.owns_recent(u))
        self.snapshot = MailboxSnapshot(
            snapshot.uidvalidity, snapshot.uidnext, snapshot.highestmodseq, snapshot.uids,
            recent, snapshot.keywords, snapshot.first_unseen,
        )
        self.highestmodseq = snapshot.highestmodseq
        self.uidnext = snapshot.uidnext

    def _ring(self, mailbox_id: int, modseq: int) -> None:
        if self.closed:
            return
        self._service.heard_ring(mailbox_id)
        self.rang = True
        if self.on_ring is not None:
            self.on_ring()

    def add_claim(self, claimed: tuple[int, int] | None) -> None:
        """Record a ``\\Recent`` claim made for this session (at open, by
        ``claim_recent`` or in an APPEND/COPY transaction)."""
        if claimed is None or claimed[1] < claimed[0]:
            return
        low, high = claimed
        if self.claimed and self.claimed[-1][1] + 1 >= low:
            last_low, last_high = self.claimed[-1]
            self.claimed[-1] = (min(last_low, low), max(high, last_high))
        else:
            self.claimed.append((low, high))

    def owns_recent(self, uid: int) -> bool:
        return any(low <= uid <= high for low, high in self.claimed)

    @property
    def uidvalidity(self) -> int:
        return self.ref.uidvalidity

    # --- catching up -----------------------------------------------------------

    async def catch_up(self) -> list[ChangeEvent]:
        """Bring the watch up to date with one ``changes_since`` and return
        the changes as one batch in the order ``imapd.mail.events``
        describes (expunges, flag changes, additions with the subset recent
        in this session, rename, delete). A read-write watch claims new
        unclaimed messages (``claim_recent``); a read-only one reports
        unclaimed ones as recent without claiming (RFC 3501 §6.3.2). Safe to
        call when nothing changed (returns []); concurrent calls are
        serialized (a second caller waits for the first to finish, then
        reads itself; waiting needs ``MailService.runtime``). Clears
        ``rang`` before reading, so a ring during the read is not lost. New
        UIDs that a claiming APPEND/COPY in flight may hand to this watch
        are reported once that call has returned (``MailService.claiming``)."""
        return (await self._serialized(None))[0]

    async def catch_up_with_history(
        self, modseq: int
    ) -> tuple[list[ChangeEvent], list[FlagState], list[int]]:
        """``catch_up`` plus, from the SAME read, what ``history_since(modseq)``
        answers (messages of any UID changed above ``modseq``, UIDs expunged
        above it): QRESYNC's resynchronisation (RFC 7162 §3.2.5.2) must
        describe exactly the state the watch is then at, whose
        HIGHESTMODSEQ, EXISTS and UIDs the selection announces. Two reads
        cannot promise that: another session can commit between them, and
        with an engine that reads on other threads (PostgreSQL's pool) a
        commit is visible before its doorbell rings here. With ``modseq``
        above the watch's own, the history is read from the watch's."""
        return await self._serialized(modseq)

    async def _serialized(
        self, history_from: int | None
    ) -> tuple[list[ChangeEvent], list[FlagState], list[int]]:
        while self._busy:
            await self._settled()
        if self.closed:
            return [], [], []
        self._busy = True
        try:
            return await self._catch_up(history_from)
        except BaseException:
            # The read failed (store down: Unavailable): what rang is still
            # unread, so the next command or IDLE turn must try again. Left
            # cleared, a session would never see its own APPEND (and a
            # UID STORE on it would match nothing) until another change.
            self.rang = True
            raise
        finally:
            self._busy = False
            self.settle()

    def _settled(self) -> Awaitable[None]:
        """Until the next ``settle``: a catch-up ended or a claim in flight
        was handed over (waiting needs ``MailService.runtime``)."""
        if self._settled_signal is None:
            runtime = self._service.runtime
            if runtime is None:
                raise RuntimeError("concurrent catch_up needs MailService(runtime=...)")
            self._settled_signal = runtime.signal()
        return self._settled_signal.wait()

    def settle(self) -> None:
        """Wake the callers waiting in ``_settled`` to re-check."""
        if self._settled_signal is not None:
            self._settled_signal.fire()

    async def _catch_up(
        self, history_from: int | None
    ) -> tuple[list[ChangeEvent], list[FlagState], list[int]]:
        self.rang = False
        since = self.highestmodseq
        if history_from is not None:
            # One read from the lower MODSEQ answers both (filtered below).
            since = min(history_from, since)
            changes = await self._backend.changes_since(self.ref, since, self.uidnext)
        elif self.readonly:
            # A read-only watch reports unclaimed messages as recent: it must
            # see claims made since, so it reads for itself.
            changes = await self._backend.changes_since(self.ref, since, self.uidnext)
        else:
            changes = await self._service.changes_for(
                self.ref, since, self.uidnext, self._seen_modseq)
        if not changes.exists:
            if history_from is not None:
                raise NoSuchMailbox(f"The mailbox was deleted: {self.name}")
            return self._gone(), [], []
        states: list[FlagState] = []
        expunged: list[int] = []
        if history_from is not None:
            states = [s for s in (*changes.changed, *changes.added) if s.modseq > history_from]
            expunged = [uid for uid, m in changes.expunged if m > history_from]
        return await self._apply(changes), states, expunged

    async def _apply(self, changes: Changes) -> list[ChangeEvent]:
        """The events of ``changes`` above the watch's MODSEQ; the watch
        moves to the state read."""
        mark = self.highestmodseq
        events: list[ChangeEvent] = []
        # Only UIDs the session knew (below its UIDNEXT): one added and
        # expunged since the last catch-up was never announced (as the old store did).
        gone = [(uid, modseq) for uid, modseq in changes.expunged
                if uid < self.uidnext and modseq > mark]
        if gone:
            events.append(MessagesExpunged(tuple(u for u, _ in gone), max(m for _, m in gone)))
        changed = tuple(state for state in changes.changed if state.modseq > mark)
        if changed:
            events.append(FlagsChanged(changed))
        if changes.added:
            try:
                added = await self._added(changes.added, changes.recent_from, changes.uidnext)
            except NoSuchMailbox:
                return self._gone()  # deleted between the read and the claim
            events.append(added)
        if changes.name != self.name:
            self.name = changes.name
            events.append(MailboxRenamed(changes.name))
        self.highestmodseq = changes.highestmodseq
        self.uidnext = changes.uidnext
        return events

    def _gone(self) -> list[ChangeEvent]:
        """The mailbox was deleted (RFC 2180 §3): report it once, stop."""
        self.deleted = True
        self.close()
        return [MailboxDeleted()]

    async def _added(
        self, added: Sequence[FlagState], recent_from: int, uidnext: int
    ) -> MessagesAdded:
        """MessagesAdded with the subset recent in this session: read-write
        claims what nobody has (compare-and-set, so each UID is recent in
        exactly one session); read-only just reports the unclaimed ones."""
        uids = tuple(state.uid for state in added)
        if self.readonly:
            recent = frozenset(u for u in uids if u >= recent_from)
        else:
            if uids[-1] >= recent_from:
                claimed = await claim_or_none(self._backend, self.ref, uidnext)
                self._service.heard_claim(self.ref.id, claimed)
                self.add_claim(claimed)
            await self._await_pending_claims(uids, recent_from)
            recent = frozenset(u for u in uids if self.owns_recent(u))
        return MessagesAdded(uids, recent, _keywords_of(added))

    async def _await_pending_claims(self, uids: Sequence[int], recent_from: int) -> None:
        """A UID claimed by someone while an APPEND/COPY that claims for
        this watch is still in flight may be this watch's: wait for that
        call to hand over its range (it has committed: it returns soon)."""
        while self._service.runtime is not None and self.pending_claims and any(
            u < recent_from and not self.owns_recent(u) for u in uids
        ):
            await self._settled()

    # --- message operations ------------------------------------------------------
    # Mutations through a read-only watch raise ReadOnly; on a deleted (or
    # closed) watch every operation raises NoSuchMailbox.

    def _live(self, write: bool = False) -> MailboxRef:
        if self.deleted or self.closed:
            raise NoSuchMailbox(f"The mailbox is no longer open: {self.name}")
        if write and self.readonly:
            raise ReadOnly(f"Mailbox is read-only: {self.name}")
        return self.ref

    async def fetch_records(
        self, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        return await self._backend.fetch_records(self._live(), uids, with_meta)

    async def fetch_flags(self, uids: Sequence[int] | None = None) -> list[FlagState]:
        return await self._backend.fetch_flags(self._live(), uids)

    async def sort_facts(self, uids: Sequence[int]) -> dict[int, bytes]:
        """``MailBackend.sort_facts``: SORT/THREAD facts stored at delivery
        (RFC 5256), by UID; messages without are left out. An engine (or a
        wrapper) without the method answers nothing, and the caller computes
        every message's facts itself."""
        method = getattr(self._backend, "sort_facts", None)
        if method is None:
            return {}
        result: dict[int, bytes] = await method(self._live(), uids)
        return result

    async def text_candidates(self, scope: str, folded: str) -> frozenset[int] | None:
        """``MailBackend.text_candidates`` on this mailbox; None from a
        backend object without the (optional) method."""
        method = getattr(self._backend, "text_candidates", None)
        if method is None:
            return None
        result: frozenset[int] | None = await method(self._live(), scope, folded)
        return result

    async def text_matches(
        self, scope: str, folded: str
    ) -> tuple[frozenset[int], frozenset[int]] | None:
        """``(sure, maybe)`` for a string key (RFC 3501 §6.4.4): UIDs that
        certainly match, UIDs the caller must still confirm; the others do
        not match. From the backend's optional ``text_matches`` (an index
        that can confirm some matches itself), else ``text_candidates``
        with nothing sure; None when the index cannot tell."""
        method = getattr(self._backend, "text_matches", None)
        if method is None:
            found = await self.text_candidates(scope, folded)
            return None if found is None else (frozenset(), found)
        result: tuple[frozenset[int], frozenset[int]] | None = await method(
            self._live(), scope, folded)
        return result

    async def read_message(
        self, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        return await self._backend.read_message(self._live(), uid, offset, length)

    async def read_messages(self, uids: Sequence[int]) -> dict[int, bytes]:
        """``MailBackend.read_messages``: the whole bytes of the existing
        ``uids``, by UID, in one call; the caller bounds the batch by size.
        A backend (or a wrapper) without the method is asked one message at
        a time, with the same answer."""
        method = getattr(self._backend, "read_messages", None)
        if method is None:
            found: dict[int, bytes] = {}
            for uid in uids:
                raw = await self._backend.read_message(self._live(), uid, 0, None)
                if raw is not None:
                    found[uid] = raw
            return found
        result: dict[int, bytes] = await method(self._live(), uids)
        return result

    async def open_message(self, uid: int) -> MessageBody | None:
        return await self._backend.open_message(self._live(), uid)

    async def store_flags(
        self,
        uids: Sequence[int],
        op: FlagOp,
        flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        """STORE (RFC 3501 §6.4.6, RFC 7162 §3.1.3); ``\\Recent`` or unknown
        system flags: InvalidFlag."""
        ref = self._live(write=True)
        check_flags(flags)
        return await self._backend.store_flags(ref, uids, op, flags, unchangedsince)

    async def expunge(self, uids: Sequence[int] | None = None) -> list[int]:
        """EXPUNGE (RFC 3501 §6.4.3) / UID EXPUNGE (RFC 4315 §2.1)."""
        return await self._backend.expunge(self._live(write=True), uids)

    async def store_and_expunge(
        self, uids: Sequence[int], flags: Sequence[str], expunge: Sequence[int]
    ) -> list[int]:
        """POP3's UPDATE state (RFC 1939 §6): add ``flags`` to ``uids`` and
        remove exactly ``expunge`` in one durable commit
        (``MailBackend.store_and_expunge``); other watches hear the flag
        changes and expunges as from STORE and EXPUNGE. Returns the UIDs
        removed. ``\\Recent`` or unknown system flags: InvalidFlag."""
        ref = self._live(write=True)
        check_flags(flags)
        return await self._backend.store_and_expunge(ref, uids, flags, expunge)

    async def copy(self, uids: Sequence[int], target: str) -> CopyResult:
        """COPY (RFC 3501 §6.4.7) to the mailbox named ``target``
        (TargetMissing if it does not exist or is a placeholder)."""
        return await self._copy(self._live(), uids, target, move=False)

    async def move(self, uids: Sequence[int], target: str) -> CopyResult:
        """MOVE (RFC 6851 §3.1): copy and expunge in one transaction."""
        return await self._copy(self._live(write=True), uids, target, move=True)

    async def _copy(
        self, ref: MailboxRef, uids: Sequence[int], target: str, move: bool
    ) -> CopyResult:
        service = self._service
        entry = await service.target_entry(self.user, target)
        try:
            return await service.claiming(
                entry.id, lambda claim: self._backend.copy(ref, uids, entry.ref, move, claim))
        except NoSuchMailbox:
            # Source or target vanished meanwhile: the target's absence is
            # TRYCREATE (RFC 3501 §6.4.7), the source's NONEXISTENT.
            now = await self._backend.lookup(self.user, entry.name)
            if now is None or now.ref != entry.ref:
                raise TargetMissing(f"Mailbox does not exist: {entry.name}") from None
            raise

    async def changes_since(self, modseq: int) -> list[FlagState]:
        """Messages (any UID) whose MODSEQ is above ``modseq``, ascending
        (RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.5). Does not move the watch."""
        return (await self.history_since(modseq))[0]

    async def expunged_since(self, modseq: int) -> list[int]:
        """UIDs expunged with a MODSEQ above ``modseq``, ascending (RFC 7162
        §3.2.5.2 VANISHED (EARLIER)). Does not move the watch."""
        return (await self.history_since(modseq))[1]

    async def history_since(self, modseq: int) -> tuple[list[FlagState], list[int]]:
        """Both of the above from one read, so they describe one state
        (QRESYNC's resynchronisation needs both, RFC 7162 §3.2.5.2)."""
        changed, expunged, _ = await self.history(modseq)
        return changed, expunged

    async def history(self, modseq: int) -> tuple[list[FlagState], list[int], int]:
        """``history_since`` plus the HIGHESTMODSEQ of the state it read.

        That state may be newer than the watch's (``highestmodseq``) with no
        doorbell heard yet: with an engine whose reads run elsewhere (a pool
        of database connections), a commit is visible to reads before its
        ring reaches this thread. A caller that needs its answer to match
        the watch's state compares the two and catches up; that catch-up
        is then at least as new as this read (``_seen_modseq``)."""
        changes = await self._backend.changes_since(self._live(), modseq, _BEYOND_UIDS)
        if not changes.exists:
            raise NoSuchMailbox(f"The mailbox was deleted: {self.name}")
        self._seen_modseq = max(self._seen_modseq, changes.highestmodseq)
        return list(changes.changed), [uid for uid, _ in changes.expunged], changes.highestmodseq

    def close(self) -> None:
        """Stop watching (unsubscribe from the feed). Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.on_ring = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._service.forget(self)

"""SelectedView: one session's picture of its selected mailbox.

The view owns the IMAP state of a selection: the sequence-number <-> UID
list, which messages are ``\\Recent`` in this session, the FLAGS list and
RECENT count the client was told, what the client already saw of its own
STOREs, and a queue of changes it has not been told yet. Below it is a
``MailboxWatch`` (``imapd.mail.watch``), which knows no protocol.

Changes reach the view only through ``catch_up()`` (``MailboxWatch.catch_up``
reports every change since the last one, this session's own included), at
moments the session chooses: the dispatcher before draining, when the
doorbell rang; IDLE's push. The client hears about them only when the
dispatcher calls ``drain`` before a tagged reply (RFC 3501 §5.2, §7), so
sequence numbers never move under a command. No other session ever writes
to this one's client.

Own changes:

* STORE (and FETCH setting ``\\Seen``): the handler reports the new flags
  itself (RFC 3501 §6.4.6) and tells the view which (UID, MODSEQ) it
  reported (``reported``); a later caught-up state with that same MODSEQ
  is not news, so no second FETCH is queued (a FETCH still pending from
  another session's change is refreshed to the latest state).
* EXPUNGE / UID EXPUNGE / MOVE / CLOSE: caught up like anyone's expunges;
  the dispatcher's ``drain(allow_expunge=True)`` after the handler announces
  them (CLOSE just closes the view: no EXPUNGE responses, RFC 3501 §6.4.2).
* APPEND / COPY into the selected mailbox: new messages arrive like anyone
  else's and are announced with EXISTS at the next drain (RFC 3501 §6.3.11).

While expunges are held back (``drain(allow_expunge=False)``, during FETCH,
STORE and SEARCH, RFC 3501 §7.4.1), the expunged messages keep their
sequence numbers; the store no longer has them, so a FETCH of one returns
nothing (RFC 2180 §4.1.2).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from typing import Callable, Iterable, Sequence

from imapd.core.errors import ImapError
from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MessagesAdded, MessagesExpunged,
)
from imapd.mail.records import FlagState, MailboxSnapshot
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from imapd.core.model import RECENT, SequenceSet
from imapd.imap.session.contexts import SearchContexts
from imapd.imap.session.flaglist import FlagList
from imapd.imap.wire.responses import Exists, Expunge, FetchResponse, Generic, Recent, Response
from imapd.imap.wire.values import Atom, PList, Value

# Rebuild the UID array instead of deleting one by one above this many
# expunges: each ``del`` is a memmove of the whole tail.
_REBUILD_THRESHOLD = 32


def uid_set_text(uids: Iterable[int]) -> str:
    """Compact sequence-set text for ascending UIDs: ``1:3,7,9:10``."""
    parts: list[str] = []
    start = previous = -1
    for uid in uids:
        if uid == previous + 1:
            previous = uid
            continue
        if start >= 0:
            parts.append(str(start) if start == previous else f"{start}:{previous}")
        start = previous = uid
    if start >= 0:
        parts.append(str(start) if start == previous else f"{start}:{previous}")
    return ",".join(parts)


_PLIST_CACHE: dict[tuple[tuple[str, ...], bool], PList] = {}
_PLIST_CACHE_MAX = 4096


def flags_plist(flags: tuple[str, ...], recent: bool) -> PList:
    """FLAGS list values, shared: a mailbox has few distinct flag sets, and
    ``UID FETCH 1:* FLAGS`` on 100k messages should not build 100k lists."""
    key = (flags, recent)
    value = _PLIST_CACHE.get(key)
    if value is None:
        items: list[Value] = [Atom(flag) for flag in flags]
        if recent:
            items.append(Atom(RECENT))
        value = PList(tuple(items))
        if len(_PLIST_CACHE) >= _PLIST_CACHE_MAX:
            _PLIST_CACHE.clear()
        _PLIST_CACHE[key] = value
    return value


class SelectedView:
    """See the module docstring. Switches set by the session:
    ``uid_mode`` (set by ``resolve`` once the session used a UID command)
    adds UID to unsolicited FETCH responses; ``condstore`` adds UID and
    MODSEQ to them (RFC 7162 §3.1, "CONDSTORE enabling command");
    ``qresync`` sends VANISHED instead of EXPUNGE (RFC 7162 §3.2.10)."""

    def __init__(self, watch: MailboxWatch) -> None:
        self.watch = watch
        snapshot = watch.snapshot
        self._uids: array[int] = array("I", snapshot.uids)
        self._recent: set[int] = set(snapshot.recent)
        self._pending_expunged: set[int] = set()
        self._pending_flags: dict[int, FlagState] = {}
        self._pending_added: list[int] = []
        # UID -> MODSEQ of flags the client was shown by its own STORE/FETCH
        # (``reported``); a caught-up state with that MODSEQ is not news.
        self._reported: dict[int, int] = {}
        # What the client was told: the FLAGS list (RFC 3501 §7.2.6) and the
        # RECENT count (§7.3.2); SELECT sends both from this snapshot.
        self.flag_list = FlagList(snapshot.keywords)
        self._told_recent = self.recent_count
        self.uid_mode = False
        self.condstore = False
        self.qresync = False
        # SEARCHRES ``$`` (RFC 5182 §2.1): the UIDs of the last SEARCH ... SAVE,
        # ascending; empty at selection.
        self.saved_uids: tuple[int, ...] = ()
        # Live searches (RFC 5267 §4): they end with the selection.
        self.contexts = SearchContexts()
        self._told_modseq = snapshot.highestmodseq
        # Set by a SELECT/EXAMINE with QRESYNC: its reply ends with the state
        # its responses described; the dispatcher does not catch up after it.
        self.resynced = False
        # A catch-up after a command failed (the store was unavailable): the
        # client may hold UIDs (APPENDUID, COPYUID) this view has not taken
        # in, so the next message command must catch up first or fail.
        self.stale = False
        self.on_change: Callable[[], None] | None = None
        first = snapshot.first_unseen
        self.first_unseen_seq: int | None = None if first is None else self.seq_of(first)
        watch.on_ring = self._rang

    @classmethod
    async def open(cls, mail: MailService, user: str, name: str, readonly: bool) -> SelectedView:
        """SELECT (``readonly=False``) or EXAMINE (RFC 3501 §6.3.1, §6.3.2)."""
        return cls(await mail.open(user, name, readonly))

    def _rang(self) -> None:
        """The doorbell: only tell the session (IDLE schedules its own
        catch-up); never read or write here, this runs inside whoever
        committed the change."""
        if self.on_change is not None:
            self.on_change()

    async def catch_up(self) -> None:
        """Receive every change since the last catch-up (queued, not sent)."""
        self._receive(await self.watch.catch_up())

    async def absorb(self) -> None:
        """Catch up and apply every change at once, telling nothing: only
        before any response of this selection was sent (SELECT/EXAMINE
        with QRESYNC, RFC 7162 §3.2.5.2), whose responses then describe the
        later state. ``first_unseen_seq`` follows (None if that message
        went away: which unseen message comes first is no longer known)."""
        await self.catch_up()
        self._absorbed()

    async def absorb_history(self, modseq: int) -> tuple[list[FlagState], list[int]]:
        """``absorb`` and, from the same read, the messages changed and the
        UIDs expunged above ``modseq`` (``MailboxWatch.catch_up_with_history``):
        QRESYNC's answer then describes exactly the state the selection
        announces (RFC 7162 §3.2.5.2)."""
        events, states, gone = await self.watch.catch_up_with_history(modseq)
        self._receive(events)
        self._absorbed()
        return states, gone

    def _absorbed(self) -> None:
        self.drain(allow_expunge=True)
        self.flag_list.take_noted()
        first = self.snapshot.first_unseen
        self.first_unseen_seq = None if first is None else self.seq_of(first)

    def reported(self, states: Iterable[FlagState], shown: bool = False) -> None:
        """The client was shown these flags (its own STORE or FETCH's
        implicit ``\\Seen``, RFC 3501 §6.4.6, §6.4.5): do not queue them
        again when they are caught up. ``shown``: each state was sent in
        full (a FETCH FLAGS of a non-silent STORE), so an older state of
        that message still pending is stale: sent after it, it would take
        the client's flags and MODSEQ backwards (RFC 7162 §3.1.2: a
        message's MODSEQ never decreases). With a pending older state
        from a catch-up before the store (the doorbell of that change rang
        first), a PostgreSQL frontend sent exactly that."""
        for state in states:
            self._reported[state.uid] = state.modseq
            if shown:
                pending = self._pending_flags.get(state.uid)
                if pending is not None and pending.modseq <= state.modseq:
                    del self._pending_flags[state.uid]

    # --- what the client knows ---------------------------------------------

    @property
    def name(self) -> str:
        """The mailbox's current name (it follows a RENAME by anyone)."""
        return self.watch.name

    @property
    def readonly(self) -> bool:
        return self.watch.readonly

    @property
    def uidvalidity(self) -> int:
        return self.watch.uidvalidity

    @property
    def snapshot(self) -> MailboxSnapshot:
        """The mailbox as selected: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
        keywords (for the SELECT responses, RFC 3501 §6.3.1)."""
        return self.watch.snapshot

    @property
    def highestmodseq(self) -> int:
        """HIGHESTMODSEQ of the changes delivered to this view so far."""
        return self.watch.highestmodseq

    @property
    def told_modseq(self) -> int:
        """The HIGHESTMODSEQ the client may rely on (RFC 7162 §3.1.2.1): that
        of the last drain that left no expunge held back, so a client that
        stores it never skips an expunge it has not been told about."""
        return self._told_modseq

    @property
    def deleted(self) -> bool:
        """The mailbox was deleted (RFC 2180 §3): its messages are queued as
        expunged; the server may also end the session with BYE."""
        return self.watch.deleted

    @property
    def exists(self) -> int:
        """The message count the client was last told (EXISTS)."""
        return len(self._uids)

    @property
    def recent_count(self) -> int:
        """Announced messages that are \\Recent in this session. (``_recent``
        only ever holds UIDs that are announced or pending addition.)"""
        pending = sum(1 for uid in self._pending_added if uid in self._recent)
        return len(self._recent) - pending

    @property
    def uids(self) -> Sequence[int]:
        """UIDs by sequence number minus one (read-only, do not modify)."""
        return self._uids

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self._uids, uid)
        if i < len(self._uids) and self._uids[i] == uid:
            return i + 1
        return None

    def uid_of(self, seq: int) -> int:
        return self._uids[seq - 1]

    def is_recent(self, uid: int) -> bool:
        return uid in self._recent

    def is_expunge_pending(self, uid: int) -> bool:
        return uid in self._pending_expunged

    def flags_value(self, uid: int, flags: Iterable[str]) -> PList:
        """The FLAGS value for a FETCH response: ``flags`` plus ``\\Recent``
        when the message is recent in this session (RFC 3501 §2.3.2)."""
        return flags_plist(tuple(flags), uid in self._recent)

    # --- resolving client numbers ------------------------------------------

    def resolve(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs, ascending, for a set of sequence numbers or UIDs
        as the client sees the mailbox (RFC 3501 §6.4.8, §9).

        Sequence numbers above EXISTS are a client error (BAD); ``*`` is the
        highest number in use. For UIDs, ``*`` is the highest UID and
        ``n:*`` always includes it (RFC 3501 §6.4.8); UIDs not in the
        mailbox are ignored. A UID set makes later unsolicited FETCH
        responses carry UID.
        """
        if seqset.saved:
            self.uid_mode = self.uid_mode or uid
            return self._resolve_saved()
        if uid:
            self.uid_mode = True
            return self._resolve_uids(seqset)
        count = len(self._uids)
        for r in seqset.ranges:
            for number in (r.start, r.end):
                if number is not None and not 1 <= number <= count:
                    raise ImapError.bad(f"Invalid message sequence number {number}")
        return [(seq, self._uids[seq - 1]) for seq in seqset.iter_numbers(count)]

    def _resolve_saved(self) -> list[tuple[int, int]]:
        """``$`` (RFC 5182 §2.1): the saved messages that still exist, for
        UID and sequence-number commands alike (expunged ones drop out)."""
        pairs: list[tuple[int, int]] = []
        for uid in self.saved_uids:
            seq = self.seq_of(uid)
            if seq is not None:
                pairs.append((seq, uid))
        return pairs

    def _resolve_uids(self, seqset: SequenceSet) -> list[tuple[int, int]]:
        if not self._uids:
            return []
        largest = self._uids[-1]
        spans = []
        for r in seqset.ranges:
            low, high = r.bounds(largest)
            spans.append((bisect_left(self._uids, low), bisect_right(self._uids, high)))
        result: list[tuple[int, int]] = []
        done = 0
        for start, stop in sorted(spans):
            start = max(start, done)
            if start < stop:  # sequence numbers are positions + 1
                result.extend(zip(range(start + 1, stop + 1), self._uids[start:stop]))
            done = max(done, stop)
        return result

    # --- receiving changes -------------------------------------------------

    def _receive(self, events: Sequence[ChangeEvent]) -> None:
        for event in events:
            self.contexts.note(event)
            if isinstance(event, MessagesExpunged):
                self._queue_expunged(event.uids)
            elif isinstance(event, FlagsChanged):
                self._queue_flags(event)
            elif isinstance(event, MessagesAdded):
                self._pending_added.extend(event.uids)
                self._recent.update(event.recent)
                # Told they exist, the client must also be told the FLAGS
                # list naming their keywords (announced with the EXISTS).
                self.flag_list.note(event.keywords)
            elif isinstance(event, MailboxDeleted):
                self._recent.difference_update(self._pending_added)
                self._pending_added.clear()
                self._queue_expunged(self._uids)
        if self._reported:
            # Later catch-ups report nothing at or below this MODSEQ.
            done = self.watch.highestmodseq
            self._reported = {u: m for u, m in self._reported.items() if m > done}

    def _queue_expunged(self, uids: Iterable[int]) -> None:
        added = set(self._pending_added)
        for uid in list(uids):
            if uid in added:
                # Never announced: the client never needs to hear of it.
                self._pending_added.remove(uid)
                self._recent.discard(uid)
            elif self.seq_of(uid) is not None and uid not in self._pending_expunged:
                self._pending_expunged.add(uid)
                self._pending_flags.pop(uid, None)

    def _queue_flags(self, event: FlagsChanged) -> None:
        note = self.flag_list.note
        for state in event.states:
            # A new keyword is announced at the next drain even when no FETCH
            # shows it (own STORE .SILENT): the mailbox's list grew.
            note(state.flags)
            if self._reported.get(state.uid) == state.modseq:
                # The client saw exactly this state (its own STORE): only
                # refresh a FETCH still pending from an earlier change.
                if state.uid in self._pending_flags:
                    self._pending_flags[state.uid] = state
            elif state.uid not in self._pending_expunged and self.seq_of(state.uid) is not None:
                self._pending_flags[state.uid] = state

    # --- telling the client ------------------------------------------------

    def drain(self, allow_expunge: bool, include_uid: bool | None = None) -> list[Response]:
        """The untagged responses that bring the client up to date, in order:
        EXPUNGE (or VANISHED) when ``allow_expunge`` (never otherwise,
        RFC 3501 §7.4.1), FETCH (FLAGS [UID] [MODSEQ]) for flag changes by
        other sessions (§7.4.2), EXISTS and RECENT for new messages
        (§7.3.1, §7.3.2). ``include_uid`` defaults to ``uid_mode``.

        RECENT "occurs ... if the size of the mailbox changes" and the
        client must record it (§7.3.2): it comes with every EXISTS, and
        after expunges whenever they lowered the count the client was last
        told (a client cannot decrement it itself: it does not know which
        expunged messages were recent to it). After expunges that left the
        count as told it is not repeated, as in §6.4.3's EXPUNGE example.
        So the RECENT a client believes is always this session's count of
        the messages it knows of, never above EXISTS."""
        with_uid = self.uid_mode if include_uid is None else include_uid
        with_uid = with_uid or self.condstore
        responses: list[Response] = []
        if allow_expunge and self._pending_expunged:
            responses.extend(self._drain_expunged())
        if self._pending_flags:
            responses.extend(self._drain_flags(with_uid))
        if self._pending_added:
            self._uids.extend(self._pending_added)
            self._pending_added.clear()
            responses.append(Exists(len(self._uids)))
            responses.append(self._recent_response())
        elif self.recent_count != self._told_recent:
            responses.append(self._recent_response())
        if not self._pending_expunged:
            self._told_modseq = self.watch.highestmodseq
        return responses

    def _recent_response(self) -> Recent:
        self._told_recent = self.recent_count
        return Recent(self._told_recent)

    def _drain_expunged(self) -> list[Response]:
        gone = sorted(self._pending_expunged)
        self._pending_expunged.clear()
        seqs = [seq for seq in (self.seq_of(uid) for uid in gone) if seq is not None]
        responses: list[Response]
        if self.qresync:
            responses = [Generic("VANISHED", (Atom(uid_set_text(gone)),))]
        else:
            # Highest first: each EXPUNGE then names the message's own number.
            responses = [Expunge(seq) for seq in reversed(seqs)]
        if len(seqs) > _REBUILD_THRESHOLD:
            gone_set = set(gone)
            self._uids = array("I", (uid for uid in self._uids if uid not in gone_set))
        else:
            for seq in reversed(seqs):
                del self._uids[seq - 1]
        self._recent.difference_update(gone)
        return responses

    def _drain_flags(self, with_uid: bool) -> list[Response]:
        responses: list[Response] = []
        for uid in sorted(self._pending_flags):
            state = self._pending_flags[uid]
            seq = self.seq_of(uid)
            if seq is None or uid in self._pending_expunged:
                continue
            items: list[tuple[str, Value]] = [("FLAGS", self.flags_value(uid, state.flags))]
            if with_uid:
                items.append(("UID", uid))
            if self.condstore:
                items.append(("MODSEQ", PList((state.modseq,))))
            responses.append(FetchResponse(seq, tuple(items)))
        self._pending_flags.clear()
        return responses

    def close(self) -> None:
        """Stop watching (CLOSE, UNSELECT, a new SELECT, logout)."""
        self.on_change = None
        self.watch.close()

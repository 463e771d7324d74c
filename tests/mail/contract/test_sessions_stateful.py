"""Hypothesis state machine: several sessions (``MailboxWatch``es) over TWO
backend instances on one store (as two processes) do random deliveries,
STORE, EXPUNGE, COPY, MOVE, reopens and ``catch_up`` on INBOX, some of them
concurrently on the reactor.

A reference model holds the truth (UID -> flags). Each session mirrors only
what its watch reported (the snapshot at open, then ``catch_up`` batches),
as a protocol view would. Checked on every step: UIDs never repeat and only
ascend; a batch never reports an unknown UID as expunged or a known one as
added; flags a watch reports never go back to an older MODSEQ; a watch's
HIGHESTMODSEQ never goes down; each UID is \\Recent in at most one
read-write session ever; a change made through an instance rings that
instance's watches before the call returns. After ``converge`` (every watch
caught up): every mirror equals the store, the flags it was told are the
model's, and with a read-write session open every message was claimed as
\\Recent by exactly one session (RFC 3501 §2.3.2).

Runs on the memory reference (two ``MemoryBackend`` over one ``MemoryData``)
and on SQLite (two backends on one data directory; the other instance's
changes are found by ``catch_up`` whether or not its poller rang yet), both
wrapped in ``YieldingBackend`` so that every call really awaits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from twisted.internet.task import deferLater

from imapd.mail.errors import ReadOnly
from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged,
)
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem, AppendResult, StoreResult
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from tests.mail.contract.conftest import (
    KINDS, U, Kind, Site, make_service, make_site, remove_site, settle, together,
)
from tests.support.reactor_thread import on_reactor, reactor

T = TypeVar("T")
FLAG_POOL = ["\\Seen", "\\Deleted", "\\Flagged", "$Work", "later"]
MAX_SESSIONS = 4
RING_PATIENCE = 15.0  # seconds; only a ring that never comes reaches it


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return on_reactor(fn)


@dataclass(eq=False)
class Seat:
    """One session: its watch and what the watch told it."""

    instance: int
    watch: MailboxWatch
    uids: list[int]
    flags: dict[int, tuple[frozenset[str], int]] = field(default_factory=dict)  # uid -> (flags, modseq)
    recent: set[int] = field(default_factory=set)
    highest: int = 0
    top: int = 0  # the highest UID ever announced to it
    serial: int = 0

    @property
    def readonly(self) -> bool:
        return self.watch.readonly


@dataclass
class Model:
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    top_uid: int = 0
    owners: dict[int, int] = field(default_factory=dict)  # uid -> serial of the rw seat it is \Recent in
    # UIDs a session may have claimed but closed before it told us (it did
    # not catch up first): claimed at most once, maybe by nobody we saw.
    orphans: set[int] = field(default_factory=set)
    seats_opened: int = 0

    def add(self, uid: int, flags: frozenset[str]) -> None:
        assert uid > self.top_uid, f"UID {uid} not above every earlier one ({self.top_uid})"
        self.top_uid = uid
        self.flags[uid] = flags


def applied(op: FlagOp, current: frozenset[str], given: frozenset[str]) -> frozenset[str]:
    if op is FlagOp.REPLACE:
        return given
    if op is FlagOp.ADD:
        return current | given
    return current - given


class SessionsMachine(RuleBasedStateMachine):
    kind: Kind = KINDS[0]

    def __init__(self) -> None:
        super().__init__()
        self.site: Site = make_site(self.kind)
        self.services: list[MailService] = []
        self.seats: list[Seat] = []
        self.model = Model()
        self.archives = 0

    def teardown(self) -> None:
        for seat in self.seats:
            seat.watch.close()
        remove_site(self.site)

    @initialize(count=st.integers(2, MAX_SESSIONS),
                readonly=st.lists(st.booleans(), min_size=MAX_SESSIONS, max_size=MAX_SESSIONS))
    def start(self, count: int, readonly: list[bool]) -> None:
        async def begin() -> None:
            for _ in range(2):
                self.services.append(make_service(await self.site.open()))
            await self.services[0].create_mailbox(U, "Other")
            for i in range(count):
                self.seats.append(await self._open(i % 2, i > 0 and readonly[i]))
        run(begin)

    async def _open(self, instance: int, readonly: bool) -> Seat:
        watch = await self.services[instance].open(U, "INBOX", readonly)
        self.model.seats_opened += 1
        seat = Seat(instance, watch, list(watch.snapshot.uids), highest=watch.highestmodseq,
                    top=max(watch.snapshot.uids, default=0), serial=self.model.seats_opened)
        assert seat.uids == sorted(self.model.flags), "a fresh snapshot is the store's state"
        self._note_recent(seat, watch.snapshot.recent)
        await self._learn_flags(seat, seat.uids)
        return seat

    async def _learn_flags(self, seat: Seat, uids: list[int]) -> None:
        """The FETCH FLAGS a client does for messages it was just told of."""
        if uids:
            for state in await seat.watch.fetch_flags(uids):
                seat.flags[state.uid] = (frozenset(state.flags), state.modseq)

    def _note_recent(self, seat: Seat, recent: frozenset[int]) -> None:
        seat.recent |= recent
        if seat.readonly:
            return
        for uid in recent:
            owner = self.model.owners.setdefault(uid, seat.serial)
            assert owner == seat.serial, f"UID {uid} is \\Recent in two read-write sessions"

    def _seat(self, index: int) -> Seat:
        return self.seats[index % len(self.seats)]

    def _pick(self, seat: Seat, picks: list[int]) -> list[int]:
        """UIDs the session names (the ones it knows, maybe expunged since)."""
        if not seat.uids:
            return []
        return sorted({seat.uids[p % len(seat.uids)] for p in picks})

    def _rang_on(self, instance: int) -> None:
        for seat in self.seats:
            if seat.instance == instance:
                assert seat.watch.rang, "a change through this instance did not ring before returning"

    # --- rules -----------------------------------------------------------------

    @rule(instance=st.integers(0, 1), flags=st.lists(st.sampled_from(FLAG_POOL), max_size=3),
          count=st.integers(1, 3))
    def deliver(self, instance: int, flags: list[str], count: int) -> None:
        items = [AppendItem(b"m", tuple(flags)) for _ in range(count)]
        result = run(lambda: self.services[instance].deliver(U, "INBOX", items))
        for uid in result.uids:
            self.model.add(uid, frozenset(flags))
        self._rang_on(instance)

    @rule(instance=st.integers(0, 1))
    def deliver_and_wait_for_rings(self, instance: int) -> None:
        """The other instance's sessions hear of a delivery by their own
        doorbell (its poller, for SQLite) within a bounded delay."""
        others = [seat for seat in self.seats if seat.instance != instance]
        for seat in others:
            self._apply(seat, run(seat.watch.catch_up))
        self.deliver(instance, [], 1)
        run(lambda: self._rings(others))

    async def _rings(self, seats: list[Seat]) -> None:
        deadline = reactor().seconds() + RING_PATIENCE
        while not all(seat.watch.rang for seat in seats):
            assert reactor().seconds() < deadline, "another instance's change never rang"
            await deferLater(reactor(), 0.005, lambda: None)

    @rule(flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2))
    def deliver_concurrently(self, flags: list[str]) -> None:
        """Both instances deliver at once: UIDs interleave but never repeat."""
        results = run(lambda: together(
            s.deliver(U, "INBOX", [AppendItem(b"c", tuple(flags))]) for s in self.services))
        for uid in sorted(u for r in results for u in r.uids):
            self.model.add(uid, frozenset(flags))
        self._rang_on(0)
        self._rang_on(1)

    @rule(index=st.integers(0, MAX_SESSIONS - 1),
          picks=st.lists(st.integers(0, 50), min_size=1, max_size=4),
          op=st.sampled_from(list(FlagOp)), flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2))
    def store(self, index: int, picks: list[int], op: FlagOp, flags: list[str]) -> None:
        seat = self._seat(index)
        uids = self._pick(seat, picks)
        try:
            result = run(lambda: seat.watch.store_flags(uids, op, flags))
        except ReadOnly:
            assert seat.readonly
            return
        assert not seat.readonly
        given = frozenset(flags)
        live = [u for u in uids if u in self.model.flags]
        assert sorted(s.uid for s in result.states) == live
        for uid in live:
            new = applied(op, self.model.flags[uid], given)
            assert (uid in result.changed) == (new != self.model.flags[uid])
            self.model.flags[uid] = new
        for state in result.states:
            assert frozenset(state.flags) == self.model.flags[state.uid]
        if result.changed:
            self._rang_on(seat.instance)

    @rule(index=st.integers(0, MAX_SESSIONS - 1), picks=st.lists(st.integers(0, 50), max_size=3),
          by_uid=st.booleans())
    def expunge(self, index: int, picks: list[int], by_uid: bool) -> None:
        seat = self._seat(index)
        subset = self._pick(seat, picks) if by_uid else None
        try:
            gone = run(lambda: seat.watch.expunge(subset))
        except ReadOnly:
            assert seat.readonly
            return
        expected = [u for u, f in sorted(self.model.flags.items())
                    if "\\Deleted" in f and (subset is None or u in subset)]
        assert gone == expected
        for uid in gone:
            del self.model.flags[uid]
        if gone:
            self._rang_on(seat.instance)

    @rule(index=st.integers(0, MAX_SESSIONS - 1),
          picks=st.lists(st.integers(0, 50), min_size=1, max_size=3),
          to_inbox=st.booleans(), move=st.booleans())
    def copy(self, index: int, picks: list[int], to_inbox: bool, move: bool) -> None:
        seat = self._seat(index)
        uids = self._pick(seat, picks)
        target = "INBOX" if to_inbox else "Other"
        call = seat.watch.move if move else seat.watch.copy
        try:
            result = run(lambda: call(uids, target))
        except ReadOnly:
            assert move and seat.readonly
            return
        sources = [u for u in uids if u in self.model.flags]
        assert [s for s, _ in result.pairs] == sources
        copied = [(new, self.model.flags[old]) for old, new in result.pairs]
        if move:
            for uid in sources:
                del self.model.flags[uid]
        if to_inbox:
            for new, flags in copied:
                self.model.add(new, flags)
        if sources and (move or to_inbox):
            self._rang_on(seat.instance)

    @rule(index=st.integers(0, MAX_SESSIONS - 1))
    def catch_up(self, index: int) -> None:
        seat = self._seat(index)
        self._apply(seat, run(seat.watch.catch_up))

    @rule(instance=st.integers(0, 1), deliver_flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2),
          storer=st.integers(0, MAX_SESSIONS - 1), expunger=st.integers(0, MAX_SESSIONS - 1),
          reader=st.integers(0, MAX_SESSIONS - 1),
          picks=st.lists(st.integers(0, 50), min_size=1, max_size=3),
          op=st.sampled_from(list(FlagOp)), flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2))
    def burst(self, instance: int, deliver_flags: list[str], storer: int, expunger: int,
              reader: int, picks: list[int], op: FlagOp, flags: list[str]) -> None:
        """A delivery, a STORE, an EXPUNGE and a catch-up all at once, from
        different sessions: whatever order the backend commits them in, the
        outcome must be one of the serial ones."""
        store_seat, expunge_seat = self._seat(storer), self._seat(expunger)
        read_seat = self._seat(reader)
        uids = self._pick(store_seat, picks)
        before = dict(self.model.flags)
        outcomes = run(lambda: settle([
            self.services[instance].deliver(U, "INBOX", [AppendItem(b"b", tuple(deliver_flags))]),
            store_seat.watch.store_flags(uids, op, flags),
            expunge_seat.watch.expunge(),
            read_seat.watch.catch_up(),
        ]))
        delivered, stored, gone, events = outcomes
        assert not isinstance(delivered, BaseException) and not isinstance(events, BaseException)
        assert isinstance(delivered, AppendResult)
        for uid in delivered.uids:
            self.model.add(uid, frozenset(deliver_flags))
        if isinstance(stored, ReadOnly):
            assert store_seat.readonly
        else:
            assert isinstance(stored, StoreResult), stored
            for uid in uids:
                if uid in self.model.flags:
                    self.model.flags[uid] = applied(op, self.model.flags[uid], frozenset(flags))
        if isinstance(gone, ReadOnly):
            assert expunge_seat.readonly
        else:
            assert isinstance(gone, list), gone
            self._burst_expunged(gone, before)
        assert isinstance(events, list)
        self._apply(read_seat, events)

    def _burst_expunged(self, gone: list[int], before: dict[int, frozenset[str]]) -> None:
        for uid in gone:
            assert uid in self.model.flags, f"expunged UID {uid} did not exist"
            was = before.get(uid, self.model.flags[uid])
            assert "\\Deleted" in was or "\\Deleted" in self.model.flags[uid], (
                f"UID {uid} expunged without ever being \\Deleted")
        for uid, flags in before.items():
            if uid in self.model.flags and "\\Deleted" in flags and "\\Deleted" in self.model.flags[uid]:
                assert uid in gone, f"UID {uid} was \\Deleted throughout but not expunged"
        for uid in gone:
            del self.model.flags[uid]

    @rule()
    def catch_up_concurrently(self) -> None:
        """Every session catches up at once (rings arriving together)."""
        batches = run(lambda: together(seat.watch.catch_up() for seat in self.seats))
        for seat, events in zip(self.seats, batches):
            self._apply(seat, events)

    @precondition(lambda self: len(self.seats) > 1)
    @rule(index=st.integers(0, MAX_SESSIONS - 1), readonly=st.booleans(), instance=st.integers(0, 1),
          drain=st.booleans())
    def reopen(self, index: int, readonly: bool, instance: int, drain: bool) -> None:
        """A session closes its mailbox (after a last catch-up, or with
        changes still pending) and opens it again (SELECT/EXAMINE)."""
        seat = self._seat(index)
        if drain:
            self._apply(seat, run(seat.watch.catch_up))
        elif not seat.readonly:
            self.model.orphans |= {u for u in self.model.flags if u > seat.top}
        seat.watch.close()
        position = self.seats.index(seat)
        self.seats[position] = run(lambda: self._open(instance, readonly))

    @rule(instance=st.integers(0, 1), racing=st.booleans(),
          flags=st.lists(st.sampled_from(FLAG_POOL), max_size=2))
    def rename_inbox(self, instance: int, racing: bool, flags: list[str]) -> None:
        """RENAME INBOX (RFC 3501 §6.3.5) moves every message to a new
        mailbox and leaves INBOX empty with its UIDVALIDITY and UIDNEXT; a
        delivery racing it lands wholly before (moved) or after (stays)."""
        self.archives += 1
        archive = f"Archive/{self.archives}"
        service = self.services[instance]
        calls: list[Coroutine[Any, Any, object]] = [service.rename_mailbox(U, "INBOX", archive)]
        if racing:
            calls.append(self.services[1 - instance].deliver(
                U, "INBOX", [AppendItem(b"r", tuple(flags))]))
        outcomes = run(lambda: together(calls))
        moved = dict(self.model.flags)
        self.model.flags.clear()
        archived = run(lambda: self._contents(archive))
        if racing:
            result = outcomes[1]
            assert isinstance(result, AppendResult)
            self.model.add(result.uid, frozenset(flags))
            if result.uid in archived:
                moved[result.uid] = self.model.flags.pop(result.uid)
        assert archived == moved, "RENAME INBOX did not move exactly INBOX's messages"
        status = run(lambda: service.status(U, "INBOX"))
        assert status.messages == len(self.model.flags)
        assert status.uidnext == self.model.top_uid + 1
        self._rang_on(instance)

    async def _contents(self, name: str) -> dict[int, frozenset[str]]:
        watch = await self.services[0].open(U, name, readonly=True)
        try:
            return {s.uid: frozenset(s.flags) for s in await watch.fetch_flags()}
        finally:
            watch.close()

    @rule()
    def converge(self) -> None:
        for seat in self.seats:
            self._apply(seat, run(seat.watch.catch_up))
        truth = sorted(self.model.flags)
        stored = run(lambda: self.seats[0].watch.fetch_flags())
        assert {s.uid: frozenset(s.flags) for s in stored} == self.model.flags
        for seat in self.seats:
            assert seat.uids == truth, "a caught-up watch differs from the store"
            told = {uid: flags for uid, (flags, _) in seat.flags.items() if uid in self.model.flags}
            assert told == self.model.flags, "a caught-up session holds stale flags"
        if any(not seat.readonly for seat in self.seats):
            unclaimed = [u for u in truth if u not in self.model.owners and u not in self.model.orphans]
            assert unclaimed == [], f"with a read-write session open, {unclaimed} stayed un-\\Recent"
            status = run(lambda: self.services[0].status(U, "INBOX"))
            assert status.recent == 0

    # --- applying a batch as a view would -----------------------------------------

    def _apply(self, seat: Seat, events: list[ChangeEvent]) -> None:
        order = {MessagesExpunged: 0, FlagsChanged: 1, MessagesAdded: 2, MailboxRenamed: 3,
                 MailboxDeleted: 4}
        ranks = [order[type(e)] for e in events]
        assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks), events
        assert seat.watch.highestmodseq >= seat.highest, "HIGHESTMODSEQ went down"
        seat.highest = seat.watch.highestmodseq
        new: list[int] = []
        for event in events:
            if isinstance(event, MessagesExpunged):
                assert set(event.uids) <= set(seat.uids), "expunge of a UID never announced"
                assert not set(event.uids) & set(self.model.flags), "expunge of a live message"
                seat.uids = [u for u in seat.uids if u not in event.uids]
            elif isinstance(event, FlagsChanged):
                self._flags_changed(seat, event)
            elif isinstance(event, MessagesAdded):
                assert list(event.uids) == sorted(set(event.uids))
                assert event.uids[0] > seat.top, "added UID not above every UID announced before"
                seat.top = event.uids[-1]
                assert event.recent <= set(event.uids)
                seat.uids.extend(event.uids)
                self._note_recent(seat, event.recent)
                new.extend(event.uids)
            else:
                raise AssertionError(f"INBOX was never renamed or deleted: {event!r}")
        run(lambda: self._learn_flags(seat, new))

    def _flags_changed(self, seat: Seat, event: FlagsChanged) -> None:
        for state in event.states:
            assert state.uid in seat.uids, "flags of a UID never announced"
            known = seat.flags.get(state.uid)
            if known is not None:
                assert state.modseq >= known[1], "flags went back to an older MODSEQ"
            seat.flags[state.uid] = (frozenset(state.flags), state.modseq)


def machine_for(kind: Kind) -> Any:
    machine: Any = type(f"Sessions_{kind.name.replace('-', '_')}", (SessionsMachine,), {"kind": kind})
    case = machine.TestCase
    case.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
    return case


_BY_NAME = {kind.name: kind for kind in KINDS}
TestMemoryYield = machine_for(_BY_NAME["memory-yield"])
TestSqliteYield = machine_for(_BY_NAME["sqlite-yield"])
TestSqliteThread = machine_for(_BY_NAME["sqlite-thread"])
TestSqliteThreadYield = machine_for(_BY_NAME["sqlite-thread-yield"])
TestPostgres = machine_for(_BY_NAME["postgres"])
TestPostgresYield = machine_for(_BY_NAME["postgres-yield"])

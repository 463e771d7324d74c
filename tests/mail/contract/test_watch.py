"""The mail contract, part 3: watches (``MailService.open``) and
``catch_up``, \\Recent (RFC 3501 §2.3.2), several backend instances on one
store (as several processes), and restarts.

Changes reach a watch only through ``catch_up()``; the doorbell just sets
``rang`` and calls ``on_ring``. A second instance's watch is brought up to
date by ``catch_up`` whether or not its doorbell has rung yet (the truth is
``changes_since``); the ring itself must come within a bounded delay.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged,
)
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem, FlagState
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from tests.mail.contract.conftest import U, make_service, together, Site, deliver, flags_by_uid
from tests.support.reactor_thread import reactor

RING_PATIENCE = 15.0  # seconds; only a missing ring reaches it


async def watch_of(service: MailService, readonly: bool = False, name: str = "INBOX") -> MailboxWatch:
    return await service.open(U, name, readonly)


def added(events: list[ChangeEvent]) -> list[MessagesAdded]:
    return [e for e in events if isinstance(e, MessagesAdded)]


async def rung(watch: MailboxWatch) -> None:
    """Wait (up to RING_PATIENCE) until the watch's doorbell rings."""
    if watch.rang:
        return
    waiter: Deferred[None] = Deferred()
    previous = watch.on_ring

    def ring() -> None:
        if previous is not None:
            previous()
        if not waiter.called:
            waiter.callback(None)

    watch.on_ring = ring
    waiter.addTimeout(RING_PATIENCE, reactor())
    try:
        await waiter
    finally:
        watch.on_ring = previous


# --- catch-up within one instance --------------------------------------------

async def test_every_watch_gets_additions_including_the_deliverer(service: MailService) -> None:
    a = await watch_of(service)
    b = await watch_of(service, readonly=True)
    await deliver(service, "INBOX", b"m")
    assert await a.catch_up() == [MessagesAdded((1,), frozenset({1}))]
    # Read-only watches claim nothing; a's claim means it is not recent for b.
    assert await b.catch_up() == [MessagesAdded((1,), frozenset())]
    await service.deliver(U, "INBOX", [AppendItem(b"x"), AppendItem(b"y", ("$Kw",))])
    assert await b.catch_up() == [MessagesAdded((2, 3), frozenset(), ("$Kw",))]
    assert await a.catch_up() == [MessagesAdded((2, 3), frozenset({2, 3}), ("$Kw",))]
    assert await a.catch_up() == [] and await b.catch_up() == []


async def test_read_only_watch_sees_unclaimed_messages_as_recent(service: MailService) -> None:
    examine = await watch_of(service, readonly=True)
    await deliver(service, "INBOX", b"m")
    assert await examine.catch_up() == [MessagesAdded((1,), frozenset({1}))]
    assert (await service.status(U, "INBOX")).recent == 1  # not claimed


async def test_flag_changes_reach_every_watch(service: MailService) -> None:
    await deliver(service, "INBOX", b"m")
    a = await watch_of(service)
    b = await watch_of(service)
    result = await a.store_flags([1], FlagOp.ADD, ["\\Seen"])
    modseq = result.states[0].modseq
    for watch in (b, a):
        events = await watch.catch_up()
        assert len(events) == 1 and isinstance(events[0], FlagsChanged)
        assert events[0].states == (FlagState(1, ("\\Seen",), modseq),)
        assert watch.highestmodseq == modseq
    assert await a.catch_up() == []


async def test_expunge_reaches_every_watch_including_origin(service: MailService) -> None:
    await service.deliver(U, "INBOX", [AppendItem(b"m", ("\\Deleted",)) for _ in range(3)])
    a = await watch_of(service)
    b = await watch_of(service)
    await a.expunge([1, 3])
    for watch in (a, b):
        (event,) = await watch.catch_up()
        assert isinstance(event, MessagesExpunged) and event.uids == (1, 3)
        assert event.modseq == watch.highestmodseq


async def test_one_batch_in_order_expunges_flags_additions(service: MailService) -> None:
    await service.deliver(U, "INBOX", [AppendItem(b"m") for _ in range(3)])
    watch = await watch_of(service)
    other = await watch_of(service)
    await other.store_flags([1], FlagOp.ADD, ["\\Deleted"])
    await other.expunge()
    await other.store_flags([2], FlagOp.ADD, ["\\Flagged"])
    await deliver(service, "INBOX", b"new")
    events = await watch.catch_up()
    assert [type(e) for e in events] == [MessagesExpunged, FlagsChanged, MessagesAdded]
    assert isinstance(events[0], MessagesExpunged) and events[0].uids == (1,)
    assert isinstance(events[1], FlagsChanged)
    assert [(s.uid, s.flags) for s in events[1].states] == [(2, ("\\Flagged",))]
    assert isinstance(events[2], MessagesAdded) and events[2].uids == (4,)


async def test_move_and_copy_reach_both_mailboxes(service: MailService) -> None:
    await service.create_mailbox(U, "Dest")
    await deliver(service, "INBOX", b"m")
    src = await watch_of(service)
    dst = await watch_of(service, name="Dest")
    await src.copy([1], "Dest")
    assert await src.catch_up() == []
    assert await dst.catch_up() == [MessagesAdded((1,), frozenset({1}))]
    await src.move([1], "Dest")
    assert [type(e) for e in await src.catch_up()] == [MessagesExpunged]
    assert await dst.catch_up() == [MessagesAdded((2,), frozenset({2}))]


async def test_rename_and_delete_reach_watches(service: MailService) -> None:
    await service.create_mailbox(U, "a/b")
    watch = await watch_of(service, name="a/b")
    await service.rename_mailbox(U, "a", "z")
    assert await watch.catch_up() == [MailboxRenamed("z/b")] and watch.name == "z/b"
    await deliver(service, "z/b", b"still works")
    assert isinstance((await watch.catch_up())[0], MessagesAdded)
    await service.delete_mailbox(U, "z/b")
    assert await watch.catch_up() == [MailboxDeleted()] and watch.deleted


async def test_rename_inbox_expunges_in_inbox_watches(service: MailService) -> None:
    await deliver(service, "INBOX", b"m")
    watch = await watch_of(service)
    await service.rename_mailbox(U, "INBOX", "Old")
    (event,) = await watch.catch_up()
    assert isinstance(event, MessagesExpunged) and event.uids == (1,)
    assert not watch.deleted and watch.name == "INBOX"


# --- doorbells ----------------------------------------------------------------------

async def test_ring_comes_before_the_change_call_returns(service: MailService) -> None:
    rings: list[str] = []
    watch = await watch_of(service)
    watch.on_ring = lambda: rings.append("rang")
    await deliver(service, "INBOX", b"m")
    assert watch.rang and rings, "a change in this process rings before deliver returns"
    await watch.catch_up()
    assert not watch.rang
    rings.clear()
    await watch.store_flags([1], FlagOp.ADD, ["\\Seen"])
    assert watch.rang and rings
    await watch.catch_up()
    await service.rename_mailbox(U, "INBOX", "Elsewhere")
    assert watch.rang


async def test_closed_watch_is_not_rung(service: MailService) -> None:
    watch = await watch_of(service)
    rings: list[str] = []
    watch.on_ring = lambda: rings.append("rang")
    watch.close()
    watch.close()  # idempotent
    await deliver(service, "INBOX", b"m")
    assert rings == [] and not watch.rang


async def test_concurrent_catch_ups_are_serialized(service: MailService) -> None:
    """Two catch_up calls at once (a ring and a command) must not report the
    same additions twice or lose any: together they equal one catch-up."""
    watch = await watch_of(service)
    await service.deliver(U, "INBOX", [AppendItem(b"m") for _ in range(5)])
    results = await together(watch.catch_up() for _ in range(3))
    uids = [u for events in results for e in added(events) for u in e.uids]
    assert uids == [1, 2, 3, 4, 5]


# --- \Recent ----------------------------------------------------------------------

async def test_recent_belongs_to_the_first_read_write_watch(service: MailService) -> None:
    await deliver(service, "INBOX", b"1")
    await deliver(service, "INBOX", b"2")
    examine = await watch_of(service, readonly=True)
    assert examine.snapshot.recent == {1, 2}
    first = await watch_of(service)
    assert first.snapshot.recent == {1, 2}
    second = await watch_of(service)
    assert second.snapshot.recent == frozenset()
    assert (await watch_of(service, readonly=True)).snapshot.recent == frozenset()
    first.close()
    # Once claimed, a message is never recent again, even after its owner left.
    assert (await watch_of(service)).snapshot.recent == frozenset()
    assert (await service.status(U, "INBOX")).recent == 0


async def test_new_message_is_recent_in_exactly_one_watch(service: MailService) -> None:
    watches = [await watch_of(service) for _ in range(3)]
    await deliver(service, "INBOX", b"m")
    owners = [w for w in watches if any(1 in e.recent for e in added(await w.catch_up()))]
    assert len(owners) == 1


async def test_concurrent_opens_claim_each_message_once(service: MailService) -> None:
    await service.deliver(U, "INBOX", [AppendItem(b"m") for _ in range(4)])
    watches = await together(watch_of(service) for _ in range(5))
    claimed = sorted(u for w in watches for u in w.snapshot.recent)
    assert claimed == [1, 2, 3, 4]


async def test_recent_claimed_once_across_instances(site: Site) -> None:
    one = make_service(await site.open())
    two = make_service(await site.open())
    w_one = await watch_of(one)
    w_two = await watch_of(two)
    await deliver(two, "INBOX", b"from two")
    recent = [e.recent for w in (w_one, w_two) for e in added(await w.catch_up())]
    assert sorted(len(r) for r in recent) == [0, 1]
    # Delivered by an instance with no watch: claimed by the first catch-up.
    solo = make_service(await site.open())
    await deliver(solo, "INBOX", b"from solo")
    recent = [e.recent for w in (w_two, w_one) for e in added(await w.catch_up())]
    assert sorted(len(r) for r in recent) == [0, 1]


# --- several instances on one store --------------------------------------------------

async def test_changes_cross_instances(site: Site) -> None:
    one = make_service(await site.open())
    two = make_service(await site.open())
    await deliver(one, "INBOX", b"first")
    w_two = await watch_of(two)
    assert list(w_two.snapshot.uids) == [1]
    w_one = await watch_of(one)
    await deliver(one, "INBOX", b"second")
    assert [type(e) for e in await w_two.catch_up()] == [MessagesAdded]
    await w_one.store_flags([1], FlagOp.ADD, ["\\Deleted"])
    await w_one.expunge()
    assert [type(e) for e in await w_two.catch_up()] == [MessagesExpunged]
    assert await w_two.catch_up() == []
    await one.create_mailbox(U, "X")
    w_x = await watch_of(two, name="X")
    await one.rename_mailbox(U, "X", "Y")
    assert await w_x.catch_up() == [MailboxRenamed("Y")]
    await one.delete_mailbox(U, "Y")
    assert await w_x.catch_up() == [MailboxDeleted()]


async def test_other_instances_ring_within_a_bounded_delay(site: Site) -> None:
    one = make_service(await site.open())
    two = make_service(await site.open())
    w_two = await watch_of(two)
    await deliver(one, "INBOX", b"m")
    await rung(w_two)
    assert [e.uids for e in added(await w_two.catch_up())] == [(1,)]
    w_one = await watch_of(one)
    await w_one.store_flags([1], FlagOp.ADD, ["\\Seen"])
    await rung(w_two)
    assert [type(e) for e in await w_two.catch_up()] == [FlagsChanged]


async def test_own_store_over_an_unseen_change_reports_both(site: Site) -> None:
    """Another instance changed the message and this watch has not caught up:
    its next catch-up reports the latest flags, both changes included."""
    one = make_service(await site.open())
    two = make_service(await site.open())
    await deliver(one, "INBOX", b"m")
    mine = await watch_of(one)
    other = await watch_of(two)
    await other.store_flags([1], FlagOp.ADD, ["\\Flagged"])
    result = await mine.store_flags([1], FlagOp.ADD, ["\\Seen"])
    assert result.states[0].flags == ("\\Flagged", "\\Seen")
    events = await mine.catch_up()
    assert len(events) == 1 and isinstance(events[0], FlagsChanged)
    assert [s.flags for s in events[0].states] == [("\\Flagged", "\\Seen")]


async def test_concurrent_deliveries_from_two_instances(site: Site) -> None:
    services = [make_service(await site.open()) for _ in range(2)]
    await services[0].status(U, "INBOX")  # the user exists before the race

    async def writer(n: int) -> list[int]:
        service = services[n % 2]
        return [(await deliver(service, "INBOX", b"w%d-%d" % (n, i))).uid for i in range(10)]

    per_writer = await together(writer(n) for n in range(4))
    assert sorted(u for uids in per_writer for u in uids) == list(range(1, 41))
    for uids in per_writer:
        assert uids == sorted(uids)


# --- restart -----------------------------------------------------------------------

async def test_reopen_keeps_everything_and_continues_counters(site: Site) -> None:
    first_backend = await site.open()
    first = make_service(first_backend)
    for i in range(3):
        await deliver(first, "INBOX", b"body %d" % i, ["kw%d" % i])
    watch = await watch_of(first)
    await watch.store_flags([3], FlagOp.ADD, ["\\Deleted"])
    await watch.expunge()
    before = await first.status(U, "INBOX")
    records = await watch.fetch_records(with_meta=True)
    await site.close(first_backend)

    second = make_service(await site.open())
    assert await second.status(U, "INBOX") == before
    again = await watch_of(second)
    assert await again.fetch_records(with_meta=True) == records
    assert await again.read_message(2) == b"body 1"
    assert await again.expunged_since(0) == [3]
    assert (await deliver(second, "INBOX", b"new")).uid == 4
    await again.store_flags([1], FlagOp.ADD, ["\\Seen"])
    assert (await second.status(U, "INBOX")).highestmodseq == before.highestmodseq + 2
    assert (await flags_by_uid(again))[1] == ("\\Seen", "kw0")


# --- batches at the edges ------------------------------------------------------------

async def test_a_message_added_and_expunged_between_catch_ups_is_never_announced(
    service: MailService,
) -> None:
    watch = await watch_of(service, readonly=True)
    other = await watch_of(service)
    await deliver(service, "INBOX", b"short-lived", ["\\Deleted"])
    await deliver(service, "INBOX", b"stays")
    await other.expunge()
    assert await watch.catch_up() == [MessagesAdded((2,), frozenset())]
    assert (await watch.catch_up()) == []


async def test_rename_comes_after_the_changes_in_one_batch(service: MailService) -> None:
    await service.create_mailbox(U, "Box")
    watch = await watch_of(service, name="Box")
    await deliver(service, "Box", b"m")
    await service.rename_mailbox(U, "Box", "Renamed")
    events = await watch.catch_up()
    assert [type(e) for e in events] == [MessagesAdded, MailboxRenamed]
    assert events[1] == MailboxRenamed("Renamed") and watch.name == "Renamed"


async def test_a_ring_during_catch_up_is_not_lost(service: MailService) -> None:
    """Whatever the interleaving of a catch-up and a delivery, afterwards the
    watch either reported the message or has its doorbell set."""
    watch = await watch_of(service)
    for n in range(1, 6):
        results = await together([watch.catch_up(), _deliver_uid(service, n)])
        reported = [u for e in added(results[0]) for u in e.uids]
        assert reported == [n] or watch.rang, (n, results)
        if not reported:
            assert [u for e in added(await watch.catch_up()) for u in e.uids] == [n]


async def _deliver_uid(service: MailService, n: int) -> list[ChangeEvent]:
    result = await deliver(service, "INBOX", b"m%d" % n)
    assert result.uid == n
    return []


async def test_service_close_closes_its_watches(site: Site) -> None:
    one = make_service(await site.open())
    watch = await watch_of(one)
    rings: list[str] = []
    watch.on_ring = lambda: rings.append("rang")
    await one.close()
    site.closed.add(id(one.backend))  # closed by the service, not by the site
    other = make_service(await site.open())
    await deliver(other, "INBOX", b"m")
    assert rings == []

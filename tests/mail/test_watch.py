"""MailboxWatch on MemoryBackend: catch_up semantics (what is reported, in
which order, \\Recent ownership across sessions and backends), doorbells,
operations through a watch, serialized concurrent catch-ups."""

from __future__ import annotations

import datetime
from typing import Any, Coroutine, Generator, Sequence, TypeVar

import pytest

from imapd.mail.backend import Changes, MailboxRef
from imapd.mail.errors import InvalidFlag, NoSuchMailbox, ReadOnly, TargetMissing
from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged,
)
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem, FlagState
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from imapd.storage.memory import MemoryBackend, MemoryData
from tests.support.inline import run_inline as run

T = TypeVar("T")
U = "alice"
DATE = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)




def deliver(
    service: MailService, *flag_lists: Sequence[str], box: str = "INBOX"
) -> tuple[int, ...]:
    items = [AppendItem(b"Subject: x\r\n\r\n%d" % i, tuple(f), DATE, b"-")
             for i, f in enumerate(flag_lists)]
    return run(service.deliver(U, box, items)).uids


def open_(service: MailService, readonly: bool = False, box: str = "INBOX") -> MailboxWatch:
    return run(service.open(U, box, readonly))


def catch_up(watch: MailboxWatch) -> list[ChangeEvent]:
    return run(watch.catch_up())


@pytest.fixture
def service() -> MailService:
    return MailService(MemoryBackend())


# --- basics -------------------------------------------------------------------------------

def test_nothing_changed_is_empty_and_rang_is_cleared(service: MailService) -> None:
    watch = open_(service)
    assert catch_up(watch) == [] and not watch.rang
    rings: list[int] = []
    watch.on_ring = lambda: rings.append(1)
    deliver(service, ())
    assert watch.rang and rings == [1]
    assert catch_up(watch) == [MessagesAdded((1,), frozenset({1}))]
    assert not watch.rang and catch_up(watch) == []
    assert (watch.highestmodseq, watch.uidnext) == (2, 2)


def test_one_batch_in_event_order(service: MailService) -> None:
    run(service.create_mailbox(U, "box"))
    other = MailService(service.backend)  # another session's changes
    deliver(other, (), (), box="box")
    watch = open_(service, box="box")
    mine = open_(other, box="box")
    run(mine.store_flags([1], FlagOp.ADD, ["\\Deleted"]))
    run(mine.expunge())
    run(mine.store_flags([2], FlagOp.ADD, ["\\Seen"]))
    deliver(other, ["Todo", "\\Flagged"], ["Later", "Todo"], box="box")
    run(other.rename_mailbox(U, "box", "renamed"))
    events = catch_up(watch)
    assert events == [
        MessagesExpunged((1,), 4),
        FlagsChanged((FlagState(2, ("\\Seen",), 5),)),
        MessagesAdded((3, 4), frozenset(), ("Todo", "Later")),  # `mine` claimed them
        MailboxRenamed("renamed"),
    ]
    assert watch.name == "renamed"


def test_added_and_expunged_between_catch_ups_is_not_reported(service: MailService) -> None:
    watch = open_(service, readonly=True)
    other = open_(service)
    deliver(service, ["\\Deleted"])
    run(other.expunge())
    assert catch_up(watch) == []
    assert watch.uidnext == 2  # but the watch moved past it


def test_own_changes_are_reported_too(service: MailService) -> None:
    deliver(service, ())
    watch = open_(service)
    result = run(watch.store_flags([1], FlagOp.ADD, ["\\Answered"]))
    assert result.changed == frozenset({1})
    assert catch_up(watch) == [FlagsChanged((FlagState(1, ("\\Answered",), 3),))]
    run(watch.store_flags([1], FlagOp.ADD, ["\\Deleted"]))
    assert run(watch.expunge()) == [1]
    assert catch_up(watch) == [MessagesExpunged((1,), 5)]


# --- \Recent -------------------------------------------------------------------------------

def test_recent_claimed_exactly_once_across_two_backends() -> None:
    data = MemoryData()
    one, two = MailService(MemoryBackend(data)), MailService(MemoryBackend(data))
    third = MailService(MemoryBackend(data))  # delivers; has no watch
    watches = [open_(one), open_(two), open_(one), open_(two)]
    for round_ in range(3):
        uids = deliver(third, (), ())
        assert all(w.rang for w in watches)
        # A different session catches up first each round.
        order = watches[round_:] + watches[:round_]
        recent = [catch_up(w)[0] for w in order]
        assert all(isinstance(e, MessagesAdded) and e.uids == uids for e in recent)
        owners = [w for w, e in zip(order, recent)
                  if isinstance(e, MessagesAdded) and e.recent]
        assert len(owners) == 1 and owners[0] is order[0]
        assert isinstance(recent[0], MessagesAdded) and recent[0].recent == frozenset(uids)
    assert run(third.status(U, "INBOX")).recent == 0


def test_delivery_claim_in_one_backend_excludes_the_other() -> None:
    data = MemoryData()
    one, two = MailService(MemoryBackend(data)), MailService(MemoryBackend(data))
    here, there = open_(one), open_(two)
    deliver(one, ())  # claimed in the append transaction for `here`
    assert catch_up(there) == [MessagesAdded((1,), frozenset())]
    assert catch_up(here) == [MessagesAdded((1,), frozenset({1}))]


def test_read_only_reports_unclaimed_without_claiming(service: MailService) -> None:
    examine = open_(service, readonly=True)
    deliver(service, ())
    assert catch_up(examine) == [MessagesAdded((1,), frozenset({1}))]
    assert run(service.status(U, "INBOX")).recent == 1  # still unclaimed
    select = open_(service)
    assert select.snapshot.recent == frozenset({1})
    deliver(service, ())  # claimed for `select` at once
    assert catch_up(examine) == [MessagesAdded((2,), frozenset())]


def test_snapshot_recent_of_a_read_only_open(service: MailService) -> None:
    deliver(service, (), ())
    open_(service)  # claims 1 and 2
    deliver(MailService(service.backend), ())
    examine = open_(service, readonly=True)
    assert examine.snapshot.recent == frozenset({3})


# --- rename and delete ----------------------------------------------------------------------

def test_delete_is_reported_once_and_closes_the_watch(service: MailService) -> None:
    run(service.create_mailbox(U, "gone"))
    watch = open_(service, box="gone")
    run(service.delete_mailbox(U, "gone"))
    assert watch.rang
    assert catch_up(watch) == [MailboxDeleted()]
    assert watch.deleted and watch.closed and catch_up(watch) == []
    assert service.watches(watch.ref.id) == []
    with pytest.raises(NoSuchMailbox):
        run(watch.fetch_flags())


def test_delete_of_a_mailbox_with_inferiors_is_deleted_for_its_watch(
    service: MailService,
) -> None:
    run(service.create_mailbox(U, "p/q"))
    watch = open_(service, box="p")
    run(service.delete_mailbox(U, "p"))
    assert catch_up(watch) == [MailboxDeleted()]


def test_delete_and_recreate_is_deleted_not_continued(service: MailService) -> None:
    run(service.create_mailbox(U, "x"))
    watch = open_(service, box="x")
    run(service.delete_mailbox(U, "x"))
    run(service.create_mailbox(U, "x"))
    assert catch_up(watch) == [MailboxDeleted()]


def test_rename_of_a_superior_renames_the_watched_inferior(service: MailService) -> None:
    run(service.create_mailbox(U, "a/b"))
    watch = open_(service, box="a/b")
    run(service.rename_mailbox(U, "a", "z"))
    assert catch_up(watch) == [MailboxRenamed("z/b")]
    deliver(service, (), box="z/b")
    assert catch_up(watch) == [MessagesAdded((1,), frozenset({1}))]


def test_rename_inbox_expunges_from_the_inbox_watch(service: MailService) -> None:
    deliver(service, (), ())
    watch = open_(service)
    run(service.rename_mailbox(U, "INBOX", "old"))
    assert catch_up(watch) == [MessagesExpunged((1, 2), 3)]
    assert watch.name == "INBOX" and not watch.deleted


# --- operations through a watch ----------------------------------------------------------

def test_read_only_watch_refuses_changes_but_copies(service: MailService) -> None:
    run(service.create_mailbox(U, "t"))
    deliver(service, ())
    examine = open_(service, readonly=True)
    for call in (examine.store_flags([1], FlagOp.ADD, ["\\Seen"]), examine.expunge(),
                 examine.move([1], "t")):
        with pytest.raises(ReadOnly):
            run(call)
    assert run(examine.copy([1], "t")).pairs == ((1, 1),)


def test_store_with_bad_flags_is_invalid_flag(service: MailService) -> None:
    deliver(service, ())
    watch = open_(service)
    for flags in (["\\Recent"], ["\\Nope"]):
        with pytest.raises(InvalidFlag):
            run(watch.store_flags([1], FlagOp.ADD, flags))


def test_copy_and_move_targets(service: MailService) -> None:
    deliver(service, (), ())
    watch = open_(service)
    for target in ("Nope", "inbox/nothing"):
        with pytest.raises(TargetMissing):
            run(watch.copy([1], target))
    run(service.create_mailbox(U, "p/q"))
    run(service.delete_mailbox(U, "p"))
    with pytest.raises(TargetMissing):
        run(watch.move([1], "p"))
    assert run(watch.move([1], "p/q")).pairs == ((1, 1),)
    assert catch_up(watch) == [MessagesExpunged((1,), 3)]


def test_copy_claims_for_the_targets_watch(service: MailService) -> None:
    run(service.create_mailbox(U, "t"))
    deliver(service, ())
    source = open_(service)
    target = open_(service, box="t")
    result = run(source.copy([1], "t"))
    assert result.claimed == (1, 1) and target.owns_recent(1)
    assert catch_up(target) == [MessagesAdded((1,), frozenset({1}))]


def test_copy_into_the_open_mailbox_itself(service: MailService) -> None:
    deliver(service, ["Kw"])
    watch = open_(service)
    assert run(watch.copy([1], "INBOX")).pairs == ((1, 2),)
    assert catch_up(watch) == [MessagesAdded((2,), frozenset({2}), ("Kw",))]


def test_changes_and_expunged_since_do_not_move_the_watch(service: MailService) -> None:
    deliver(service, (), (), ["\\Deleted"])   # modseq 2
    watch = open_(service)
    run(watch.store_flags([2], FlagOp.ADD, ["\\Seen"]))  # 3
    run(watch.expunge())                                  # 4
    assert run(watch.changes_since(2)) == [FlagState(2, ("\\Seen",), 3)]
    assert [s.uid for s in run(watch.changes_since(0))] == [1, 2]
    assert run(watch.expunged_since(3)) == [3] and run(watch.expunged_since(4)) == []
    assert watch.highestmodseq == 2
    events = catch_up(watch)
    assert [type(e) for e in events] == [MessagesExpunged, FlagsChanged]


def test_close_unsubscribes_and_is_idempotent(service: MailService) -> None:
    watch = open_(service)
    backend = service.backend
    assert isinstance(backend, MemoryBackend)
    feed = backend._feed
    assert feed.subscriber_count(watch.ref.id) == 1
    watch.close()
    watch.close()
    assert feed.subscriber_count(watch.ref.id) == 0
    deliver(service, ())
    assert not watch.rang and catch_up(watch) == []
    with pytest.raises(NoSuchMailbox):
        run(watch.read_message(1))


# --- concurrency ----------------------------------------------------------------------------

class Pause:
    """An awaitable that suspends its coroutine once (the test resumes it)."""

    def __await__(self) -> Generator[Any, None, None]:
        yield self


class PausingBackend(MemoryBackend):
    """changes_since suspends before reading, like a backend on a thread."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int]] = []

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        await Pause()
        self.reads.append((modseq, uidnext))
        return await super().changes_since(ref, modseq, uidnext)


class PauseSignal:
    """Waiting suspends once; the test resumes the waiter (``fire`` is the
    test's ``send``), which then re-checks what it waits for."""

    def wait(self) -> Pause:
        return Pause()

    def fire(self) -> None:
        pass


class PausingRuntime:
    def sleep(self, seconds: float) -> Pause:
        return Pause()

    def signal(self) -> PauseSignal:
        return PauseSignal()

    async def in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


def test_concurrent_catch_ups_are_serialized_and_rings_are_not_lost() -> None:
    backend = PausingBackend()
    service = MailService(backend, PausingRuntime())
    watch = open_(service)
    first, second = watch.catch_up(), watch.catch_up()
    assert isinstance(first.send(None), Pause)   # reading
    deliver(service, ())                          # rings during the read
    assert watch.rang
    assert isinstance(second.send(None), Pause)  # waiting for `first`
    assert isinstance(second.send(None), Pause)  # still waiting
    with pytest.raises(StopIteration) as done:
        first.send(None)
    assert done.value.value == [MessagesAdded((1,), frozenset({1}))]
    assert watch.rang  # cleared before the read, so the ring is still pending
    assert isinstance(second.send(None), Pause)  # now its own read
    with pytest.raises(StopIteration) as done:
        second.send(None)
    assert done.value.value == []  # not the same message twice
    assert backend.reads == [(1, 1), (2, 2)]


def test_concurrent_catch_up_without_runtime_is_refused() -> None:
    backend = PausingBackend()
    service = MailService(backend)
    watch = open_(service)
    first = watch.catch_up()
    first.send(None)
    with pytest.raises(RuntimeError):
        run(watch.catch_up())
    first.close()


class PauseAfterAppend(MemoryBackend):
    """append commits (and rings) and then suspends before returning, as a
    backend whose result hops back from a writer thread."""

    async def append(self, ref: MailboxRef, items: Sequence[AppendItem],
                     claim: bool = False) -> Any:
        result = await super().append(ref, items, claim)
        await Pause()
        return result


def test_catch_up_between_commit_and_return_of_a_claiming_delivery() -> None:
    """The ring arrives before ``deliver`` returns the claimed range; a
    catch-up in that gap must not report the claimer's new message as not
    recent (it would then be recent in no session at all)."""
    service = MailService(PauseAfterAppend(), PausingRuntime())
    watch = open_(service)
    delivery = service.deliver(U, "INBOX", [AppendItem(b"x", (), DATE, b"-")])
    assert isinstance(delivery.send(None), Pause)  # committed, rang, not returned
    assert watch.rang and watch.pending_claims == 1
    catching = watch.catch_up()
    assert isinstance(catching.send(None), Pause)  # waits for the claim
    with pytest.raises(StopIteration):
        delivery.send(None)
    with pytest.raises(StopIteration) as done:
        catching.send(None)
    assert done.value.value == [MessagesAdded((1,), frozenset({1}))]
    assert watch.pending_claims == 0


class DeleteBeforeClaim(MemoryBackend):
    """The mailbox is deleted by another session right after the catch-up
    read, before the watch claims the new messages."""

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        changes = await super().changes_since(ref, modseq, uidnext)
        if changes.added:
            await MailService(MemoryBackend(self.data)).delete_mailbox(U, "box")
        return changes


def test_deleted_between_read_and_claim_is_reported_deleted() -> None:
    backend = DeleteBeforeClaim()
    service = MailService(backend)
    run(service.create_mailbox(U, "box"))
    watch = open_(service, box="box")
    deliver(MailService(MemoryBackend(backend.data)), (), box="box")
    assert catch_up(watch) == [MailboxDeleted()]
    assert watch.deleted and watch.closed

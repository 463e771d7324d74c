"""MailService on MemoryBackend: names and errors, the hierarchy through
``edit_tree``, deliver (analysis, flags, \\Recent claims), open, close.

Two services over one MemoryData stand for two processes sharing a store.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Coroutine, Sequence, TypeVar

import pytest

from imapd.mail.errors import (
    AlreadyExists, Cannot, HasChildren, InvalidFlag, NoSuchMailbox, OverLimit, TargetMissing,
)
from imapd.mail.records import AppendItem
from imapd.mail.service import THREAD_ANALYSIS_THRESHOLD, MailService, analysis_blob
from imapd.message import MessageInfo
from imapd.storage.memory import MemoryBackend, MemoryData
from tests.support.inline import run_inline as run

T = TypeVar("T")
U = "alice"
DATE = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)
MESSAGE = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nbody\r\n"




def item(data: bytes = MESSAGE, *flags: str) -> AppendItem:
    return AppendItem(data, flags, DATE)


def names_of(service: MailService, pattern: str = "*") -> list[str]:
    return [i.name for i in run(service.list_mailboxes(U, "", pattern))]


class InlineRuntime:
    """A Runtime that records what ran "in a thread" and runs it inline."""

    def __init__(self) -> None:
        self.threaded: list[int] = []

    async def sleep(self, seconds: float) -> None:
        return None

    async def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.threaded.append(len(args[0]))
        return fn(*args, **kwargs)


@pytest.fixture
def service() -> MailService:
    return MailService(MemoryBackend())


# --- users and names ---------------------------------------------------------------

def test_first_operation_ensures_the_user_and_defaults_once(service: MailService) -> None:
    backend = MemoryBackend()
    provisioned = MailService(backend, default_mailboxes=[("sent", "\\Sent")])
    assert names_of(provisioned) == ["INBOX", "sent"]
    assert run(provisioned.subscriptions(U)) == ["sent"]
    run(provisioned.delete_mailbox(U, "sent"))
    # Another service (a restart) over the same store does not bring it back.
    again = MailService(backend, default_mailboxes=[("sent", "\\Sent")])
    assert names_of(again) == ["INBOX"]


def test_default_mailboxes_are_validated() -> None:
    with pytest.raises(ValueError):
        MailService(MemoryBackend(), default_mailboxes=[("inbox", None)])


@pytest.mark.parametrize("bad", ["", "a//b", "a*", "%", "/a", "a/../b", "x\x01"])
def test_invalid_names_are_cannot(service: MailService, bad: str) -> None:
    for call in (service.create_mailbox(U, bad), service.delete_mailbox(U, bad),
                 service.rename_mailbox(U, "INBOX", bad), service.subscribe(U, bad),
                 service.status(U, bad), service.open(U, bad, readonly=True)):
        with pytest.raises(Cannot):
            run(call)


def test_inbox_is_case_insensitive_everywhere(service: MailService) -> None:
    run(service.create_mailbox(U, "inbox/Sub/"))  # trailing delimiter dropped
    assert names_of(service) == ["INBOX", "INBOX/Sub"]
    run(service.deliver(U, "iNbOx", [item()]))
    assert run(service.status(U, "Inbox")).messages == 1
    assert run(service.open(U, "inbox", readonly=True)).name == "INBOX"
    with pytest.raises(AlreadyExists):
        run(service.create_mailbox(U, "Inbox"))
    with pytest.raises(NoSuchMailbox):
        run(service.status(U, "INBOX/sub"))  # only the INBOX level folds


# --- hierarchy through the backend ---------------------------------------------------

def test_create_delete_rename_follow_the_planner(service: MailService) -> None:
    run(service.create_mailbox(U, "a/b/c"))
    assert names_of(service) == ["INBOX", "a", "a/b", "a/b/c"]
    run(service.delete_mailbox(U, "a/b"))
    infos = {i.name: i.selectable for i in run(service.list_mailboxes(U, "", "*"))}
    assert infos == {"INBOX": True, "a": True, "a/b": False, "a/b/c": True}
    with pytest.raises(HasChildren):
        run(service.delete_mailbox(U, "a/b"))
    with pytest.raises(Cannot):
        run(service.delete_mailbox(U, "inbox"))
    with pytest.raises(Cannot):
        run(service.rename_mailbox(U, "a", "a/x"))
    run(service.rename_mailbox(U, "a/b/c", "z"))
    assert names_of(service) == ["INBOX", "a", "z"]  # the empty placeholder went
    with pytest.raises(NoSuchMailbox):
        run(service.delete_mailbox(U, "nope"))


def test_create_keeps_special_use_across_rename(service: MailService) -> None:
    run(service.create_mailbox(U, "Stuff", "\\Archive"))
    run(service.rename_mailbox(U, "Stuff", "Old/Stuff"))
    infos = {i.name: i.special_uses for i in run(service.list_mailboxes(U, "", "*"))}
    assert infos["Old/Stuff"] == ("\\Archive",)


def test_rename_inbox_moves_messages_and_keeps_inbox(service: MailService) -> None:
    run(service.deliver(U, "INBOX", [item(), item()]))
    before = run(service.status(U, "INBOX"))
    run(service.rename_mailbox(U, "inbox", "Saved"))
    inbox, saved = run(service.status(U, "INBOX")), run(service.status(U, "Saved"))
    assert (inbox.messages, inbox.uidnext, inbox.uidvalidity) == (0, 3, before.uidvalidity)
    assert (saved.messages, saved.uidnext) == (2, 3)
    assert saved.uidvalidity != before.uidvalidity


def test_subscriptions_are_normalized_and_idempotent(service: MailService) -> None:
    run(service.subscribe(U, "inbox/x"))
    run(service.subscribe(U, "INBOX/x"))
    run(service.subscribe(U, "Nowhere"))
    assert run(service.subscriptions(U)) == ["INBOX/x", "Nowhere"]
    run(service.unsubscribe(U, "Nowhere"))
    run(service.unsubscribe(U, "Nowhere"))
    assert run(service.subscriptions(U)) == ["INBOX/x"]
    lsub = run(service.list_mailboxes(U, "", "*", subscribed_only=True))
    assert [(i.name, i.exists) for i in lsub] == [("INBOX/x", False)]


def test_list_empty_pattern_and_pattern_budget(service: MailService) -> None:
    assert run(service.list_mailboxes(U, "x/", "")) == []
    # 320 names of ~1000 characters that a pattern with ``%`` must read to
    # the end: more than listpattern.MAX_STEPS characters for one command.
    level = "a" * 250
    for index in range(320):
        run(service.create_mailbox(U, f"{level}/{level}/{level}/{index:0>240}a"))
    assert len(run(service.list_mailboxes(U, "", "*a"))) == 323  # ``*`` alone is free
    with pytest.raises(OverLimit):
        run(service.list_mailboxes(U, "", "*a%a"))


def test_status_of_placeholder_is_no_such_mailbox(service: MailService) -> None:
    run(service.create_mailbox(U, "p/q"))
    run(service.delete_mailbox(U, "p"))
    with pytest.raises(NoSuchMailbox):
        run(service.status(U, "p"))
    with pytest.raises(NoSuchMailbox):
        run(service.open(U, "p", readonly=False))


# --- deliver ---------------------------------------------------------------------------

def test_deliver_stores_the_analysis_as_meta(service: MailService) -> None:
    result = run(service.deliver(U, "INBOX", [item(MESSAGE, "\\Seen", "Kw")]))
    watch = run(service.open(U, "INBOX", readonly=True))
    (record,) = run(watch.fetch_records(result.uids, with_meta=True))
    assert record.meta == analysis_blob(MESSAGE) and record.flags == ("\\Seen", "Kw")
    assert MessageInfo.from_bytes(record.meta).size == len(MESSAGE)


def test_deliver_analyses_large_messages_in_a_thread() -> None:
    runtime = InlineRuntime()
    service = MailService(MemoryBackend(), runtime)
    large = MESSAGE + b"x" * THREAD_ANALYSIS_THRESHOLD
    run(service.deliver(U, "INBOX", [item(MESSAGE), item(large)]))
    assert runtime.threaded == [len(large)]


def test_deliver_refuses_bad_flags_before_storing(service: MailService) -> None:
    for flags in (("\\Recent",), ("\\Unknown",), ("bad(kw",)):
        with pytest.raises(InvalidFlag):
            run(service.deliver(U, "INBOX", [item(), item(MESSAGE, *flags)]))
    assert run(service.status(U, "INBOX")).uidnext == 1


def test_deliver_to_missing_or_placeholder_is_target_missing(service: MailService) -> None:
    with pytest.raises(TargetMissing):
        run(service.deliver(U, "Nope", [item()]))
    run(service.create_mailbox(U, "p/q"))
    run(service.delete_mailbox(U, "p"))
    with pytest.raises(TargetMissing):
        run(service.deliver(U, "p", [item()]))


def test_multiappend_is_one_call_with_consecutive_uids(service: MailService) -> None:
    result = run(service.deliver(U, "INBOX", [item(), item(), item()]))
    assert result.uids == (1, 2, 3)
    assert run(service.status(U, "INBOX")).highestmodseq == 2  # one MODSEQ


def test_deliver_claims_for_the_longest_open_read_write_watch(service: MailService) -> None:
    examine = run(service.open(U, "INBOX", readonly=True))
    first = run(service.open(U, "INBOX", readonly=False))
    second = run(service.open(U, "INBOX", readonly=False))
    result = run(service.deliver(U, "INBOX", [item()]))
    assert result.claimed == (1, 1)
    assert first.owns_recent(1) and not second.owns_recent(1)
    assert service.claimer(first.ref.id) is first
    first.close()
    assert service.claimer(first.ref.id) is second
    assert run(service.deliver(U, "INBOX", [item()])).claimed == (2, 2)
    assert second.owns_recent(2) and not examine.owns_recent(2)


def test_deliver_without_a_watch_leaves_messages_unclaimed(service: MailService) -> None:
    assert run(service.deliver(U, "INBOX", [item()])).claimed is None
    assert run(service.status(U, "INBOX")).recent == 1
    run(service.open(U, "INBOX", readonly=True))  # read-only watches never claim
    assert run(service.deliver(U, "INBOX", [item()])).claimed is None
    assert run(service.status(U, "INBOX")).recent == 2


def test_another_services_watch_does_not_claim_this_delivery() -> None:
    data = MemoryData()
    one, two = MailService(MemoryBackend(data)), MailService(MemoryBackend(data))
    watch = run(one.open(U, "INBOX", readonly=False))
    assert run(two.deliver(U, "INBOX", [item()])).claimed is None
    assert watch.rang  # but its doorbell rang, across the backends
    assert run(one.status(U, "INBOX")).recent == 1


# --- open and close ------------------------------------------------------------------

def test_open_read_write_claims_and_read_only_does_not(service: MailService) -> None:
    run(service.deliver(U, "INBOX", [item(), item()]))
    examine = run(service.open(U, "INBOX", readonly=True))
    assert examine.snapshot.recent == frozenset({1, 2})
    select = run(service.open(U, "INBOX", readonly=False))
    assert select.snapshot.recent == frozenset({1, 2})
    assert select.snapshot.uids == (1, 2) and select.snapshot.uidnext == 3
    again = run(service.open(U, "INBOX", readonly=False))
    assert again.snapshot.recent == frozenset()
    assert run(service.open(U, "INBOX", readonly=True)).snapshot.recent == frozenset()


def test_close_closes_watches_and_the_backend() -> None:
    backend = MemoryBackend()
    service = MailService(backend)
    watch = run(service.open(U, "INBOX", readonly=False))
    run(service.close())
    assert watch.closed and service.watches(watch.ref.id) == []
    assert backend.closed


class CountingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.ensured: list[str] = []

    async def ensure_user(
        self, user: str, defaults: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        self.ensured.append(user)
        await super().ensure_user(user, defaults)


def test_ensure_user_runs_once_per_user_and_service() -> None:
    backend = CountingBackend()
    service = MailService(backend)
    run(service.status(U, "INBOX"))
    run(service.create_mailbox(U, "x"))
    run(service.list_mailboxes("bob", "", "*"))
    watch = run(service.open(U, "INBOX", readonly=False))
    run(watch.copy([], "x"))
    assert backend.ensured == [U, "bob"]


class ReadCountingBackend(MemoryBackend):
    """Counts ``changes_since`` reads; ``during_read`` runs inside one."""

    def __init__(self, data: MemoryData | None = None) -> None:
        super().__init__(data)
        self.reads = 0
        self.during_read: list[Any] = []

    async def changes_since(self, ref: Any, modseq: int, uidnext: int) -> Any:
        self.reads += 1
        result = await super().changes_since(ref, modseq, uidnext)
        while self.during_read:
            self.during_read.pop()()
        return result


def test_watches_of_one_mailbox_share_one_catch_up_read() -> None:
    """10 idlers, one delivery: one changes_since read answers them all
    (the push to 10,000 idlers costs one query, not 10,000)."""
    backend = ReadCountingBackend()
    service = MailService(backend)
    watches = [run(service.open(U, "INBOX", readonly=False)) for _ in range(10)]
    run(service.deliver(U, "INBOX", [item()]))
    backend.reads = 0
    batches = [run(w.catch_up()) for w in watches]
    assert backend.reads == 1
    assert all(b[0].uids == (1,) for b in batches)  # type: ignore[union-attr]
    # \Recent went to exactly one of them (the claimer, in the delivery).
    assert sum(len(b[0].recent) for b in batches) == 1  # type: ignore[union-attr]


def test_a_ring_during_the_shared_read_is_not_answered_from_it() -> None:
    """A read during which the doorbell rang may predate that change: the
    next watch reads again and sees it."""
    data = MemoryData()
    backend = ReadCountingBackend(data)
    other = MailService(MemoryBackend(data))  # another process on the same store
    service = MailService(backend)
    first = run(service.open(U, "INBOX", readonly=False))
    second = run(service.open(U, "INBOX", readonly=False))
    run(service.deliver(U, "INBOX", [item()]))
    # Another process commits while `first` reads: the ring lands mid-read.
    backend.during_read.append(lambda: run(other.deliver(U, "INBOX", [item()])))
    run(first.catch_up())
    backend.reads = 0
    events = run(second.catch_up())
    assert backend.reads == 1
    assert events[0].uids == (1, 2)  # type: ignore[union-attr]


def test_read_only_watches_do_not_use_a_shared_read() -> None:
    """EXAMINE reports unclaimed messages as recent: it must see a claim
    made after another watch's read, so it reads for itself."""
    data = MemoryData()
    backend = ReadCountingBackend(data)
    service = MailService(backend)
    other = MailService(MemoryBackend(data))
    writer = run(service.open(U, "INBOX", readonly=False))
    examiner = run(service.open(U, "INBOX", readonly=True))
    run(other.deliver(U, "INBOX", [item()]))  # no claimer in that process
    added = run(writer.catch_up())[0]
    assert added.recent == frozenset({1})  # type: ignore[union-attr]
    examined = run(examiner.catch_up())[0]
    assert examined.uids == (1,) and examined.recent == frozenset()  # type: ignore[union-attr]


def test_a_mailbox_nobody_watches_keeps_no_shared_read() -> None:
    """The shared catch-up state of a mailbox goes with its last watch, so
    a long-running server does not keep one per mailbox ever opened."""
    service = MailService(ReadCountingBackend())
    first = run(service.open(U, "INBOX", readonly=False))
    second = run(service.open(U, "INBOX", readonly=False))
    run(service.deliver(U, "INBOX", [item()]))
    run(first.catch_up())
    assert service._last_read and service._rings
    first.close()
    assert service._last_read  # `second` may still use it
    second.close()
    assert service._last_read == {} and service._rings == {}

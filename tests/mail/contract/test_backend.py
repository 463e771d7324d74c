"""The mail contract, part 4: ``MailBackend`` itself, below the service
(imapd/mail/backend.py: identity, UIDs and MODSEQs (RFC 3501 §2.3.1.1,
RFC 7162 §3.1), \\Recent compare-and-set (RFC 3501 §2.3.2),
``changes_since``, ``edit_tree`` atomicity, doorbells)."""

from __future__ import annotations

import datetime
from typing import Sequence

from imapd.mail.backend import (
    AddMailbox, MailBackend, MailboxEntry, MailboxRef, RemoveMailbox, RenameMailbox, TransferMessages,
)
from imapd.mail.errors import Cannot, MailError, NoSuchMailbox
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from tests.mail.contract.conftest import U, Site, refused, together

WHEN = datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


async def ref_of(backend: MailBackend, name: str = "INBOX") -> MailboxRef:
    await backend.ensure_user(U)
    entry = await backend.lookup(U, name)
    assert entry is not None, name
    return entry.ref


async def add(backend: MailBackend, *names: str) -> None:
    await backend.ensure_user(U)
    await backend.edit_tree(U, lambda tree: [AddMailbox(n) for n in names])


def items(count: int, flags: tuple[str, ...] = ()) -> list[AppendItem]:
    return [AppendItem(b"body %d" % i, flags) for i in range(count)]


class Bell:
    """Records the rings of one subscription."""

    def __init__(self, backend: MailBackend, ref: MailboxRef) -> None:
        self.rings: list[tuple[int, int]] = []
        self.stop = backend.feed.subscribe(ref.id, lambda box, modseq: self.rings.append((box, modseq)))

    def take(self) -> list[tuple[int, int]]:
        rings, self.rings = self.rings, []
        return rings


# --- users and trees ----------------------------------------------------------------

async def test_ensure_user_makes_inbox_and_defaults_once(backend: MailBackend) -> None:
    assert await backend.lookup(U, "INBOX") is None
    await backend.ensure_user(U, [("Sent", "\\Sent")])
    names = [(e.name, e.selectable, e.special_use) for e in await backend.mailboxes(U)]
    assert names == [("INBOX", True, None), ("Sent", True, "\\Sent")]
    assert await backend.subscriptions(U) == ["Sent"]
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Sent")])
    # Sent was provisioned once and deleted: not recreated. Trash is a
    # default the operator added later: it reaches the existing user.
    await backend.ensure_user(U, [("Sent", "\\Sent"), ("Trash", None)])
    assert [e.name for e in await backend.mailboxes(U)] == ["INBOX", "Trash"]
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Trash")])
    await backend.ensure_user(U, [("Sent", "\\Sent"), ("Trash", None)])
    assert [e.name for e in await backend.mailboxes(U)] == ["INBOX"]


async def test_new_mailbox_starts_at_uidnext_1_and_modseq_1(backend: MailBackend) -> None:
    await add(backend, "Box")
    status = await backend.status(await ref_of(backend, "Box"))
    assert (status.messages, status.uidnext, status.highestmodseq, status.recent) == (0, 1, 1, 0)


async def test_uidvalidity_is_never_reused(backend: MailBackend) -> None:
    seen = {(await ref_of(backend)).uidvalidity}
    for _ in range(3):
        await add(backend, "Box")
        ref = await ref_of(backend, "Box")
        assert ref.uidvalidity not in seen
        seen.add(ref.uidvalidity)
        await backend.edit_tree(U, lambda tree: [RemoveMailbox("Box")])


async def test_stale_ref_is_no_such_mailbox(backend: MailBackend) -> None:
    await add(backend, "Box")
    old = await ref_of(backend, "Box")
    await backend.append(old, items(1))
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Box")])
    await add(backend, "Box")
    new = await ref_of(backend, "Box")
    assert new.uidvalidity != old.uidvalidity
    for call in (backend.status(old), backend.snapshot(old), backend.fetch_records(old),
                 backend.append(old, items(1)), backend.expunge(old),
                 backend.store_flags(old, [1], FlagOp.ADD, ["\\Seen"])):
        await refused(NoSuchMailbox, call)
    # The new mailbox has a UID 1; the old ref must not read it.
    await backend.append(new, items(1))
    for read in (backend.read_message(old, 1), backend.open_message(old, 1),
                 backend.fetch_flags(old, [1]), backend.fetch_records(old, [1])):
        await refused(NoSuchMailbox, read)
    assert await backend.read_message(new, 1) == b"body 0"
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Box")])
    await add(backend, "Box")
    new = await ref_of(backend, "Box")
    # A stale ref whose id is reused would be worse than an error: the new
    # mailbox has no messages and old UIDs stay unknown.
    assert (await backend.status(new)).messages == 0
    changes = await backend.changes_since(old, 0, 1)
    assert not changes.exists and changes.added == () and changes.uidnext == 0


async def test_edit_tree_applies_nothing_when_the_plan_raises(backend: MailBackend) -> None:
    await add(backend, "Keep")
    seen: list[list[str]] = []

    def plan(tree: Sequence[MailboxEntry]) -> list[AddMailbox]:
        seen.append([e.name for e in tree])
        raise Cannot("refused by the plan")

    await refused(Cannot, backend.edit_tree(U, plan))
    assert seen == [["INBOX", "Keep"]]
    assert [e.name for e in await backend.mailboxes(U)] == ["INBOX", "Keep"]


async def test_edit_tree_is_all_or_nothing_when_an_edit_fails(backend: MailBackend) -> None:
    """The second edit conflicts (a row ``Keep`` exists): the first one must
    not be left behind either."""
    await add(backend, "Keep")
    before = await backend.mailboxes(U)
    try:
        await backend.edit_tree(U, lambda tree: [AddMailbox("Fresh"), AddMailbox("Keep")])
    except Exception:  # noqa: BLE001 - the contract names no class; nothing may change
        pass
    else:
        raise AssertionError("adding an existing row must fail")
    assert await backend.mailboxes(U) == before


async def test_edit_tree_calls_do_not_interleave(backend: MailBackend) -> None:
    """Each plan sees the tree the previous edit left: five concurrent
    'add box<N> where N = rows now' must make five distinct boxes."""
    await backend.ensure_user(U)

    def plan(tree: Sequence[MailboxEntry]) -> list[AddMailbox]:
        return [AddMailbox("box%d" % len(tree))]

    await together(backend.edit_tree(U, plan) for _ in range(5))
    assert [e.name for e in await backend.mailboxes(U)] == [
        "INBOX", "box1", "box2", "box3", "box4", "box5"]


async def test_rename_keeps_identity_and_history(backend: MailBackend) -> None:
    await backend.ensure_user(U)
    await backend.edit_tree(U, lambda tree: [AddMailbox("Old", special_use="\\Archive")])
    ref = await ref_of(backend, "Old")
    await backend.append(ref, items(2))
    await backend.store_flags(ref, [1], FlagOp.ADD, ["\\Deleted"])
    await backend.expunge(ref)
    before = await backend.status(ref)
    await backend.edit_tree(U, lambda tree: [RenameMailbox("Old", "New")])
    assert await backend.lookup(U, "Old") is None
    assert await ref_of(backend, "New") == ref
    entry = await backend.lookup(U, "New")
    assert entry is not None and entry.special_use == "\\Archive" and entry.selectable
    after = await backend.status(ref)
    assert (after.uidnext, after.highestmodseq, after.messages) == (
        before.uidnext, before.highestmodseq, before.messages)
    changes = await backend.changes_since(ref, 0, 1)
    assert changes.exists and changes.name == "New"
    assert [uid for uid, _ in changes.expunged] == [1]


async def test_transfer_messages(backend: MailBackend) -> None:
    await backend.ensure_user(U)
    inbox = await ref_of(backend)
    await backend.append(inbox, [AppendItem(b"a", ("\\Seen",), WHEN, b"meta-a"), AppendItem(b"b")])
    records = await backend.fetch_records(inbox, with_meta=True)
    top = (await backend.status(inbox)).highestmodseq
    await backend.edit_tree(U, lambda tree: [AddMailbox("Moved"), TransferMessages("INBOX", "Moved")])
    moved = await ref_of(backend, "Moved")
    assert [(r.uid, r.flags, r.internal_date, r.size, r.meta)
            for r in await backend.fetch_records(moved, with_meta=True)] == [
        (r.uid, r.flags, r.internal_date, r.size, r.meta) for r in records]
    assert (await backend.status(moved)).uidnext == 3
    status = await backend.status(inbox)
    assert (status.messages, status.uidnext) == (0, 3)
    changes = await backend.changes_since(inbox, top, 3)
    assert changes.expunged == ((1, top + 1), (2, top + 1))


async def test_placeholder_rows(backend: MailBackend) -> None:
    await backend.ensure_user(U)
    await backend.edit_tree(U, lambda tree: [AddMailbox("p", selectable=False), AddMailbox("p/q")])
    entry = await backend.lookup(U, "p")
    assert entry is not None and not entry.selectable
    assert [(e.name, e.selectable) for e in await backend.mailboxes(U)] == [
        ("INBOX", True), ("p", False), ("p/q", True)]


async def test_snapshot_is_one_committed_state(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    await backend.append(ref, [AppendItem(b"a", ("\\Seen", "$One")), AppendItem(b"b", ("$Two",)),
                               AppendItem(b"c")])
    await backend.store_flags(ref, [1], FlagOp.ADD, ["\\Deleted"])
    await backend.expunge(ref)
    snap, recent_from = await backend.snapshot(ref)
    status = await backend.status(ref)
    assert list(snap.uids) == [2, 3] and snap.uidvalidity == ref.uidvalidity
    assert (snap.uidnext, snap.highestmodseq) == (status.uidnext, status.highestmodseq)
    assert snap.first_unseen == 2 and snap.recent == frozenset() and recent_from == 1
    assert {"$Two"} <= set(snap.keywords)


# --- UIDs and MODSEQs ----------------------------------------------------------------

async def test_append_assigns_consecutive_uids_under_one_modseq(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    result = await backend.append(ref, [AppendItem(b"x", ("\\Seen", "$K"), WHEN, b"\x00meta")] + items(2))
    assert result.uids == (1, 2, 3) and result.uidvalidity == ref.uidvalidity
    assert result.claimed is None
    records = await backend.fetch_records(ref, with_meta=True)
    assert {r.modseq for r in records} == {2}
    assert records[0].meta == b"\x00meta" and records[0].internal_date == WHEN
    assert records[0].flags == ("\\Seen", "$K") and records[0].size == 1
    assert (await backend.status(ref)).highestmodseq == 2


async def test_a_call_that_changes_nothing_assigns_no_modseq(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    await backend.append(ref, items(2))
    top = (await backend.status(ref)).highestmodseq
    await backend.store_flags(ref, [1, 2], FlagOp.REMOVE, ["\\Seen"])
    assert await backend.expunge(ref) == []
    assert (await backend.copy(ref, [99], ref)).pairs == ()
    assert (await backend.status(ref)).highestmodseq == top
    assert (await backend.changes_since(ref, top, 3)).changed == ()


async def test_uids_ascend_in_commit_order_under_concurrency(site: Site) -> None:
    one, two = await site.open(), await site.open()
    ref = await ref_of(one)
    results = await together((one if n % 2 else two).append(ref, items(3)) for n in range(8))
    uid_lists = [r.uids for r in results]
    for uids in uid_lists:
        assert list(uids) == list(range(uids[0], uids[0] + 3))
    assert sorted(u for uids in uid_lists for u in uids) == list(range(1, 25))
    modseqs = [r.modseq for r in await one.fetch_records(ref)]
    assert modseqs == sorted(modseqs), "a lower UID committed after a higher one"


# --- \Recent compare-and-set --------------------------------------------------------

async def test_claim_recent_is_exactly_once_under_concurrent_callers(site: Site) -> None:
    one, two = await site.open(), await site.open()
    ref = await ref_of(one)
    await one.append(ref, items(6))
    results = await together((one if n % 2 else two).claim_recent(ref, 7) for n in range(6))
    claimed = [r for r in results if r is not None]
    uids = sorted(u for low, high in claimed for u in range(low, high + 1))
    assert uids == [1, 2, 3, 4, 5, 6]
    assert await one.claim_recent(ref, 7) is None
    assert (await two.status(ref)).recent == 0


async def test_claim_recent_stops_below_uidnext(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    await backend.append(ref, items(4))
    snap, recent_from = await backend.snapshot(ref)
    assert recent_from == 1 and snap.recent == frozenset()
    assert await backend.claim_recent(ref, 3) == (1, 2)
    assert (await backend.snapshot(ref))[1] == 3
    assert (await backend.status(ref)).recent == 2
    assert await backend.claim_recent(ref, 3) is None
    assert await backend.claim_recent(ref, 5) == (3, 4)


async def test_append_and_copy_can_claim_in_the_same_call(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    await backend.append(ref, items(2))
    result = await backend.append(ref, items(1), claim=True)
    assert result.claimed == (1, 3)  # the new UID and the older unclaimed ones
    assert await backend.claim_recent(ref, 4) is None
    copied = await backend.copy(ref, [1], ref, claim=True)
    assert copied.pairs == ((1, 4),) and copied.claimed == (4, 4)
    assert (await backend.status(ref)).recent == 0


# --- changes_since ---------------------------------------------------------------------

async def test_changes_since_splits_changed_added_and_expunged(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    await backend.append(ref, items(4))
    mark = (await backend.status(ref)).highestmodseq
    await backend.store_flags(ref, [2], FlagOp.ADD, ["\\Deleted"])
    await backend.store_flags(ref, [3], FlagOp.ADD, ["\\Seen"])
    await backend.expunge(ref)
    await backend.append(ref, [AppendItem(b"new", ("$K",))])
    await backend.claim_recent(ref, 3)
    changes = await backend.changes_since(ref, mark, 5)
    status = await backend.status(ref)
    assert changes.exists and changes.name == "INBOX"
    assert changes.highestmodseq == status.highestmodseq and changes.uidnext == 6
    assert [(s.uid, s.flags) for s in changes.changed] == [(3, ("\\Seen",))]
    assert [(s.uid, s.flags) for s in changes.added] == [(5, ("$K",))]
    assert [uid for uid, _ in changes.expunged] == [2]
    assert changes.expunged[0][1] == mark + 3
    assert changes.recent_from == 3
    # A caller that already knew UID 5 sees it as changed only if it changed.
    later = await backend.changes_since(ref, status.highestmodseq, 6)
    assert (later.changed, later.added, later.expunged) == ((), (), ())
    # Expunges of UIDs the caller never knew are still reported (any UID).
    early = await backend.changes_since(ref, 0, 1)
    assert [uid for uid, _ in early.expunged] == [2]
    assert [s.uid for s in early.added] == [1, 3, 4, 5]


async def test_changes_since_a_removed_mailbox(backend: MailBackend) -> None:
    await add(backend, "Box")
    ref = await ref_of(backend, "Box")
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Box")])
    changes = await backend.changes_since(ref, 1, 1)
    assert not changes.exists
    assert (changes.changed, changes.added, changes.expunged) == ((), (), ())


# --- doorbells ------------------------------------------------------------------------

async def test_every_mutation_rings_before_it_returns(backend: MailBackend) -> None:
    await add(backend, "Other", "Gone", "Renamed")
    ref, other = await ref_of(backend), await ref_of(backend, "Other")
    gone, renamed = await ref_of(backend, "Gone"), await ref_of(backend, "Renamed")
    bell, other_bell = Bell(backend, ref), Bell(backend, other)
    await backend.append(ref, items(3))
    assert bell.take() and other_bell.take() == []
    await backend.store_flags(ref, [1, 2], FlagOp.ADD, ["\\Deleted"])
    assert bell.take()
    await backend.expunge(ref, [1])
    assert bell.take()
    await backend.copy(ref, [3], other)
    assert other_bell.take() and bell.take() == []
    await backend.copy(ref, [2], other, move=True)
    assert other_bell.take() and bell.take()
    gone_bell, renamed_bell = Bell(backend, gone), Bell(backend, renamed)
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Gone"), RenameMailbox("Renamed", "R2")])
    assert gone_bell.take() and renamed_bell.take()
    await backend.edit_tree(U, lambda tree: [AddMailbox("T"), TransferMessages("INBOX", "T")])
    assert bell.take()


async def test_rings_carry_the_mailbox_and_stop_after_unsubscribe(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    bell = Bell(backend, ref)
    await backend.append(ref, items(1))
    rings = bell.take()
    assert rings and all(box == ref.id for box, _ in rings)
    assert any(modseq == 2 for _, modseq in rings)
    bell.stop()
    bell.stop()  # idempotent
    await backend.append(ref, items(1))
    assert bell.take() == []


async def test_a_failed_call_changes_nothing(backend: MailBackend) -> None:
    ref = await ref_of(backend)
    await add(backend, "Gone")
    gone = await ref_of(backend, "Gone")
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Gone")])
    await backend.append(ref, items(2))
    before = await backend.status(ref)
    try:
        await backend.copy(ref, [1, 2], gone, move=True)
    except MailError as error:
        assert isinstance(error, NoSuchMailbox)
    else:
        raise AssertionError("MOVE into a removed mailbox must fail")
    assert await backend.status(ref) == before


def test_yielding_wrapper_covers_every_backend_method() -> None:
    """The wrapper the whole suite also runs through must proxy every
    coroutine method of the contract (a missing one would not yield)."""
    import inspect

    from tests.support.yielding import YieldingBackend

    wanted = {name for name, value in vars(MailBackend).items()
              if inspect.iscoroutinefunction(value)}
    assert wanted and wanted <= {name for name, value in vars(YieldingBackend).items()
                                 if inspect.iscoroutinefunction(value)}


async def test_close_lets_pending_writes_finish(site: Site) -> None:
    """``close`` while appends are in flight: they complete (or never
    started), and whatever they reported is there after a restart."""
    from twisted.internet.defer import ensureDeferred

    backend = await site.open()
    ref = await ref_of(backend)
    pending = [ensureDeferred(backend.append(ref, items(1))) for _ in range(5)]
    await site.close(backend)
    reported = sorted([(await d).uid for d in pending])
    assert reported == [1, 2, 3, 4, 5]
    again = await site.open()
    assert [r.uid for r in await again.fetch_records(ref)] == reported

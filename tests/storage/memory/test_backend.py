"""MemoryBackend specifics (the contract suite in tests/mail/contract/ runs
the full MailBackend contract on it): two backends over one MemoryData act
like two processes, identifiers, MODSEQs, \\Recent compare-and-set, tree
edits and their atomicity, STORE/EXPUNGE/COPY/MOVE results."""

from __future__ import annotations

import datetime
from typing import Any, Coroutine, Sequence, TypeVar

import pytest

from imapd.mail.backend import (
    AddMailbox, MailboxEntry, MailboxRef, RemoveMailbox, RenameMailbox, TransferMessages, TreeOp,
)
from imapd.mail.errors import AlreadyExists, InvalidFlag, NoSuchMailbox, Unavailable
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem, FlagState
from imapd.storage.memory import MemoryBackend, MemoryData
from tests.support.inline import run_inline as run

T = TypeVar("T")
U = "alice"
DATE = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)




def ops(*edits: TreeOp) -> Any:
    return lambda tree: list(edits)


def setup(backend: MemoryBackend, *boxes: str) -> dict[str, MailboxRef]:
    run(backend.ensure_user(U))
    if boxes:
        run(backend.edit_tree(U, ops(*(AddMailbox(b) for b in boxes))))
    return {e.name: e.ref for e in run(backend.mailboxes(U))}


def add(backend: MemoryBackend, ref: MailboxRef, *flag_lists: Sequence[str],
        claim: bool = False) -> tuple[int, ...]:
    items = [AppendItem(b"m%d" % i, tuple(f), DATE) for i, f in enumerate(flag_lists)]
    return run(backend.append(ref, items, claim)).uids


class Rings:
    def __init__(self) -> None:
        self.heard: list[tuple[int, int]] = []

    def __call__(self, mailbox_id: int, modseq: int) -> None:
        self.heard.append((mailbox_id, modseq))


# --- feeds: two backends over one MemoryData --------------------------------------

def test_a_commit_rings_both_backends_before_returning() -> None:
    data = MemoryData()
    one, two = MemoryBackend(data), MemoryBackend(data)
    refs = setup(one)
    heard_one, heard_two = Rings(), Rings()
    one.feed.subscribe(refs["INBOX"].id, heard_one)
    two.feed.subscribe(refs["INBOX"].id, heard_two)
    add(two, refs["INBOX"], ())
    assert heard_one.heard == heard_two.heard == [(refs["INBOX"].id, 2)]
    # The other backend sees the message at once: one shared store.
    assert [r.uid for r in run(one.fetch_records(refs["INBOX"]))] == [1]


def test_rings_only_the_changed_mailbox_and_unsubscribe_is_idempotent() -> None:
    backend = MemoryBackend()
    refs = setup(backend, "other")
    heard = Rings()
    stop = backend.feed.subscribe(refs["other"].id, heard)
    add(backend, refs["INBOX"], ())
    assert heard.heard == []
    stop()
    stop()
    add(backend, refs["other"], ())
    assert heard.heard == []


def test_nothing_changed_rings_nothing() -> None:
    backend = MemoryBackend()
    refs = setup(backend)
    (uid,) = add(backend, refs["INBOX"], ["\\Seen"])
    heard = Rings()
    backend.feed.subscribe(refs["INBOX"].id, heard)
    result = run(backend.store_flags(refs["INBOX"], [uid], FlagOp.ADD, ["\\Seen"]))
    assert result.changed == frozenset() and run(backend.expunge(refs["INBOX"])) == []
    assert heard.heard == []
    assert run(backend.status(refs["INBOX"])).highestmodseq == 2


def test_every_message_change_rings_with_its_modseq() -> None:
    data = MemoryData()
    one, two = MemoryBackend(data), MemoryBackend(data)
    refs = setup(one, "t")
    inbox, target = refs["INBOX"], refs["t"]
    heard = Rings()
    two.feed.subscribe(inbox.id, heard)
    two.feed.subscribe(target.id, heard)
    add(one, inbox, (), ())                                          # INBOX 2
    run(one.store_flags(inbox, [1], FlagOp.ADD, ["\\Deleted"]))      # INBOX 3
    run(one.expunge(inbox))                                          # INBOX 4
    run(one.copy(inbox, [2], target))                                # t 2
    run(one.copy(inbox, [2], target, move=True))                     # INBOX 5, t 3
    assert heard.heard == [(inbox.id, 2), (inbox.id, 3), (inbox.id, 4), (target.id, 2),
                           (inbox.id, 5), (target.id, 3)]


def test_tree_changes_ring_removed_renamed_and_transfer_source() -> None:
    backend = MemoryBackend()
    refs = setup(backend, "a", "b")
    add(backend, refs["INBOX"], ())
    heard = Rings()
    for ref in refs.values():
        backend.feed.subscribe(ref.id, heard)
    run(backend.edit_tree(U, ops(RemoveMailbox("a"), RenameMailbox("b", "c"),
                                  AddMailbox("old"), TransferMessages("INBOX", "old"))))
    assert heard.heard == [(refs["a"].id, 0), (refs["b"].id, 0), (refs["INBOX"].id, 3)]


def test_closed_backend_stops_ringing_and_refuses_calls() -> None:
    data = MemoryData()
    one, two = MemoryBackend(data), MemoryBackend(data)
    refs = setup(one)
    heard = Rings()
    one.feed.subscribe(refs["INBOX"].id, heard)
    run(one.close())
    add(two, refs["INBOX"], ())
    assert heard.heard == []
    with pytest.raises(Unavailable):
        run(one.status(refs["INBOX"]))


# --- users and identifiers -----------------------------------------------------------

def test_ensure_user_adds_defaults_once_ever() -> None:
    backend = MemoryBackend()
    defaults = [("Sent", "\\Sent"), ("Archive/2026", None)]
    run(backend.ensure_user(U, defaults))
    tree = run(backend.mailboxes(U))
    assert [(e.name, e.selectable, e.special_use) for e in tree] == [
        ("Archive", True, None), ("Archive/2026", True, None), ("INBOX", True, None),
        ("Sent", True, "\\Sent")]
    assert run(backend.subscriptions(U)) == ["Archive/2026", "Sent"]
    run(backend.edit_tree(U, ops(RemoveMailbox("Sent"))))
    run(backend.ensure_user(U, defaults))
    assert run(backend.lookup(U, "Sent")) is None  # a deleted default stays deleted


def test_uidvalidity_never_reused_after_delete_and_create() -> None:
    backend = MemoryBackend()
    refs = setup(backend, "a")
    run(backend.edit_tree(U, ops(RemoveMailbox("a"), AddMailbox("a"))))
    again = run(backend.lookup(U, "a"))
    assert again is not None and again.uidvalidity != refs["a"].uidvalidity
    assert again.id != refs["a"].id
    with pytest.raises(NoSuchMailbox):
        run(backend.status(refs["a"]))
    validities = [e.uidvalidity for e in run(backend.mailboxes(U))]
    assert len(set(validities)) == len(validities)


def test_uids_never_reused_after_expunge() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    assert add(backend, ref, ["\\Deleted"], ["\\Deleted"]) == (1, 2)
    assert run(backend.expunge(ref)) == [1, 2]
    assert add(backend, ref, ()) == (3,)
    status = run(backend.status(ref))
    assert (status.messages, status.uidnext) == (1, 4)


def test_placeholder_ref_is_no_such_mailbox() -> None:
    backend = MemoryBackend()
    run(backend.ensure_user(U))
    run(backend.edit_tree(U, ops(AddMailbox("p", selectable=False), AddMailbox("p/x"))))
    entry = run(backend.lookup(U, "p"))
    assert entry is not None and not entry.selectable
    with pytest.raises(NoSuchMailbox):
        run(backend.snapshot(entry.ref))


# --- tree edits ---------------------------------------------------------------------------

def test_failed_plan_changes_nothing() -> None:
    backend = MemoryBackend()
    setup(backend, "a")
    before = run(backend.mailboxes(U))

    def refuse(tree: Sequence[MailboxEntry]) -> list[TreeOp]:
        raise AlreadyExists("no")

    with pytest.raises(AlreadyExists):
        run(backend.edit_tree(U, refuse))
    # A plan whose third op cannot apply: the first two are not applied.
    with pytest.raises(ValueError):
        run(backend.edit_tree(U, ops(AddMailbox("b"), RemoveMailbox("a"), RemoveMailbox("zz"))))
    assert run(backend.mailboxes(U)) == before


def test_plan_sees_the_current_tree() -> None:
    backend = MemoryBackend()
    setup(backend, "a")
    seen: list[list[str]] = []

    def record(tree: Sequence[MailboxEntry]) -> list[TreeOp]:
        seen.append([e.name for e in tree])
        return []

    run(backend.edit_tree(U, record))
    assert seen == [["INBOX", "a"]]


def test_rename_keeps_identity_and_messages() -> None:
    backend = MemoryBackend()
    refs = setup(backend, "a")
    add(backend, refs["a"], ["\\Seen", "Work"])
    run(backend.edit_tree(U, ops(RenameMailbox("a", "b"))))
    entry = run(backend.lookup(U, "b"))
    assert entry is not None and entry.ref == refs["a"]
    assert run(backend.fetch_flags(refs["a"])) == [FlagState(1, ("\\Seen", "Work"), 2)]
    assert run(backend.status(refs["a"])).name == "b"


def test_transfer_moves_messages_keeping_uids_and_expunges_the_source() -> None:
    backend = MemoryBackend()
    inbox = setup(backend)["INBOX"]
    add(backend, inbox, ["\\Seen"], ["Kw"], ["\\Deleted"])
    run(backend.expunge(inbox))  # UID 3 gone; INBOX UIDNEXT is 4
    run(backend.edit_tree(U, ops(AddMailbox("old"), TransferMessages("INBOX", "old"))))
    old = run(backend.lookup(U, "old"))
    assert old is not None
    records = run(backend.fetch_records(old.ref))
    assert [(r.uid, r.flags, r.size, r.internal_date) for r in records] == [
        (1, ("\\Seen",), 2, DATE), (2, ("Kw",), 2, DATE)]
    assert run(backend.status(old.ref)).uidnext == 4
    assert run(backend.read_message(old.ref, 2)) == b"m1"
    status = run(backend.status(inbox))
    assert (status.messages, status.uidnext, status.highestmodseq) == (0, 4, 4)
    changes = run(backend.changes_since(inbox, 3, 4))
    assert changes.expunged == ((1, 4), (2, 4))
    assert add(backend, inbox, ()) == (4,)


# --- MODSEQ and history --------------------------------------------------------------

def test_modseq_rules_and_changes_since() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    assert run(backend.status(ref)).highestmodseq == 1
    add(backend, ref, (), (), ())                       # modseq 2, all three
    run(backend.store_flags(ref, [1, 2], FlagOp.ADD, ["\\Flagged"]))  # modseq 3
    run(backend.store_flags(ref, [3], FlagOp.ADD, ["\\Deleted"]))     # 4
    run(backend.expunge(ref))                           # 5
    add(backend, ref, ())                               # uid 4, modseq 6
    changes = run(backend.changes_since(ref, 2, 3))
    assert changes.exists and changes.highestmodseq == 6 and changes.uidnext == 5
    assert changes.changed == (FlagState(1, ("\\Flagged",), 3), FlagState(2, ("\\Flagged",), 3))
    assert changes.added == (FlagState(4, (), 6),)
    assert changes.expunged == ((3, 5),)
    assert run(backend.changes_since(ref, 6, 5)).changed == ()
    assert run(backend.changes_since(ref, 5, 5)).expunged == ()


def test_changes_since_a_vanished_mailbox_does_not_raise() -> None:
    backend = MemoryBackend()
    refs = setup(backend, "a")
    run(backend.edit_tree(U, ops(RemoveMailbox("a"))))
    assert run(backend.changes_since(refs["a"], 1, 1)).exists is False


# --- \Recent compare-and-set ----------------------------------------------------------

def test_claim_recent_claims_each_uid_once_across_backends() -> None:
    data = MemoryData()
    one, two = MemoryBackend(data), MemoryBackend(data)
    ref = setup(one)["INBOX"]
    add(one, ref, (), ())
    assert run(one.claim_recent(ref, 2)) == (1, 1)
    assert run(two.claim_recent(ref, 3)) == (2, 2)
    assert run(one.claim_recent(ref, 3)) is None
    # Claims never reach past the mailbox's UIDNEXT.
    assert run(two.claim_recent(ref, 99)) is None
    add(one, ref, ())
    assert run(two.claim_recent(ref, 99)) == (3, 3)
    assert run(one.snapshot(ref))[1] == 4


def test_append_claim_covers_older_unclaimed_and_status_counts_recent() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    add(backend, ref, ())
    assert run(backend.status(ref)).recent == 1
    result = run(backend.append(ref, [AppendItem(b"x", (), DATE)], claim=True))
    assert result.claimed == (1, 2)
    assert run(backend.status(ref)).recent == 0


# --- messages -------------------------------------------------------------------------

def test_store_result_states_changed_and_modified() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    add(backend, ref, ["\\Seen"], (), ())                 # modseq 2
    run(backend.store_flags(ref, [3], FlagOp.ADD, ["\\Answered"]))  # 3 is at 3
    result = run(backend.store_flags(ref, [1, 2, 3, 99], FlagOp.ADD, ["\\Seen"],
                                     unchangedsince=2))
    assert result.modified == (3,)
    assert result.changed == frozenset({2})
    assert result.states == (FlagState(1, ("\\Seen",), 2), FlagState(2, ("\\Seen",), 4))


def test_keywords_keep_the_first_spelling_and_remove_is_case_insensitive() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    add(backend, ref, ["Work"])
    run(backend.store_flags(ref, [1], FlagOp.ADD, ["WORK", "todo"]))
    assert run(backend.fetch_flags(ref))[0].flags == ("Work", "todo")
    assert run(backend.snapshot(ref))[0].keywords == ("todo", "Work")
    run(backend.store_flags(ref, [1], FlagOp.REMOVE, ["work"]))
    assert run(backend.fetch_flags(ref))[0].flags == ("todo",)


def test_invalid_flags_change_nothing() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    with pytest.raises(InvalidFlag):
        add(backend, ref, (), ["\\Recent"])
    with pytest.raises(InvalidFlag):
        run(backend.store_flags(ref, [1], FlagOp.ADD, ["\\Bogus"]))
    assert run(backend.status(ref)).uidnext == 1


def test_uid_expunge_only_touches_given_deleted_messages() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    add(backend, ref, ["\\Deleted"], ["\\Deleted"], ())
    assert run(backend.expunge(ref, [2, 3])) == [2]
    assert [s.uid for s in run(backend.fetch_flags(ref))] == [1, 3]


def test_copy_and_move_results() -> None:
    backend = MemoryBackend()
    refs = setup(backend, "t")
    add(backend, refs["t"], ["kw"])                      # t already spells "kw"
    add(backend, refs["INBOX"], ["\\Seen", "KW"], (), ["\\Flagged"])
    copied = run(backend.copy(refs["INBOX"], [1, 3, 42], refs["t"]))
    assert copied.pairs == ((1, 2), (3, 3)) and copied.uidvalidity == refs["t"].uidvalidity
    assert [(s.uid, s.flags) for s in run(backend.fetch_flags(refs["t"]))] == [
        (1, ("kw",)), (2, ("\\Seen", "kw")), (3, ("\\Flagged",))]
    result = run(backend.copy(refs["INBOX"], [2], refs["t"], move=True))
    assert result.pairs == ((2, 4),)
    assert [s.uid for s in run(backend.fetch_flags(refs["INBOX"]))] == [1, 3]
    assert run(backend.changes_since(refs["INBOX"], 2, 4)).expunged == ((2, 3),)


def test_move_into_itself_gives_new_uids_under_one_modseq() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    add(backend, ref, (), ())
    result = run(backend.copy(ref, [1], ref, move=True))
    assert result.pairs == ((1, 3),)
    states = run(backend.fetch_flags(ref))
    assert [(s.uid, s.modseq) for s in states] == [(2, 2), (3, 3)]
    assert run(backend.changes_since(ref, 2, 3)).expunged == ((1, 3),)


def test_copy_to_a_missing_target_is_no_such_mailbox_and_changes_nothing() -> None:
    backend = MemoryBackend()
    refs = setup(backend, "t")
    add(backend, refs["INBOX"], ())
    run(backend.edit_tree(U, ops(RemoveMailbox("t"))))
    with pytest.raises(NoSuchMailbox):
        run(backend.copy(refs["INBOX"], [1], refs["t"], move=True))
    assert [s.uid for s in run(backend.fetch_flags(refs["INBOX"]))] == [1]


def test_read_and_open_message() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    run(backend.append(ref, [AppendItem(b"0123456789", (), DATE, b"meta")]))
    assert run(backend.read_message(ref, 1, 2, 3)) == b"234"
    assert run(backend.read_message(ref, 1, 8, 10)) == b"89"
    assert run(backend.read_message(ref, 1, 20)) == b""
    assert run(backend.read_message(ref, 2)) is None
    body = run(backend.open_message(ref, 1))
    assert body is not None
    run(backend.store_flags(ref, [1], FlagOp.ADD, ["\\Deleted"]))
    run(backend.expunge(ref))
    assert body.size == 10 and b"".join(body.chunks()) == b"0123456789"
    assert run(backend.open_message(ref, 1)) is None


def test_records_carry_meta_only_when_asked() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    run(backend.append(ref, [AppendItem(b"abc", ("\\Draft",), DATE, b"blob")]))
    (plain,) = run(backend.fetch_records(ref))
    (full,) = run(backend.fetch_records(ref, [1], with_meta=True))
    assert plain.meta == b"" and full.meta == b"blob"
    assert (full.uid, full.flags, full.size, full.internal_date, full.modseq) == (
        1, ("\\Draft",), 3, DATE, 2)


def test_naive_internal_date_is_refused() -> None:
    backend = MemoryBackend()
    ref = setup(backend)["INBOX"]
    with pytest.raises(ValueError):
        run(backend.append(ref, [AppendItem(b"x", (), datetime.datetime(2026, 1, 1))]))
    assert run(backend.status(ref)).uidnext == 1

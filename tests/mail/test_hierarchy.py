"""The hierarchy planner (imapd.mail.hierarchy): CREATE / DELETE / RENAME
rules of RFC 3501 §6.3.3-§6.3.5 as plans, and LIST / LSUB (§6.3.8, §6.3.9).

Trees are written as name lists: ``"a*"`` is a ``\\Noselect`` placeholder.
Plans are checked by applying their ops to such a tree, so a wrong op
sequence (a missing superior, a placeholder not pruned, a lost inferior)
shows up as a wrong resulting tree.
"""

from __future__ import annotations

from typing import Sequence

import pytest

from imapd.core.errors import ImapError
from imapd.mail import hierarchy
from imapd.mail.backend import (
    AddMailbox, MailboxEntry, RemoveMailbox, RenameMailbox, TransferMessages, TreeOp, TreePlan,
)
from imapd.mail.errors import AlreadyExists, Cannot, HasChildren, MailError, NoSuchMailbox
from imapd.mail.listpattern import StepBudget


def tree(*spec: str) -> list[MailboxEntry]:
    """Entries for names; a trailing ``*`` marks a placeholder. Ids and
    UIDVALIDITYs are distinct so that replaced rows can be told apart."""
    entries = []
    for index, name in enumerate(spec, start=1):
        placeholder = name.endswith("*")
        entries.append(MailboxEntry(index, name.rstrip("*"), not placeholder, 100 + index))
    return entries


def applied(entries: Sequence[MailboxEntry], ops: Sequence[TreeOp]) -> list[str]:
    """The tree after ``ops``, in the same notation, sorted; checks each op
    would apply (as every backend's edit_tree requires)."""
    rows = {e.name: e.selectable for e in entries}
    for op in ops:
        if isinstance(op, AddMailbox):
            assert op.name not in rows, op
            rows[op.name] = op.selectable
        elif isinstance(op, RemoveMailbox):
            assert op.name in rows, op
            del rows[op.name]
        elif isinstance(op, RenameMailbox):
            assert op.old in rows and op.new not in rows, op
            rows[op.new] = rows.pop(op.old)
        else:
            assert rows.get(op.source) and rows.get(op.target), op
    return sorted(name + ("" if selectable else "*") for name, selectable in rows.items())


def plan(fn: TreePlan, entries: list[MailboxEntry]) -> list[str]:
    return applied(entries, fn(entries))


# --- CREATE (RFC 3501 §6.3.3) --------------------------------------------------

@pytest.mark.parametrize(("before", "name", "after"), [
    (["INBOX"], "a", ["INBOX", "a"]),
    # Missing superiors are created as real, selectable mailboxes.
    (["INBOX"], "a/b/c", ["INBOX", "a", "a/b", "a/b/c"]),
    (["INBOX", "a"], "a/b/c", ["INBOX", "a", "a/b", "a/b/c"]),
    # An existing placeholder superior stays a placeholder.
    (["INBOX", "a*", "a/x"], "a/b", ["INBOX", "a*", "a/b", "a/x"]),
    # A placeholder by that name becomes a real mailbox.
    (["INBOX", "a*", "a/x"], "a", ["INBOX", "a", "a/x"]),
    (["INBOX"], "INBOX/sub", ["INBOX", "INBOX/sub"]),
])
def test_create_plans(before: list[str], name: str, after: list[str]) -> None:
    assert plan(hierarchy.plan_create(name), tree(*before)) == after


def test_create_over_a_placeholder_is_a_new_row_with_the_special_use() -> None:
    ops = hierarchy.create_ops(tree("INBOX", "a*", "a/x"), "a", "\\Archive")
    assert ops == [RemoveMailbox("a"), AddMailbox("a", True, "\\Archive")]


def test_create_keeps_special_use_on_the_named_mailbox_only() -> None:
    ops = hierarchy.create_ops(tree("INBOX"), "a/b", "\\Sent")
    assert ops == [AddMailbox("a"), AddMailbox("a/b", True, "\\Sent")]


@pytest.mark.parametrize(("before", "name"), [
    (["INBOX"], "INBOX"),
    (["INBOX", "a"], "a"),
    (["INBOX", "a", "a/b"], "a/b"),
])
def test_create_existing_is_already_exists(before: list[str], name: str) -> None:
    with pytest.raises(AlreadyExists):
        hierarchy.create_ops(tree(*before), name)


# --- DELETE (RFC 3501 §6.3.4) --------------------------------------------------

@pytest.mark.parametrize(("before", "name", "after"), [
    (["INBOX", "a"], "a", ["INBOX"]),
    # A mailbox with inferiors becomes a placeholder (a new row).
    (["INBOX", "a", "a/b"], "a", ["INBOX", "a*", "a/b"]),
    # Superior placeholders left without inferiors go, innermost first...
    (["INBOX", "a*", "a/b*", "a/b/c"], "a/b/c", ["INBOX"]),
    # ...but not past a real mailbox...
    (["INBOX", "a*", "a/b", "a/b/c"], "a/b/c", ["INBOX", "a*", "a/b"]),
    # ...nor past one that still has inferiors.
    (["INBOX", "a*", "a/b*", "a/b/c", "a/d"], "a/b/c", ["INBOX", "a*", "a/d"]),
    # A placeholder without inferiors can be deleted.
    (["INBOX", "a*"], "a", ["INBOX"]),
    (["INBOX", "INBOX/x"], "INBOX/x", ["INBOX"]),
])
def test_delete_plans(before: list[str], name: str, after: list[str]) -> None:
    assert plan(hierarchy.plan_delete(name), tree(*before)) == after


def test_delete_with_inferiors_replaces_the_row() -> None:
    ops = hierarchy.delete_ops(tree("INBOX", "a", "a/b"), "a")
    assert ops == [RemoveMailbox("a"), AddMailbox("a", selectable=False)]


@pytest.mark.parametrize(("before", "name", "error"), [
    (["INBOX"], "INBOX", Cannot),
    (["INBOX", "INBOX/a"], "INBOX", Cannot),
    (["INBOX"], "nope", NoSuchMailbox),
    (["INBOX", "a*", "a/b"], "a", HasChildren),
])
def test_delete_refusals(before: list[str], name: str, error: type[MailError]) -> None:
    with pytest.raises(error):
        hierarchy.delete_ops(tree(*before), name)


# --- RENAME (RFC 3501 §6.3.5) --------------------------------------------------

@pytest.mark.parametrize(("before", "old", "new", "after"), [
    (["INBOX", "a"], "a", "b", ["INBOX", "b"]),
    # The subtree moves with it.
    (["INBOX", "a", "a/x", "a/x/y"], "a", "b", ["INBOX", "b", "b/x", "b/x/y"]),
    # Missing superiors of the new name are created (selectable).
    (["INBOX", "a"], "a", "p/q/b", ["INBOX", "p", "p/q", "p/q/b"]),
    # Superior placeholders of the old name left empty go.
    (["INBOX", "p*", "p/a"], "p/a", "b", ["INBOX", "b"]),
    (["INBOX", "p*", "p/a", "p/z"], "p/a", "b", ["INBOX", "b", "p*", "p/z"]),
    # ...but not a placeholder that is a superior of the new name.
    (["INBOX", "p*", "p/a"], "p/a", "p/b", ["INBOX", "p*", "p/b"]),
    # A placeholder can be renamed with its inferiors.
    (["INBOX", "a*", "a/x"], "a", "b", ["INBOX", "b*", "b/x"]),
    # Moving a mailbox up out of its own superior.
    (["INBOX", "a", "a/b"], "a/b", "b", ["INBOX", "a", "b"]),
])
def test_rename_plans(before: list[str], old: str, new: str, after: list[str]) -> None:
    assert plan(hierarchy.plan_rename(old, new), tree(*before)) == after


def test_rename_keeps_rows_by_renaming_not_recreating() -> None:
    ops = hierarchy.rename_ops(tree("INBOX", "a", "a/x"), "a", "b")
    assert ops == [RenameMailbox("a", "b"), RenameMailbox("a/x", "b/x")]


def test_rename_does_not_touch_names_sharing_a_prefix() -> None:
    assert plan(hierarchy.plan_rename("a", "c"), tree("INBOX", "a", "ab", "a/x")) == [
        "INBOX", "ab", "c", "c/x"]


@pytest.mark.parametrize(("before", "old", "new", "error"), [
    (["INBOX", "a", "b"], "a", "b", AlreadyExists),
    (["INBOX", "a"], "a", "INBOX", AlreadyExists),
    (["INBOX", "a"], "a", "a", AlreadyExists),
    (["INBOX", "a"], "a", "a/b", Cannot),
    (["INBOX"], "nope", "b", NoSuchMailbox),
    # Existence of the target is checked first, as the SQLite store did.
    (["INBOX", "b"], "nope", "b", AlreadyExists),
])
def test_rename_refusals(
    before: list[str], old: str, new: str, error: type[MailError]
) -> None:
    with pytest.raises(error):
        hierarchy.rename_ops(tree(*before), old, new)


# --- RENAME INBOX -----------------------------------------------------------

def test_rename_inbox_transfers_messages_and_leaves_inbox_and_inferiors() -> None:
    entries = tree("INBOX", "INBOX/kid")
    ops = hierarchy.rename_ops(entries, "INBOX", "old")
    assert ops == [AddMailbox("old"), TransferMessages("INBOX", "old")]
    assert applied(entries, ops) == ["INBOX", "INBOX/kid", "old"]


def test_rename_inbox_creates_superiors_and_may_go_below_inbox() -> None:
    entries = tree("INBOX")
    ops = hierarchy.rename_ops(entries, "INBOX", "INBOX/a/saved")
    assert ops == [AddMailbox("INBOX/a"), AddMailbox("INBOX/a/saved"),
                   TransferMessages("INBOX", "INBOX/a/saved")]


def test_rename_inbox_to_existing_is_already_exists() -> None:
    with pytest.raises(AlreadyExists):
        hierarchy.rename_ops(tree("INBOX", "x"), "INBOX", "x")


# --- LIST / LSUB ----------------------------------------------------------------

LIST_TREE = tree("INBOX", "INBOX/kid", "Work*", "Work/A", "Work/A/deep", "Zeta")


def listed(pattern: str, reference: str = "", subscribed: Sequence[str] = (),
           lsub: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    infos = hierarchy.list_mailboxes(LIST_TREE, subscribed, reference, pattern, lsub)
    return [(i.name, i.lsub_attributes() if lsub else i.list_attributes()) for i in infos]


def test_list_star_gives_everything_inbox_first_with_attributes() -> None:
    assert listed("*") == [
        ("INBOX", ("\\HasChildren",)),
        ("INBOX/kid", ("\\HasNoChildren",)),
        ("Work", ("\\Noselect", "\\HasChildren")),
        ("Work/A", ("\\HasChildren",)),
        ("Work/A/deep", ("\\HasNoChildren",)),
        ("Zeta", ("\\HasNoChildren",)),
    ]


def test_list_percent_stops_at_the_delimiter_and_reference_concatenates() -> None:
    assert [n for n, _ in listed("%")] == ["INBOX", "Work", "Zeta"]
    assert [n for n, _ in listed("%", "Work/")] == ["Work/A"]
    assert [n for n, _ in listed("inbox/%")] == ["INBOX/kid"]  # INBOX folds
    assert listed("work/*") == []  # other levels are case-sensitive
    assert listed("") == []


def test_list_marks_subscribed_and_special_use() -> None:
    entries = [*tree("INBOX"), MailboxEntry(9, "Sent", True, 9, "\\Sent")]
    infos = hierarchy.list_mailboxes(entries, ["Sent"], "", "*")
    assert [(i.name, i.subscribed, i.special_uses) for i in infos] == [
        ("INBOX", False, ()), ("Sent", True, ("\\Sent",))]


def test_lsub_lists_subscribed_names_existing_or_not() -> None:
    subscribed = ["Gone", "Work/A/deep", "Zeta"]
    assert listed("*", subscribed=subscribed, lsub=True) == [
        ("Gone", ()), ("Work/A/deep", ()), ("Zeta", ())]


def test_lsub_percent_adds_unsubscribed_superiors_as_noselect() -> None:
    subscribed = ["Work/A/deep", "Other/x"]
    assert listed("%", subscribed=subscribed, lsub=True) == [
        ("Other", ("\\Noselect",)), ("Work", ("\\Noselect",))]
    infos = hierarchy.list_mailboxes(LIST_TREE, subscribed, "", "%", True)
    assert [(i.name, i.exists, i.has_children) for i in infos] == [
        ("Other", False, True), ("Work", True, True)]


def test_list_budget_is_enforced() -> None:
    many = tree("INBOX", *[f"{'x' * 200}/{i}" for i in range(1)])
    budget = StepBudget(10)
    with pytest.raises(ImapError) as info:
        hierarchy.list_mailboxes(many, [], "", "%x%x%", budget=budget)
    assert info.value.code == "LIMIT"

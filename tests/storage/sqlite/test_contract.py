"""The MailStore contract, part 1: the mailbox hierarchy (RFC 3501 §6.3).

Parts 2 and 3 (messages; sessions, processes and restarts) are in
test_contract_messages.py and test_contract_sync.py. Every test runs against
every backend (the ``store`` fixture is parametrized in conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.mail.interface import MailStore
from imapd.mail.records import MailboxInfo
from tests.storage.sqlite.conftest import Opener
from tests.storage.sqlite.helpers import code_of, error_of, run

U = "alice"


def listing(store: MailStore, pattern: str = "*", reference: str = "", user: str = U) -> dict[str, tuple[str, ...]]:
    infos = run(store.list_mailboxes(user, reference, pattern))
    return {i.name: i.list_attributes() for i in infos}


def lsub(store: MailStore, pattern: str, reference: str = "") -> dict[str, tuple[str, ...]]:
    infos = run(store.list_mailboxes(U, reference, pattern, subscribed_only=True))
    return {i.name: i.lsub_attributes() for i in infos}


def names_of(store: MailStore, pattern: str = "*", reference: str = "") -> list[str]:
    return [i.name for i in run(store.list_mailboxes(U, reference, pattern))]


# --- INBOX -------------------------------------------------------------------

def test_inbox_exists_on_first_use_and_is_case_insensitive(store: MailStore) -> None:
    assert listing(store) == {"INBOX": ("\\HasNoChildren",)}
    run(store.append(U, "inbox", b"x"))
    assert run(store.status(U, "InBoX")).messages == 1
    assert run(store.select(U, "iNbOx", readonly=True)).name == "INBOX"
    assert code_of(store.create_mailbox(U, "Inbox")) == "ALREADYEXISTS"


def test_inbox_cannot_be_deleted(store: MailStore) -> None:
    assert code_of(store.delete_mailbox(U, "inbox")) == "CANNOT"
    assert "INBOX" in listing(store)


def test_inbox_children_share_inbox_case_folding(store: MailStore) -> None:
    run(store.create_mailbox(U, "inbox/Sub"))
    assert names_of(store) == ["INBOX", "INBOX/Sub"]
    assert run(store.status(U, "Inbox/Sub")).messages == 0
    # Only the INBOX level folds: other levels stay case-sensitive.
    assert code_of(store.status(U, "INBOX/sub")) == "NONEXISTENT"


def test_users_are_isolated(store: MailStore) -> None:
    run(store.create_mailbox(U, "Secret"))
    run(store.append(U, "Secret", b"private"))
    assert listing(store, user="bob") == {"INBOX": ("\\HasNoChildren",)}
    assert code_of(store.status("bob", "Secret")) == "NONEXISTENT"
    assert code_of(store.append("bob", "Secret", b"x")) == "TRYCREATE"
    assert code_of(store.select("bob", "Secret", False)) == "NONEXISTENT"


# --- names -------------------------------------------------------------------

INVALID_NAMES = [
    ("", "empty"),
    ("a*b", "wildcard"),
    ("a%", "wildcard"),
    ("a\x00b", "control"),
    ("tab\there", "control"),
    ("del\x7f", "control"),
    ("c1\x85", "control"),
    ("/abs", "empty hierarchy level"),
    ("a//b", "empty hierarchy level"),
    ("a/", "empty hierarchy level"),
    (".", "'.'"),
    ("a/../b", "'..'"),
    ("a/./b", "'.'"),
    ("..", "'..'"),
    ("x" * 1001, "longer than"),
    ("/".join(["d"] * 33), "levels"),
    ("y" * 256, "longer than"),
    ("bad\ud800", "surrogate"),
]


@pytest.mark.parametrize(("name", "reason"), INVALID_NAMES)
def test_invalid_names_are_refused_with_a_reason(store: MailStore, name: str, reason: str) -> None:
    for coro in (
        store.subscribe(U, name),
        store.status(U, name),
        store.rename_mailbox(U, "INBOX", name),
    ):
        error = error_of(coro)
        assert error.code == "CANNOT"
        assert reason in error.text
    if name != "a/":
        assert code_of(store.create_mailbox(U, name)) == "CANNOT"
    assert listing(store) == {"INBOX": ("\\HasNoChildren",)}


def test_valid_unusual_names(store: MailStore) -> None:
    for name in ("Entwürfe", "日本語/メール", "a.b", "..a", "a&b", "x" * 255, "with space", "back\\slash"):
        run(store.create_mailbox(U, name))
        assert run(store.status(U, name)).messages == 0
    deepest = "/".join(["d"] * 32)
    run(store.create_mailbox(U, deepest))
    assert deepest in names_of(store)


def test_create_with_trailing_delimiter_creates_the_name_without_it(store: MailStore) -> None:
    run(store.create_mailbox(U, "Projects/"))
    assert listing(store)["Projects"] == ("\\HasNoChildren",)
    assert code_of(store.create_mailbox(U, "Projects//")) == "CANNOT"


# --- CREATE ------------------------------------------------------------------

def test_create_makes_missing_superiors_selectable(store: MailStore) -> None:
    run(store.create_mailbox(U, "a/b/c"))
    assert listing(store) == {
        "INBOX": ("\\HasNoChildren",),
        "a": ("\\HasChildren",),
        "a/b": ("\\HasChildren",),
        "a/b/c": ("\\HasNoChildren",),
    }
    for name in ("a", "a/b"):
        run(store.append(U, name, b"m"))


def test_create_existing_is_alreadyexists(store: MailStore) -> None:
    run(store.create_mailbox(U, "Work"))
    assert code_of(store.create_mailbox(U, "Work")) == "ALREADYEXISTS"
    run(store.create_mailbox(U, "work"))  # names other than INBOX are case-sensitive


def test_new_mailboxes_have_distinct_uidvalidity(store: MailStore) -> None:
    for name in ("one", "two", "three"):
        run(store.create_mailbox(U, name))
    values = {run(store.status(U, n)).uidvalidity for n in ("INBOX", "one", "two", "three")}
    assert len(values) == 4
    assert all(0 < v < 2**32 for v in values)


def test_delete_and_recreate_never_reuses_uidvalidity(store: MailStore) -> None:
    run(store.create_mailbox(U, "Box"))
    seen = set()
    for _ in range(3):
        status = run(store.status(U, "Box"))
        assert status.uidvalidity not in seen
        seen.add(status.uidvalidity)
        assert (status.uidnext, status.highestmodseq) == (1, 1)
        run(store.append(U, "Box", b"m"))
        run(store.delete_mailbox(U, "Box"))
        run(store.create_mailbox(U, "Box"))


def test_special_use_is_listed(store: MailStore) -> None:
    run(store.create_mailbox(U, "Sent", special_use="\\Sent"))
    assert listing(store)["Sent"] == ("\\HasNoChildren", "\\Sent")


# --- DELETE ------------------------------------------------------------------

def test_delete_unknown_is_nonexistent(store: MailStore) -> None:
    assert code_of(store.delete_mailbox(U, "nope")) == "NONEXISTENT"


def test_delete_leaf_removes_it_and_its_messages(store: MailStore) -> None:
    run(store.create_mailbox(U, "Old"))
    run(store.append(U, "Old", b"m"))
    run(store.delete_mailbox(U, "Old"))
    assert "Old" not in listing(store)
    assert code_of(store.status(U, "Old")) == "NONEXISTENT"
    run(store.create_mailbox(U, "Old"))
    assert run(store.status(U, "Old")).messages == 0


def test_delete_with_inferiors_leaves_noselect_placeholder(store: MailStore) -> None:
    run(store.create_mailbox(U, "p/child"))
    run(store.append(U, "p", b"parent message"))
    run(store.delete_mailbox(U, "p"))
    assert listing(store)["p"] == ("\\Noselect", "\\HasChildren")
    assert code_of(store.status(U, "p")) == "NONEXISTENT"
    assert code_of(store.select(U, "p", False)) == "NONEXISTENT"
    assert code_of(store.append(U, "p", b"x")) == "TRYCREATE"
    # RFC 3501 §6.3.4: deleting a \Noselect name with inferiors fails.
    assert code_of(store.delete_mailbox(U, "p")) == "HASCHILDREN"
    assert run(store.status(U, "p/child")).messages == 0


def test_deleting_last_child_removes_placeholder_parents(store: MailStore) -> None:
    run(store.create_mailbox(U, "a/b/c"))
    run(store.delete_mailbox(U, "a"))
    run(store.delete_mailbox(U, "a/b"))
    assert listing(store)["a"] == ("\\Noselect", "\\HasChildren")
    run(store.delete_mailbox(U, "a/b/c"))
    assert listing(store) == {"INBOX": ("\\HasNoChildren",)}


def test_create_over_placeholder_makes_it_a_new_mailbox(store: MailStore) -> None:
    run(store.create_mailbox(U, "p/c"))
    old_validity = run(store.status(U, "p")).uidvalidity
    run(store.append(U, "p", b"m"))
    run(store.delete_mailbox(U, "p"))
    run(store.create_mailbox(U, "p"))
    status = run(store.status(U, "p"))
    assert status.messages == 0 and status.uidnext == 1
    assert status.uidvalidity != old_validity
    assert listing(store)["p"] == ("\\HasChildren",)


def test_delete_keeps_subscriptions(store: MailStore) -> None:
    run(store.create_mailbox(U, "Gone"))
    run(store.subscribe(U, "Gone"))
    run(store.delete_mailbox(U, "Gone"))
    assert run(store.subscriptions(U)) == ["Gone"]


# --- RENAME ------------------------------------------------------------------

def test_rename_moves_subtree_and_keeps_identity(store: MailStore) -> None:
    run(store.create_mailbox(U, "a/b/c"))
    run(store.append(U, "a/b", b"kept"))
    before = run(store.status(U, "a/b"))
    run(store.rename_mailbox(U, "a/b", "x/y"))
    assert names_of(store) == ["INBOX", "a", "x", "x/y", "x/y/c"]
    after = run(store.status(U, "x/y"))
    assert (after.uidvalidity, after.uidnext, after.messages) == (
        before.uidvalidity, before.uidnext, 1)
    assert listing(store)["a"] == ("\\HasNoChildren",)


def test_rename_prunes_placeholder_superiors(store: MailStore) -> None:
    run(store.create_mailbox(U, "p/q"))
    run(store.delete_mailbox(U, "p"))
    run(store.rename_mailbox(U, "p/q", "q"))
    assert names_of(store) == ["INBOX", "q"]


def test_rename_placeholder_moves_its_inferiors(store: MailStore) -> None:
    run(store.create_mailbox(U, "p/q"))
    run(store.delete_mailbox(U, "p"))
    run(store.rename_mailbox(U, "p", "r"))
    assert listing(store) == {
        "INBOX": ("\\HasNoChildren",), "r": ("\\Noselect", "\\HasChildren"),
        "r/q": ("\\HasNoChildren",),
    }


@pytest.mark.parametrize(("old", "new", "code"), [
    ("missing", "x", "NONEXISTENT"),
    ("a", "b", "ALREADYEXISTS"),
    ("a", "a", "ALREADYEXISTS"),
    ("a", "inbox", "ALREADYEXISTS"),
    ("a", "a/sub", "CANNOT"),
    ("a", "b/c", "ALREADYEXISTS"),
])
def test_rename_refusals(store: MailStore, old: str, new: str, code: str) -> None:
    run(store.create_mailbox(U, "a"))
    run(store.create_mailbox(U, "b/c"))
    before = names_of(store)
    assert code_of(store.rename_mailbox(U, old, new)) == code
    assert names_of(store) == before


def test_rename_inbox_moves_messages_and_leaves_inbox_empty(store: MailStore) -> None:
    run(store.create_mailbox(U, "INBOX/keep"))
    for n in range(3):
        run(store.append(U, "INBOX", b"msg %d" % n, ["\\Seen"] if n == 1 else []))
    inbox_before = run(store.status(U, "INBOX"))
    run(store.rename_mailbox(U, "inbox", "Archive/2024"))
    inbox = run(store.status(U, "INBOX"))
    assert (inbox.messages, inbox.uidvalidity, inbox.uidnext) == (
        0, inbox_before.uidvalidity, inbox_before.uidnext)
    assert inbox.highestmodseq > inbox_before.highestmodseq
    moved = run(store.status(U, "Archive/2024"))
    assert moved.messages == 3 and moved.unseen == 2
    assert moved.uidvalidity != inbox.uidvalidity
    assert names_of(store) == ["INBOX", "Archive", "Archive/2024", "INBOX/keep"]
    sel = run(store.select(U, "Archive/2024", readonly=True))
    assert [run(store.read_message(sel, uid)) for uid in sel.snapshot.uids] == [
        b"msg 0", b"msg 1", b"msg 2"]
    result = run(store.append(U, "INBOX", b"new"))
    assert result.uid == inbox_before.uidnext


# --- subscriptions and LSUB --------------------------------------------------

def test_subscriptions_are_independent_of_existence(store: MailStore) -> None:
    run(store.subscribe(U, "Not/There"))
    run(store.subscribe(U, "inbox"))
    run(store.subscribe(U, "inbox"))
    assert run(store.subscriptions(U)) == ["INBOX", "Not/There"]
    run(store.unsubscribe(U, "Never/Subscribed"))
    run(store.unsubscribe(U, "Not/There"))
    assert run(store.subscriptions(U)) == ["INBOX"]
    assert run(store.subscriptions("bob")) == []


def test_lsub_percent_lists_unsubscribed_parent_as_noselect(store: MailStore) -> None:
    run(store.create_mailbox(U, "foo/bar"))
    run(store.subscribe(U, "foo/bar"))
    run(store.subscribe(U, "zed"))
    assert lsub(store, "%") == {"foo": ("\\Noselect",), "zed": ()}
    assert lsub(store, "*") == {"foo/bar": (), "zed": ()}
    assert lsub(store, "%", reference="foo/") == {"foo/bar": ()}
    infos = run(store.list_mailboxes(U, "", "*"))
    assert {i.name: i.subscribed for i in infos} == {"INBOX": False, "foo": False, "foo/bar": True}


# --- LIST patterns -----------------------------------------------------------

@pytest.mark.parametrize(("reference", "pattern", "expected"), [
    ("", "*", ["INBOX", "INBOX/x", "Work", "Work/a", "Work/a/b", "Workshop"]),
    ("", "%", ["INBOX", "Work", "Workshop"]),
    ("", "Work/%", ["Work/a"]),
    ("", "Work/*", ["Work/a", "Work/a/b"]),
    ("Work/", "%", ["Work/a"]),
    ("Work/", "*", ["Work/a", "Work/a/b"]),
    ("", "Work*", ["Work", "Work/a", "Work/a/b", "Workshop"]),
    ("", "Work%", ["Work", "Workshop"]),
    ("", "inbox", ["INBOX"]),
    ("", "Inbox/%", ["INBOX/x"]),
    ("", "*/b", ["Work/a/b"]),
    ("", "%/%", ["INBOX/x", "Work/a"]),
    ("", "work", []),
    ("", "W?rk", []),
    ("", "Work.", []),
])
def test_list_patterns(store: MailStore, reference: str, pattern: str, expected: list[str]) -> None:
    for name in ("Work/a/b", "Workshop", "INBOX/x"):
        run(store.create_mailbox(U, name))
    assert names_of(store, pattern, reference) == expected


def test_list_empty_pattern_returns_nothing(store: MailStore) -> None:
    assert run(store.list_mailboxes(U, "", "")) == []


def test_list_info_fields(store: MailStore) -> None:
    run(store.create_mailbox(U, "a/b"))
    run(store.delete_mailbox(U, "a"))
    info = run(store.list_mailboxes(U, "", "a"))[0]
    assert info == MailboxInfo("a", exists=True, selectable=False, has_children=True, subscribed=False)


# --- persistence of the hierarchy ---------------------------------------------

def test_hierarchy_survives_reopen(opener: Opener, data_dir: Path) -> None:
    first = opener(data_dir)
    run(first.create_mailbox(U, "x/y"))
    run(first.delete_mailbox(U, "x"))
    run(first.subscribe(U, "x/y"))
    validity = run(first.status(U, "x/y")).uidvalidity
    run(first.close())
    second = opener(data_dir)
    assert listing(second) == {
        "INBOX": ("\\HasNoChildren",), "x": ("\\Noselect", "\\HasChildren"),
        "x/y": ("\\HasNoChildren",),
    }
    assert run(second.subscriptions(U)) == ["x/y"]
    assert run(second.status(U, "x/y")).uidvalidity == validity
    run(second.create_mailbox(U, "new"))
    assert run(second.status(U, "new")).uidvalidity > validity
    run(second.close())

"""The mail contract, part 1: the mailbox tree through ``MailService``
(RFC 3501 §5.1 names, §6.3.3-§6.3.9 CREATE/DELETE/RENAME/SUBSCRIBE/LIST/LSUB).

Parts 2 and 3 (messages; watches, \\Recent, several instances, restarts) are
in test_messages.py and test_watch.py; backend-level rules in
test_backend.py. Every test runs on every backend kind (conftest.py).
"""

from __future__ import annotations

import pytest

from imapd.mail.backend import MailBackend
from imapd.mail.errors import AlreadyExists, Cannot, HasChildren, MailError, NoSuchMailbox, TargetMissing
from imapd.mail.records import MailboxInfo
from imapd.mail.service import MailService
from tests.mail.contract.conftest import U, make_service, settle, Site, deliver, listing, names_of, refused

ONLY_INBOX = {"INBOX": ("\\HasNoChildren",)}


async def lsub(service: MailService, pattern: str, reference: str = "") -> dict[str, tuple[str, ...]]:
    infos = await service.list_mailboxes(U, reference, pattern, subscribed_only=True)
    return {i.name: i.lsub_attributes() for i in infos}


# --- INBOX -------------------------------------------------------------------

async def test_inbox_exists_on_first_use_and_is_case_insensitive(service: MailService) -> None:
    assert await listing(service) == ONLY_INBOX
    await deliver(service, "inbox", b"x")
    assert (await service.status(U, "InBoX")).messages == 1
    watch = await service.open(U, "iNbOx", readonly=True)
    assert watch.name == "INBOX"
    await refused(AlreadyExists, service.create_mailbox(U, "Inbox"))


async def test_inbox_cannot_be_deleted(service: MailService) -> None:
    await refused(Cannot, service.delete_mailbox(U, "inbox"))
    assert "INBOX" in await listing(service)


async def test_inbox_children_share_inbox_case_folding(service: MailService) -> None:
    await service.create_mailbox(U, "inbox/Sub")
    assert await names_of(service) == ["INBOX", "INBOX/Sub"]
    assert (await service.status(U, "Inbox/Sub")).messages == 0
    # Only the INBOX level folds: other levels stay case-sensitive.
    await refused(NoSuchMailbox, service.status(U, "INBOX/sub"))


async def test_users_are_isolated(service: MailService) -> None:
    await service.create_mailbox(U, "Secret")
    await deliver(service, "Secret", b"private")
    assert await listing(service, user="bob") == ONLY_INBOX
    await refused(NoSuchMailbox, service.status("bob", "Secret"))
    await refused(TargetMissing, deliver(service, "Secret", b"x", user="bob"))
    await refused(NoSuchMailbox, service.open("bob", "Secret", False))


async def test_default_mailboxes_are_created_once(backend: MailBackend) -> None:
    defaults = [("Sent", "\\Sent"), ("Trash", "\\Trash")]
    service = make_service(backend, default_mailboxes=defaults)
    assert await listing(service) == {
        "INBOX": ("\\HasNoChildren",), "Sent": ("\\HasNoChildren", "\\Sent"),
        "Trash": ("\\HasNoChildren", "\\Trash")}
    assert await service.subscriptions(U) == ["Sent", "Trash"]
    await service.delete_mailbox(U, "Trash")
    # A new service (a restart) does not bring back what the user deleted.
    again = make_service(backend, default_mailboxes=defaults)
    assert set(await listing(again)) == {"INBOX", "Sent"}


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
async def test_invalid_names_are_refused_with_a_reason(
    service: MailService, name: str, reason: str
) -> None:
    for call in (
        service.subscribe(U, name),
        service.status(U, name),
        service.rename_mailbox(U, "INBOX", name),
    ):
        error = await refused(Cannot, call)
        assert reason in error.text
    if name != "a/":
        await refused(Cannot, service.create_mailbox(U, name))
    assert await listing(service) == ONLY_INBOX
    assert await service.subscriptions(U) == []


async def test_valid_unusual_names(service: MailService) -> None:
    for name in ("Entwürfe", "日本語/メール", "a.b", "..a", "a&b", "x" * 255, "with space", "back\\slash"):
        await service.create_mailbox(U, name)
        assert (await service.status(U, name)).messages == 0
    deepest = "/".join(["d"] * 32)
    await service.create_mailbox(U, deepest)
    assert deepest in await names_of(service)


async def test_create_with_trailing_delimiter_creates_the_name_without_it(service: MailService) -> None:
    await service.create_mailbox(U, "Projects/")
    assert (await listing(service))["Projects"] == ("\\HasNoChildren",)
    await refused(Cannot, service.create_mailbox(U, "Projects//"))


# --- CREATE ------------------------------------------------------------------

async def test_create_makes_missing_superiors_selectable(service: MailService) -> None:
    await service.create_mailbox(U, "a/b/c")
    assert await listing(service) == {
        "INBOX": ("\\HasNoChildren",),
        "a": ("\\HasChildren",),
        "a/b": ("\\HasChildren",),
        "a/b/c": ("\\HasNoChildren",),
    }
    for name in ("a", "a/b"):
        await deliver(service, name, b"m")


async def test_create_existing_is_alreadyexists(service: MailService) -> None:
    await service.create_mailbox(U, "Work")
    await refused(AlreadyExists, service.create_mailbox(U, "Work"))
    await service.create_mailbox(U, "work")  # names other than INBOX are case-sensitive


async def test_new_mailboxes_have_distinct_uidvalidity(service: MailService) -> None:
    for name in ("one", "two", "three"):
        await service.create_mailbox(U, name)
    values = {(await service.status(U, n)).uidvalidity for n in ("INBOX", "one", "two", "three")}
    assert len(values) == 4
    assert all(0 < v < 2**32 for v in values)


async def test_delete_and_recreate_never_reuses_uidvalidity(service: MailService) -> None:
    await service.create_mailbox(U, "Box")
    seen = set()
    for _ in range(3):
        status = await service.status(U, "Box")
        assert status.uidvalidity not in seen
        seen.add(status.uidvalidity)
        assert (status.uidnext, status.highestmodseq) == (1, 1)
        await deliver(service, "Box", b"m")
        await service.delete_mailbox(U, "Box")
        await service.create_mailbox(U, "Box")


async def test_special_use_is_listed(service: MailService) -> None:
    await service.create_mailbox(U, "Sent", special_use="\\Sent")
    assert (await listing(service))["Sent"] == ("\\HasNoChildren", "\\Sent")


async def test_concurrent_creates_of_one_name_succeed_once(service: MailService) -> None:
    """Two sessions CREATE the same name at once: the tree edit is atomic,
    so exactly one succeeds and the other gets ALREADYEXISTS (a check in one
    call and the insert in another would let both through)."""
    outcomes = await settle(service.create_mailbox(U, "Same/Box") for _ in range(4))
    assert outcomes.count(None) == 1
    assert all(isinstance(o, AlreadyExists) for o in outcomes if o is not None), outcomes
    assert await names_of(service) == ["INBOX", "Same", "Same/Box"]


# --- DELETE ------------------------------------------------------------------

async def test_delete_unknown_is_nonexistent(service: MailService) -> None:
    await refused(NoSuchMailbox, service.delete_mailbox(U, "nope"))


async def test_delete_leaf_removes_it_and_its_messages(service: MailService) -> None:
    await service.create_mailbox(U, "Old")
    await deliver(service, "Old", b"m")
    await service.delete_mailbox(U, "Old")
    assert "Old" not in await listing(service)
    await refused(NoSuchMailbox, service.status(U, "Old"))
    await service.create_mailbox(U, "Old")
    assert (await service.status(U, "Old")).messages == 0


async def test_delete_with_inferiors_leaves_noselect_placeholder(service: MailService) -> None:
    await service.create_mailbox(U, "p/child")
    await deliver(service, "p", b"parent message")
    await service.delete_mailbox(U, "p")
    assert (await listing(service))["p"] == ("\\Noselect", "\\HasChildren")
    await refused(NoSuchMailbox, service.status(U, "p"))
    await refused(NoSuchMailbox, service.open(U, "p", False))
    await refused(TargetMissing, deliver(service, "p", b"x"))
    # RFC 3501 §6.3.4: deleting a \Noselect name with inferiors fails.
    await refused(HasChildren, service.delete_mailbox(U, "p"))
    assert (await service.status(U, "p/child")).messages == 0


async def test_deleting_last_child_removes_placeholder_parents(service: MailService) -> None:
    await service.create_mailbox(U, "a/b/c")
    await service.delete_mailbox(U, "a")
    await service.delete_mailbox(U, "a/b")
    assert (await listing(service))["a"] == ("\\Noselect", "\\HasChildren")
    await service.delete_mailbox(U, "a/b/c")
    assert await listing(service) == ONLY_INBOX


async def test_create_over_placeholder_makes_it_a_new_mailbox(service: MailService) -> None:
    await service.create_mailbox(U, "p/c")
    old_validity = (await service.status(U, "p")).uidvalidity
    await deliver(service, "p", b"m")
    await service.delete_mailbox(U, "p")
    await service.create_mailbox(U, "p")
    status = await service.status(U, "p")
    assert status.messages == 0 and status.uidnext == 1
    assert status.uidvalidity != old_validity
    assert (await listing(service))["p"] == ("\\HasChildren",)


async def test_delete_keeps_subscriptions(service: MailService) -> None:
    await service.create_mailbox(U, "Gone")
    await service.subscribe(U, "Gone")
    await service.delete_mailbox(U, "Gone")
    assert await service.subscriptions(U) == ["Gone"]


# --- RENAME ------------------------------------------------------------------

async def test_rename_moves_subtree_and_keeps_identity(service: MailService) -> None:
    await service.create_mailbox(U, "a/b/c")
    await deliver(service, "a/b", b"kept")
    before = await service.status(U, "a/b")
    await service.rename_mailbox(U, "a/b", "x/y")
    assert await names_of(service) == ["INBOX", "a", "x", "x/y", "x/y/c"]
    after = await service.status(U, "x/y")
    assert (after.uidvalidity, after.uidnext, after.messages) == (
        before.uidvalidity, before.uidnext, 1)
    assert (await listing(service))["a"] == ("\\HasNoChildren",)


async def test_rename_prunes_placeholder_superiors(service: MailService) -> None:
    await service.create_mailbox(U, "p/q")
    await service.delete_mailbox(U, "p")
    await service.rename_mailbox(U, "p/q", "q")
    assert await names_of(service) == ["INBOX", "q"]


async def test_rename_placeholder_moves_its_inferiors(service: MailService) -> None:
    await service.create_mailbox(U, "p/q")
    await service.delete_mailbox(U, "p")
    await service.rename_mailbox(U, "p", "r")
    assert await listing(service) == {
        "INBOX": ("\\HasNoChildren",), "r": ("\\Noselect", "\\HasChildren"),
        "r/q": ("\\HasNoChildren",),
    }


@pytest.mark.parametrize(("old", "new", "error"), [
    ("missing", "x", NoSuchMailbox),
    ("a", "b", AlreadyExists),
    ("a", "a", AlreadyExists),
    ("a", "inbox", AlreadyExists),
    ("a", "a/sub", Cannot),
    ("a", "b/c", AlreadyExists),
])
async def test_rename_refusals(
    service: MailService, old: str, new: str, error: type[MailError]
) -> None:
    await service.create_mailbox(U, "a")
    await service.create_mailbox(U, "b/c")
    before = await names_of(service)
    await refused(error, service.rename_mailbox(U, old, new))
    assert await names_of(service) == before


async def test_rename_inbox_moves_messages_and_leaves_inbox_empty(service: MailService) -> None:
    await service.create_mailbox(U, "INBOX/keep")
    for n in range(3):
        await deliver(service, "INBOX", b"msg %d" % n, ["\\Seen"] if n == 1 else [])
    inbox_before = await service.status(U, "INBOX")
    await service.rename_mailbox(U, "inbox", "Archive/2024")
    inbox = await service.status(U, "INBOX")
    assert (inbox.messages, inbox.uidvalidity, inbox.uidnext) == (
        0, inbox_before.uidvalidity, inbox_before.uidnext)
    assert inbox.highestmodseq > inbox_before.highestmodseq
    moved = await service.status(U, "Archive/2024")
    assert moved.messages == 3 and moved.unseen == 2
    assert moved.uidvalidity != inbox.uidvalidity
    assert moved.uidnext == inbox_before.uidnext
    assert await names_of(service) == ["INBOX", "Archive", "Archive/2024", "INBOX/keep"]
    watch = await service.open(U, "Archive/2024", readonly=True)
    assert [await watch.read_message(uid) for uid in watch.snapshot.uids] == [
        b"msg 0", b"msg 1", b"msg 2"]
    assert list(watch.snapshot.uids) == [1, 2, 3]
    result = await deliver(service, "INBOX", b"new")
    assert result.uid == inbox_before.uidnext


# --- subscriptions and LSUB --------------------------------------------------

async def test_subscriptions_are_independent_of_existence(service: MailService) -> None:
    await service.subscribe(U, "Not/There")
    await service.subscribe(U, "inbox")
    await service.subscribe(U, "inbox")
    assert await service.subscriptions(U) == ["INBOX", "Not/There"]
    await service.unsubscribe(U, "Never/Subscribed")
    await service.unsubscribe(U, "Not/There")
    assert await service.subscriptions(U) == ["INBOX"]
    assert await service.subscriptions("bob") == []


async def test_lsub_percent_lists_unsubscribed_parent_as_noselect(service: MailService) -> None:
    await service.create_mailbox(U, "foo/bar")
    await service.subscribe(U, "foo/bar")
    await service.subscribe(U, "zed")
    assert await lsub(service, "%") == {"foo": ("\\Noselect",), "zed": ()}
    assert await lsub(service, "*") == {"foo/bar": (), "zed": ()}
    assert await lsub(service, "%", reference="foo/") == {"foo/bar": ()}
    infos = await service.list_mailboxes(U, "", "*")
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
async def test_list_patterns(
    service: MailService, reference: str, pattern: str, expected: list[str]
) -> None:
    for name in ("Work/a/b", "Workshop", "INBOX/x"):
        await service.create_mailbox(U, name)
    assert await names_of(service, pattern, reference) == expected


async def test_list_empty_pattern_returns_nothing(service: MailService) -> None:
    assert await service.list_mailboxes(U, "", "") == []


async def test_list_info_fields(service: MailService) -> None:
    await service.create_mailbox(U, "a/b")
    await service.delete_mailbox(U, "a")
    info = (await service.list_mailboxes(U, "", "a"))[0]
    assert info == MailboxInfo("a", exists=True, selectable=False, has_children=True, subscribed=False)


# --- persistence of the tree --------------------------------------------------

async def test_tree_survives_reopen(site: Site) -> None:
    first_backend = await site.open()
    first = make_service(first_backend)
    await first.create_mailbox(U, "x/y")
    await first.delete_mailbox(U, "x")
    await first.subscribe(U, "x/y")
    validity = (await first.status(U, "x/y")).uidvalidity
    await site.close(first_backend)
    second = make_service(await site.open())
    assert await listing(second) == {
        "INBOX": ("\\HasNoChildren",), "x": ("\\Noselect", "\\HasChildren"),
        "x/y": ("\\HasNoChildren",),
    }
    assert await second.subscriptions(U) == ["x/y"]
    assert (await second.status(U, "x/y")).uidvalidity == validity
    await second.create_mailbox(U, "new")
    assert (await second.status(U, "new")).uidvalidity > validity


async def test_tree_edits_cross_instances(site: Site) -> None:
    """A second instance (another process) sees the first one's tree edits
    at once: the tree is read from the store, not from a per-process cache."""
    one = make_service(await site.open())
    two = make_service(await site.open())
    await one.create_mailbox(U, "Shared/Box")
    assert await names_of(two) == ["INBOX", "Shared", "Shared/Box"]
    await two.rename_mailbox(U, "Shared", "Moved")
    assert await names_of(one) == ["INBOX", "Moved", "Moved/Box"]
    await refused(AlreadyExists, one.create_mailbox(U, "Moved/Box"))

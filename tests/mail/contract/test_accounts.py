"""The mail contract, whole accounts (``delete_account``, ``rename_account``;
``imapd user del`` / ``user rename``, issue 17) on every engine: a deleted
account leaves nothing behind (mail, subscriptions, quota, usage, the
defaults' record), a new account of that name starts empty with fresh
UIDVALIDITYs (RFC 3501 §2.3.1.1), other users are untouched, open watches
(this instance and another) see ``MailboxDeleted``; a rename moves it all
keeping UIDVALIDITY and UIDs."""

from __future__ import annotations

from imapd.mail.backend import QuotaInfo
from imapd.mail.errors import AlreadyExists, Cannot
from imapd.mail.events import MailboxDeleted
from imapd.mail.service import MailService
from tests.mail.contract.conftest import (
    U, Site, deliver, listing, make_service, refused,
)
from tests.mail.contract.test_watch import rung

DEFAULTS = (("Sent", "\\Sent"), ("Trash", "\\Trash"))


async def populate(service: MailService, user: str = U) -> dict[str, int]:
    """Mail in INBOX and a folder, a subscription, a quota: the
    UIDVALIDITY of each mailbox."""
    await service.create_mailbox(user, "Work/2026")
    await service.subscribe(user, "Work/2026")
    await service.set_quota(user, 10_000, 100)
    await deliver(service, "INBOX", b"one\r\n", user=user)
    await deliver(service, "INBOX", b"two\r\n", ["\\Seen"], user=user)
    await deliver(service, "Work/2026", b"three\r\n", user=user)
    return {name: (await service.status(user, name)).uidvalidity
            for name in ("INBOX", "Work/2026")}


async def test_delete_leaves_nothing_and_a_new_account_starts_empty(site: Site) -> None:
    service = make_service(await site.open(), default_mailboxes=DEFAULTS)
    old = await populate(service)
    await service.delete_mailbox(U, "Trash")  # a default the user deleted
    assert await service.delete_account(U)
    assert await service.backend.mailboxes(U) == []
    assert await service.backend.subscriptions(U) == []
    assert await service.quota(U) == QuotaInfo(0, None, 0, None)
    # The same name again: a new, empty account with the defaults again.
    assert set(await listing(service)) == {"INBOX", "Sent", "Trash"}
    inbox = await service.status(U, "INBOX")
    assert (inbox.messages, inbox.uidnext) == (0, 1)
    assert inbox.uidvalidity not in old.values()
    assert await service.subscriptions(U) == ["Sent", "Trash"]
    assert await service.quota(U) == QuotaInfo(0, None, 0, None)
    await deliver(service, "INBOX", b"new\r\n")
    assert await service.quota(U) == QuotaInfo(5, None, 1, None)
    assert not await service.delete_account("nobody")


async def test_delete_keeps_other_users_and_shared_bodies(site: Site) -> None:
    service = make_service(await site.open())
    await populate(service)
    await populate(service, "bob")
    bob_before = await service.quota("bob")
    watch = await service.open(U, "INBOX", False)
    await watch.copy([1], "Work/2026")  # two references to one body
    watch.close()
    assert await service.delete_account(U)
    assert await service.quota("bob") == bob_before
    assert set(await listing(service, user="bob")) == {"INBOX", "Work", "Work/2026"}
    bob = await service.open("bob", "INBOX", True)
    assert [r.size for r in await bob.fetch_records()] == [5, 5]


async def test_open_watches_see_the_account_deleted(site: Site) -> None:
    one = make_service(await site.open())
    two = make_service(await site.open())
    await populate(one)
    here = await one.open(U, "INBOX", False)
    there = await two.open(U, "Work/2026", False)
    assert await one.delete_account(U)
    await rung(here)
    await rung(there)
    assert await here.catch_up() == [MailboxDeleted()]
    assert await there.catch_up() == [MailboxDeleted()]
    # The other instance had ensured the user: it provisions the new one.
    assert (await two.status(U, "INBOX")).messages == 0


async def test_rename_moves_everything_and_keeps_identifiers(site: Site) -> None:
    service = make_service(await site.open())
    old = await populate(service)
    usage = await service.quota(U)
    await service.status("carol", "INBOX")  # carol logged in once: an empty account
    assert await service.rename_account(U, "carol")
    assert await service.backend.mailboxes(U) == []
    assert await service.quota(U) == QuotaInfo(0, None, 0, None)
    assert await service.quota("carol") == usage
    assert {name: (await service.status("carol", name)).uidvalidity
            for name in old} == old
    assert "Work/2026" in await service.subscriptions("carol")
    watch = await service.open("carol", "INBOX", True)
    assert [r.uid for r in await watch.fetch_records()] == [1, 2]
    assert (await service.status(U, "INBOX")).messages == 0  # alice anew: empty


async def test_rename_refuses_a_target_with_mail_and_itself(site: Site) -> None:
    service = make_service(await site.open())
    await populate(service)
    await deliver(service, "INBOX", b"bob's\r\n", user="bob")
    await refused(AlreadyExists, service.rename_account(U, "bob"))
    await refused(Cannot, service.rename_account(U, U))
    assert (await service.status(U, "INBOX")).messages == 2
    assert (await service.status("bob", "INBOX")).messages == 1
    assert not await service.rename_account("nobody", "someone")

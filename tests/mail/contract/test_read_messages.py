"""The contract of ``MailBackend.read_messages`` (SEARCH confirms a batch of
candidates on their bytes with one call, issue 18): every engine answers,
for the existing UIDs asked about, each message's whole bytes, exactly as
``read_message`` does; messages that do not exist (never, or expunged) are
left out; a copy reads its source's bytes; a stale mailbox ref is refused.
``MailboxWatch.read_messages`` answers the same from a backend without the
method (one ``read_message`` per UID)."""

from __future__ import annotations

from typing import Any

from imapd.mail.backend import AddMailbox, MailBackend, RemoveMailbox
from imapd.mail.errors import NoSuchMailbox
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from tests.mail.contract.conftest import U, deliver, make_service, refused

# Empty, small, and one spanning several of PostgreSQL's 512 KiB chunks.
MESSAGES = [
    b"",
    b"Subject: one\r\n\r\nfirst body\r\n",
    bytes(range(256)) * 5000 + b"\r\nend\r\n",
    b"Subject: three\r\n\r\nthird\r\n",
]


async def test_bytes_of_every_existing_message_asked_about(service: MailService) -> None:
    uids = [(await deliver(service, "INBOX", raw)).uid for raw in MESSAGES]
    watch = await service.open(U, "INBOX", readonly=True)
    found = await watch.read_messages([*reversed(uids), 999])
    assert sorted(found) == uids  # 999 does not exist
    for uid, raw in zip(uids, MESSAGES):
        assert found[uid] == raw == await watch.read_message(uid)
    assert await watch.read_messages(uids[1:2]) == {uids[1]: MESSAGES[1]}
    assert await watch.read_messages([]) == {}


async def test_expunged_leave_and_copies_read_their_source(service: MailService) -> None:
    await service.create_mailbox(U, "Other")
    first = (await deliver(service, "INBOX", MESSAGES[1])).uid
    second = (await deliver(service, "INBOX", MESSAGES[3])).uid
    inbox = await service.open(U, "INBOX", readonly=False)
    await inbox.copy([first, second], "Other")
    await inbox.store_flags([first], FlagOp.ADD, ["\\Deleted"])
    await inbox.expunge()
    assert await inbox.read_messages([first, second]) == {second: MESSAGES[3]}
    other = await service.open(U, "Other", readonly=True)
    assert await other.read_messages([1, 2]) == {1: MESSAGES[1], 2: MESSAGES[3]}


async def test_a_stale_ref_is_refused(backend: MailBackend) -> None:
    await backend.ensure_user(U)
    await backend.edit_tree(U, lambda tree: [AddMailbox("Box")])
    entry = await backend.lookup(U, "Box")
    assert entry is not None
    await backend.append(entry.ref, [AppendItem(b"old body", ())])
    await backend.edit_tree(U, lambda tree: [RemoveMailbox("Box")])
    await backend.edit_tree(U, lambda tree: [AddMailbox("Box")])
    await refused(NoSuchMailbox, backend.read_messages(entry.ref, [1]))


class _WithoutReadMessages:
    """The backend without the method, as an older engine or a wrapper."""

    def __init__(self, inner: MailBackend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "read_messages":
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_watch_reads_one_by_one_from_a_backend_without_it(backend: MailBackend) -> None:
    service = make_service(_WithoutReadMessages(backend))
    uids = [(await deliver(service, "INBOX", raw)).uid for raw in MESSAGES]
    watch = await service.open(U, "INBOX", readonly=True)
    assert await watch.read_messages([*uids, 999]) == dict(zip(uids, MESSAGES))

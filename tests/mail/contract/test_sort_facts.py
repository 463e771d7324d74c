"""The contract of ``MailBackend.sort_facts`` (SORT and THREAD's facts
kept at delivery, RFC 5256; ``imapd.message.sortfacts``): every engine
answers, for the existing UIDs asked about, the facts of each message as
``facts_for`` computes them from its bytes and analysis; messages that do
not exist (never, or expunged) are left out; a copy has its source's facts
under its new UID."""

from __future__ import annotations

from imapd.mail.flags import FlagOp
from imapd.mail.service import MailService
from imapd.message import analyze, sortfacts
from tests.mail.contract.conftest import U, deliver

MESSAGES = [
    b"Date: Tue, 8 Feb 1994 01:00:00 +0900\r\nSubject: Re: [list] Caf\xc3\xa9\r\n"
    b"From: =?utf-8?q?=C3=89mile?= <emile@example.org>\r\nMessage-ID: <one@x>\r\n\r\nbody\r\n",
    b"Subject: second\r\nTo: team: a@b;\r\nReferences: <one@x>\r\nIn-Reply-To: <z@x>\r\n\r\nx\r\n",
    b"no header at all\r\n",
]


def _expected(raw: bytes) -> sortfacts.SortFacts:
    blob = sortfacts.facts_for(raw, analyze(raw).to_bytes())
    assert blob is not None
    return sortfacts.decode(blob)


async def test_facts_of_every_message_asked_about(service: MailService) -> None:
    uids = [(await deliver(service, "INBOX", raw)).uid for raw in MESSAGES]
    watch = await service.open(U, "INBOX", readonly=True)
    stored = await watch.sort_facts([*uids, 999])
    assert sorted(stored) == uids  # 999 does not exist
    for uid, raw in zip(uids, MESSAGES):
        assert sortfacts.decode(stored[uid]) == _expected(raw)
    assert list(await watch.sort_facts(uids[1:2])) == uids[1:2]
    assert await watch.sort_facts([]) == {}


async def test_expunged_leave_and_copies_keep_their_facts(service: MailService) -> None:
    await service.create_mailbox(U, "Other")
    first = (await deliver(service, "INBOX", MESSAGES[0])).uid
    second = (await deliver(service, "INBOX", MESSAGES[1])).uid
    inbox = await service.open(U, "INBOX", readonly=False)
    await inbox.copy([first], "Other")
    await inbox.store_flags([first], FlagOp.ADD, ["\\Deleted"])
    await inbox.expunge()
    assert list(await inbox.sort_facts([first, second])) == [second]
    other = await service.open(U, "Other", readonly=True)
    copied = await other.sort_facts([1])
    assert sortfacts.decode(copied[1]) == _expected(MESSAGES[0])

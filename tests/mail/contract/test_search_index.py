"""The contract of ``MailBackend.text_candidates`` (SEARCH's full-text
index, RFC 3501 §6.4.4 under ``i;unicode-casemap``, RFC 5051): an engine
may answer None (no index: the caller scans), and when it answers, every
message whose decoded text contains the folded needle is among the UIDs it
names. Expunged messages leave it; copies are found in their new mailbox."""

from __future__ import annotations

import base64
import random

from imapd.mail.flags import FlagOp
from imapd.mail.service import MailService
from imapd.message import analyze
from imapd.message.casemap import fold
from imapd.message.searchtext import folded_header_texts, searchable_text
from tests.mail.contract.conftest import Kind, U, deliver

WORDS = ("apple", "Straße", "ÄPFEL", "café", "ﬁle", "ΣΟΦΙΑ", "σοφία", "quokka", "Ｆｕｌｌ",
         "日本語", "needle", "100%_sure", "back\\slash")
NEEDLES = ("quokka", "QUOKKA", "straße", "äpfel", "apfel", "FILE", "full", "σοφια", "日本",
           "needle@example", "100%_", "%_s", "k\\s", "café", "cafe", "zzz", "ab", "")
SCOPES = [("TEXT", None), ("BODY", None), ("HEADER", "SUBJECT"), ("HEADER", "FROM"),
          ("HEADER", "x-tag")]


def _message(rng: random.Random) -> bytes:
    def words() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))

    subject = words()
    if rng.random() < 0.4:
        subject = "=?utf-8?b?" + base64.b64encode(subject.encode()).decode() + "?="
    user = rng.choice(("bob", "needle", "apple.pie"))
    header = f"From: {words()} <{user}@example.org>\r\nSubject: {subject}\r\n"
    if rng.random() < 0.5:
        header += f"X-Tag: {words()}\r\n"
    body = words().encode()
    if rng.random() < 0.5:
        header += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
        body = base64.encodebytes(body)
    return header.encode() + b"\r\n" + body + b"\r\n"


def _matches(raw: bytes, scope: str, field: str | None, needle: str) -> bool:
    info = analyze(raw)
    if field is None:
        return fold(needle) in searchable_text(raw, info, scope)
    return any(fold(needle) in value for value in folded_header_texts(raw, info, field))


async def test_candidates_include_every_match(service: MailService) -> None:
    rng = random.Random(5051)
    raws = [_message(rng) for _ in range(30)]
    uids = [(await deliver(service, "INBOX", raw)).uid for raw in raws]
    watch = await service.open(U, "INBOX", readonly=True)
    for needle in NEEDLES:
        for scope, field in SCOPES:
            found = await watch.text_candidates(scope, fold(needle))
            if found is None:
                continue  # no index (or too short a needle): the caller scans
            exact = {uid for uid, raw in zip(uids, raws) if _matches(raw, scope, field, needle)}
            assert exact <= found, (needle, scope, field)
            assert found <= set(uids)


async def test_expunged_messages_leave_and_copies_are_found(
        service: MailService, kind: Kind) -> None:
    rare = b"Subject: hello\r\n\r\nthe okapi is rare\r\n"
    await service.create_mailbox(U, "Other")
    first = (await deliver(service, "INBOX", rare)).uid
    await deliver(service, "INBOX", b"Subject: hello\r\n\r\nnothing\r\n")
    inbox = await service.open(U, "INBOX", readonly=False)
    found = await inbox.text_candidates("BODY", fold("Okapi"))
    if found is None:
        assert kind.engine == "memory"  # the one engine without an index
        return
    assert found == {first}
    await inbox.copy([first], "Other")
    await inbox.store_flags([first], FlagOp.ADD, ["\\Deleted"])
    await inbox.expunge()
    assert first not in (await inbox.text_candidates("BODY", fold("okapi")) or set())
    other = await service.open(U, "Other", readonly=True)
    assert await other.text_candidates("TEXT", fold("OKAPI")) == {1}

"""A catch-up whose read fails leaves the doorbell rung (issue 14).

``MailboxWatch.catch_up`` clears ``rang`` before it reads, so a ring during
the read is not lost. When the read itself fails (PostgreSQL restarting:
``Unavailable``), nothing was read: the watch must stay rung, or the
session would not learn of the change until another one rang. Found by
tests/e2e/test_postgres_kills.py: after a restart a client's own APPEND
stayed unknown to its session, and its UID STORE on the APPENDUID's UIDs
was answered OK while matching no message.
"""

from __future__ import annotations

import datetime

from imapd.mail.backend import Changes, MailboxRef
from imapd.mail.errors import Unavailable
from imapd.mail.events import MessagesAdded
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.storage.memory import MemoryBackend
from tests.support.inline import run_inline as run

U = "alice"
DATE = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)


class ReadsFail(MemoryBackend):
    """A memory backend whose ``changes_since`` fails while ``down``."""

    down = False

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        if self.down:
            raise Unavailable("mail store unavailable: server closed the connection")
        return await super().changes_since(ref, modseq, uidnext)


def test_a_failed_catch_up_leaves_the_watch_rung() -> None:
    backend = ReadsFail()
    service = MailService(backend)
    watch = run(service.open(U, "INBOX", False))
    run(service.deliver(U, "INBOX", [AppendItem(b"Subject: x\r\n\r\nx", (), DATE)]))
    assert watch.rang
    backend.down = True
    try:
        run(watch.catch_up())
    except Unavailable:
        pass
    else:
        raise AssertionError("the catch-up should have failed")
    assert watch.rang, "the change is unread: the next command must catch up"
    backend.down = False
    assert run(watch.catch_up()) == [MessagesAdded((1,), frozenset({1}))]
    assert not watch.rang

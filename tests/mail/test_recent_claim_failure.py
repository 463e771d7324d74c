"""A ``\\Recent`` claim that cannot be written does not fail SELECT or a
catch-up (issue 13, items 2 and 7).

Claiming is a write (RFC 3501 §2.3.2: each message is recent in one
session); on a full disk (``StorageFull``) or behind another process's
write lock (``Unavailable`` after the bounded wait) SELECT must still open
the mailbox, as a read: the messages are then simply not recent in this
session (they stay unclaimed for the next one). \\Recent is advisory
(RFC 9051 dropped it).
"""

from __future__ import annotations

import datetime
from typing import Sequence

import pytest

from imapd.mail.backend import MailboxRef
from imapd.mail.errors import MailError, StorageFull, Unavailable
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.mail.events import MessagesAdded
from imapd.storage.memory import MemoryBackend
from tests.support.inline import run_inline as run

U = "alice"
DATE = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)
MESSAGE = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nbody\r\n"


class ClaimsFail(MemoryBackend):
    """A memory backend whose ``claim_recent`` fails while ``error`` is set."""

    error: MailError | None = None

    async def claim_recent(self, ref: MailboxRef, uidnext: int) -> tuple[int, int] | None:
        if self.error is not None:
            raise self.error
        return await super().claim_recent(ref, uidnext)


def deliver(service: MailService, count: int) -> None:
    items: Sequence[AppendItem] = [AppendItem(MESSAGE, (), DATE) for _ in range(count)]
    run(service.deliver(U, "INBOX", items))


@pytest.mark.parametrize("error", [StorageFull("disk full"), Unavailable("busy")])
def test_select_opens_without_recent_when_the_claim_fails(error: MailError) -> None:
    backend = ClaimsFail()
    service = MailService(backend)
    deliver(service, 2)
    backend.error = error
    watch = run(service.open(U, "INBOX", readonly=False))
    assert len(watch.snapshot.uids) == 2 and watch.snapshot.recent == frozenset()
    backend.error = None
    other = run(service.open(U, "INBOX", readonly=False))
    assert other.snapshot.recent == {1, 2}  # still unclaimed: the next session has them


@pytest.mark.parametrize("error", [StorageFull("disk full"), Unavailable("busy")])
def test_a_catch_up_reports_new_messages_when_the_claim_fails(error: MailError) -> None:
    backend = ClaimsFail()
    service = MailService(backend)
    deliver(service, 1)
    watch = run(service.open(U, "INBOX", readonly=False))
    backend.error = error
    deliver(MailService(MemoryBackend(backend.data)), 1)  # another process delivers
    events = run(watch.catch_up())
    added = [e for e in events if isinstance(e, MessagesAdded)]
    assert len(added) == 1 and added[0].uids == (2,) and not added[0].recent

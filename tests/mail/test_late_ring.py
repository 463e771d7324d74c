"""A watch's catch-up is never older than a state it has read itself
(issue 14; ``MailService.changes_for``, ``MailboxWatch.history``).

``changes_for`` shares one catch-up read among the watches of a mailbox
until the next doorbell. With an engine that reads on other threads
(PostgreSQL) a commit is visible before its doorbell is heard, so a shared
read made before that commit is still "current" by the ring count. A watch
that has meanwhile read the newer state directly (QRESYNC's ``history``)
and catches up to match it must not be handed the older shared read: the
resync would then find the view behind its read on every attempt.
"""

from __future__ import annotations

import datetime

from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.storage.memory import MemoryBackend
from tests.support.inline import run_inline as run
from tests.support.late_rings import LateRings

U = "alice"
DATE = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)


def message(n: int) -> AppendItem:
    return AppendItem(f"Subject: {n}\r\n\r\nbody {n}\r\n".encode(), (), DATE)


def test_a_catch_up_is_not_older_than_the_watchs_own_read() -> None:
    backend = LateRings()
    service = MailService(backend)
    run(service.deliver(U, "INBOX", [message(1), message(2)]))
    first = run(service.open(U, "INBOX", False))
    second = run(service.open(U, "INBOX", False))
    run(service.deliver(U, "INBOX", [message(3)]))  # rings both
    run(first.catch_up())  # the shared read, reusable by ``second``
    other = MailService(MemoryBackend(backend.data))  # another frontend
    writer = run(other.open(U, "INBOX", False))

    async def meanwhile() -> None:
        await writer.store_flags([1], FlagOp.ADD, ["\\Seen"])

    backend.interfere = meanwhile  # committed, its doorbell not heard yet
    _, _, read_at = run(second.history(0))
    # ``second`` rang for message 3 only: the shared read covers that ring.
    run(second.catch_up())
    assert second.highestmodseq >= read_at, (
        f"caught up to {second.highestmodseq}, older than its own read at {read_at}")
    backend.late.release()

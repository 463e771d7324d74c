"""A QRESYNC resynchronisation must describe the state SELECT announces,
even when a commit is visible to reads before its doorbell is heard
(issue 14, found by the stress checker on PostgreSQL).

With PostgreSQL the reads run on pool threads: another session's commit
can land after the view's state was read and before the resync's own
read (``MailboxWatch.history``), and its NOTIFY / hop reaches the reactor
only later, so ``rang`` is still False when the read returns. The resync
then answered ``FETCH ... MODSEQ (m+1)`` under ``OK [HIGHESTMODSEQ m]``,
and when the ring came the same change was caught up again and sent as an
unsolicited FETCH before the tagged OK, numbered in a state the client
could not place (a message above its known UIDs): RFC 7162 §3.2.5.2's
FETCH responses must be the resynchronisation's, and HIGHESTMODSEQ must
cover what they report (§3.1.2.1).

``LateRings`` (tests/support/late_rings.py) holds the doorbell of the
interfering commit back until the test releases it: what any engine with
reads off the reactor thread can do.
"""

from __future__ import annotations

import datetime
from imapd.core.model import SeqRange, SequenceSet
from imapd.imap.commands.condstore import resync
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.commands import QResync
from imapd.imap.wire.responses import FetchResponse
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


def test_resync_matches_the_announced_state_when_a_ring_is_late() -> None:
    backend = LateRings()
    service = MailService(backend)
    run(service.deliver(U, "INBOX", [message(n) for n in range(1, 4)]))
    device = SelectedView(run(service.open(U, "INBOX", False)))
    cached_modseq, uidvalidity = device.told_modseq, device.uidvalidity
    device.close()  # the client keeps UIDs 1-3 and that HIGHESTMODSEQ

    other = MailService(MemoryBackend(backend.data))  # another frontend
    writer = run(other.open(U, "INBOX", False))
    run(writer.store_flags([1], FlagOp.ADD, ["\\Flagged"]))

    async def meanwhile() -> None:
        # After the view's state was read, before the resync's read: a flag
        # change on a known message, an expunge of another, a new message.
        await writer.store_flags([2], FlagOp.ADD, ["\\Seen"])
        await writer.store_flags([3], FlagOp.ADD, ["\\Deleted"])
        await writer.expunge([3])
        await other.deliver(U, "INBOX", [message(4)])

    backend.interfere = meanwhile
    view = SelectedView(run(service.open(U, "INBOX", False)))
    view.condstore = view.qresync = True
    known = SequenceSet((SeqRange(1, 3),))
    answer = run(resync(view, QResync(uidvalidity, cached_modseq, known)))
    fetched = {r.seq: dict(r.items) for r in answer if isinstance(r, FetchResponse)}
    announced = view.told_modseq  # what SELECT's OK [HIGHESTMODSEQ] carries
    for items in fetched.values():
        modseq = items["MODSEQ"].items[0]  # type: ignore[union-attr]
        assert isinstance(modseq, int) and modseq <= announced, (
            f"resync FETCH MODSEQ {modseq} above the announced HIGHESTMODSEQ {announced}")
    assert sorted(items["UID"] for items in fetched.values()) == [1, 2]  # type: ignore[type-var]
    assert list(view.uids) == [1, 2, 4], "EXISTS counts what the resync's read saw"
    vanished = [r for r in answer if not isinstance(r, FetchResponse)]
    assert len(vanished) == 1 and b"3" in repr(vanished[0]).encode(), answer

    # The late doorbell: nothing left to tell (no unsolicited FETCH or EXISTS
    # before the tagged OK that the client could not place).
    backend.late.release()
    run(view.catch_up())
    assert view.drain(allow_expunge=True) == []


def test_a_pending_older_state_is_not_sent_after_a_stores_fetch() -> None:
    """A catch-up before a STORE queued another session's change of the
    message; the STORE's FETCH then showed the newer full state. Drained
    after it, the pending older one took the MODSEQ backwards (RFC 7162
    §3.1.2); found by the stress checker on PostgreSQL."""
    backend = MemoryBackend()
    service = MailService(backend)
    run(service.deliver(U, "INBOX", [message(1)]))
    view = SelectedView(run(service.open(U, "INBOX", False)))
    view.condstore = True
    other = MailService(MemoryBackend(backend.data))
    writer = run(other.open(U, "INBOX", False))
    older = run(writer.store_flags([1], FlagOp.ADD, ["\\Flagged"])).states[0]
    run(view.catch_up())  # the catch-up before the store: queues ``older``
    newer = run(view.watch.store_flags([1], FlagOp.ADD, ["\\Seen"])).states[0]
    assert newer.modseq > older.modseq
    view.reported([newer], shown=True)  # the STORE's FETCH sent ``newer``
    # The drain before the tagged OK, the store's own change not caught up
    # yet (as on the wire: the older state came right after the newer).
    assert view.drain(allow_expunge=True) == []
    run(view.catch_up())  # caught up later: nothing the client has not seen
    assert view.drain(allow_expunge=True) == []

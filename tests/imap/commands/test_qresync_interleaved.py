"""SELECT (QRESYNC ...) while another session commits (RFC 7162 §3.2.5.2).

With a backend whose calls really wait (the threaded SQLite engine: the
``claim_recent`` of SELECT goes to the writer thread), other sessions
commit between the selection's snapshot and the resynchronisation's reads.
The client rebuilds its list as "known UIDs - VANISHED (EARLIER) + FETCHed"
and places it under EXISTS; every response before the tagged OK must agree
with that EXISTS. Here the interleaving is made deterministic: the
backend runs another session's change just before the selection's
``claim_recent``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from imapd.core.model import SequenceSet
from imapd.imap.commands.dispatch import Dispatcher
from imapd.imap.commands.registry import default_registry
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Exists, FetchResponse, Generic, Status, Tagged
from imapd.imap.wire.values import Atom
from imapd.mail.backend import MailBackend, MailboxRef
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from tests.imap.commands.harness import message
from tests.support.context import make_context, make_mail, make_users, result_of

Hook = Callable[[MailBackend, MailboxRef], Awaitable[None]]


class InterleavingBackend:
    """``inner``, but the next ``claim_recent`` first runs ``hook`` (what
    another session commits while the writer thread is busy)."""

    def __init__(self, inner: MailBackend) -> None:
        self.inner = inner
        self.feed = inner.feed
        self.hook: Hook | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def claim_recent(self, ref: MailboxRef, uidnext: int) -> tuple[int, int] | None:
        hook, self.hook = self.hook, None
        if hook is not None:
            await hook(self.inner, ref)
        return await self.inner.claim_recent(ref, uidnext)


def _setup(tmp_path: Path) -> tuple[MailService, InterleavingBackend, int, int]:
    """INBOX with UIDs 1, 2 (the client's cache, at the returned MODSEQ)
    and 3, delivered after it; the returned UIDVALIDITY."""
    mail = make_mail(tmp_path / "mail")
    result_of(mail.deliver("alice", "INBOX", [AppendItem(message(1)), AppendItem(message(2))]))
    watch = result_of(mail.open("alice", "INBOX", True))
    modseq, uidvalidity = watch.snapshot.highestmodseq, watch.uidvalidity
    watch.close()
    result_of(mail.deliver("alice", "INBOX", [AppendItem(message(3))]))
    backend = InterleavingBackend(mail.backend)
    mail.backend = backend
    return mail, backend, modseq, uidvalidity


def _select(tmp_path: Path, mail: MailService, params: c.QResync) -> list[object]:
    ctx, recorder, _ = make_context(make_users(tmp_path, alice="pw"), mail=mail)
    ctx.session.log_in("alice")
    ctx.session.enabled.update({"CONDSTORE", "QRESYNC"})
    outcome = result_of(Dispatcher(default_registry(), 5).dispatch(
        c.Select("s", "INBOX", qresync=params), ctx))
    assert outcome is not None and isinstance(outcome.reply, Tagged)
    assert outcome.reply.status is Status.OK
    return list(recorder.sent)


def _vanished(sent: list[object]) -> set[int]:
    uids: set[int] = set()
    for response in sent:
        if isinstance(response, Generic) and response.name == "VANISHED":
            text = response.values[-1]
            assert isinstance(text, Atom)
            for part in text.value.split(","):
                low, _, high = part.partition(":")
                uids.update(range(int(low), int(high or low) + 1))
    return uids


def _fetched(sent: list[object]) -> dict[int, int]:
    """UID -> sequence number of every FETCH before the tagged reply."""
    return {uid: r.seq for r in sent if isinstance(r, FetchResponse)
            for name, uid in r.items if name == "UID" and isinstance(uid, int)}


@pytest.mark.parametrize("ring_arrived", [True, False])
def test_message_expunged_during_select_is_not_counted_unexplained(
    tmp_path: Path, ring_arrived: bool,
) -> None:
    """UID 3 (unknown to the client, added after its MODSEQ) is expunged
    by another session while SELECT claims \\Recent. Before the fix EXISTS
    came from the snapshot (3) while the resync, read later, could neither
    FETCH UID 3 (gone) nor report it VANISHED (still in the view): the
    client's list had 2 messages under EXISTS 3. ``ring_arrived=False``:
    the commit's doorbell is still on its way (the threaded writer rings
    through ``callFromThread``), so only the reads show the change."""
    mail, backend, modseq, uidvalidity = _setup(tmp_path)

    async def expunge_3(inner: MailBackend, ref: MailboxRef) -> None:
        await inner.store_flags(ref, [3], FlagOp.ADD, ["\\Deleted"])
        assert await inner.expunge(ref, [3]) == [3]
        if not ring_arrived:
            for watch in mail.watches(ref.id):
                watch.rang = False

    backend.hook = expunge_3
    sent = _select(tmp_path, mail, c.QResync(uidvalidity, modseq))
    exists = [r.count for r in sent if isinstance(r, Exists)]
    rebuilt = sorted(({1, 2} - _vanished(sent)) | set(_fetched(sent)))
    assert exists == [len(rebuilt)] == [2]
    assert all(rebuilt.index(uid) + 1 == seq for uid, seq in _fetched(sent).items())
    result_of(mail.close())


def test_flag_change_during_select_is_not_mixed_into_the_resync(tmp_path: Path) -> None:
    """With the known-UIDs list (1:2) the resync FETCHes only known UIDs;
    a flag change of UID 3 committed during SELECT must not come as a
    FETCH before the tagged OK (the client would take it for resync data
    and place UID 3 among its known messages); it is part of the state
    the selection reports."""
    mail, backend, modseq, uidvalidity = _setup(tmp_path)

    async def flag_3(inner: MailBackend, ref: MailboxRef) -> None:
        await inner.store_flags(ref, [3], FlagOp.ADD, ["\\Flagged"])

    backend.hook = flag_3
    known = SequenceSet.single(1)
    known = SequenceSet(known.ranges + SequenceSet.single(2).ranges)
    sent = _select(tmp_path, mail, c.QResync(uidvalidity, modseq, known))
    assert [r.count for r in sent if isinstance(r, Exists)] == [3]
    assert set(_fetched(sent)) <= {1, 2}
    result_of(mail.close())

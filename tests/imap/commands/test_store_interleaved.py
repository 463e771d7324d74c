"""STORE .SILENT while another session's write is queued ahead of it.

With the threaded SQLite backend writes run in order on the writer thread,
and a commit's doorbell rings only when the reactor gets to it. So the
catch-up STORE does before storing can miss another session's change
that commits just before the store: the store's resulting state (with
MODSEQ m) then contains that change too, and the view, told the client
knows the state at m (its own .SILENT change), would drop it: the client
never hears of the other session's flags (the stress checker's
``flags-differ``). Here that interleaving is made deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from imapd.core.model import SequenceSet
from imapd.imap.commands.dispatch import Dispatcher
from imapd.imap.commands.registry import default_registry
from imapd.imap.session.view import SelectedView
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import FetchResponse, Status, Tagged
from imapd.imap.wire.values import Atom, PList
from imapd.mail.backend import MailBackend, MailboxRef
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem, StoreResult
from imapd.mail.service import MailService
from tests.imap.commands.harness import message
from tests.support.context import make_context, make_mail, make_users, result_of

Hook = Callable[[MailBackend, MailboxRef], Awaitable[None]]


class StoreInterleaving:
    """``inner``, but the next ``store_flags`` first runs ``hook``."""

    def __init__(self, inner: MailBackend) -> None:
        self.inner = inner
        self.feed = inner.feed
        self.hook: Hook | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def store_flags(
        self, ref: MailboxRef, uids: Sequence[int], op: FlagOp, flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        hook, self.hook = self.hook, None
        if hook is not None:
            await hook(self.inner, ref)
        return await self.inner.store_flags(ref, uids, op, flags, unchangedsince)


def _flags(response: FetchResponse) -> set[str]:
    found: set[str] = set()
    for name, value in response.items:
        if name == "FLAGS" and isinstance(value, PList):
            found.update(v.value for v in value.items if isinstance(v, Atom))
    return found


def _run(tmp_path: Path, store: c.Store) -> list[object]:
    mail: MailService = make_mail(tmp_path / "mail")
    result_of(mail.deliver("alice", "INBOX", [AppendItem(message(1)), AppendItem(message(2))]))
    backend = StoreInterleaving(mail.backend)
    mail.backend = backend
    ctx, recorder, _ = make_context(make_users(tmp_path, alice="pw"), mail=mail)
    ctx.session.log_in("alice")
    dispatcher = Dispatcher(default_registry(), 5)
    result_of(dispatcher.dispatch(c.Select("s", "INBOX"), ctx))
    view = ctx.session.selected
    assert isinstance(view, SelectedView) and not view.watch.rang

    async def other_session(inner: MailBackend, ref: MailboxRef) -> None:
        await inner.store_flags(ref, [1], FlagOp.ADD, ["\\Flagged"])

    backend.hook = other_session
    recorder.sent.clear()
    outcome = result_of(dispatcher.dispatch(store, ctx))
    assert outcome is not None and isinstance(outcome.reply, Tagged)
    assert outcome.reply.status is Status.OK
    sent: list[object] = list(recorder.sent)
    result_of(mail.close())
    return sent


def test_silent_store_does_not_hide_a_change_committed_just_before(tmp_path: Path) -> None:
    """The client knew message 1 with no flags and stored +\\Seen .SILENT;
    the store holds \\Seen \\Flagged, so it must get a FETCH naming
    \\Flagged (RFC 3501 §7.4.2), before this or a later command's reply.
    Before the fix nothing was sent, ever."""
    store = c.Store("t", False, SequenceSet.single(1), c.StoreMode.ADD, True, ("\\Seen",))
    sent = _run(tmp_path, store)
    fetches = [r for r in sent if isinstance(r, FetchResponse) and r.seq == 1]
    assert fetches and {"\\Seen", "\\Flagged"} <= _flags(fetches[-1])


def test_plain_store_shows_the_merged_state_once(tmp_path: Path) -> None:
    """Without .SILENT the STORE's own FETCH shows both changes; no second
    FETCH of the same state follows."""
    store = c.Store("t", False, SequenceSet.single(1), c.StoreMode.ADD, False, ("\\Seen",))
    sent = _run(tmp_path, store)
    fetches = [r for r in sent if isinstance(r, FetchResponse) and r.seq == 1]
    assert len(fetches) == 1 and {"\\Seen", "\\Flagged"} <= _flags(fetches[0])

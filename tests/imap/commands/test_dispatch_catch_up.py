"""The dispatcher catches the selected view up only when its doorbell rang,
then drains (RFC 3501 §7, §7.4.1); handlers reach the mail core through
``ctx.mail``. Built with ``tests.support.context`` (no sockets)."""

from __future__ import annotations

from pathlib import Path

from imapd.imap.commands.dispatch import Dispatcher
from imapd.imap.commands.registry import default_registry
from imapd.imap.session.state import State
from imapd.imap.session.view import SelectedView
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Exists, Recent
from imapd.mail.records import AppendItem
from tests.imap.commands.harness import message
from tests.support.context import make_context, make_mail, make_users, result_of


def test_catch_up_happens_only_after_a_ring(tmp_path: Path) -> None:
    mail = make_mail(tmp_path / "mail")
    ctx, recorder, _ = make_context(make_users(tmp_path, alice="pw"), mail=mail)
    ctx.session.log_in("alice")
    dispatcher = Dispatcher(default_registry(), 5)
    result_of(dispatcher.dispatch(c.Select("s", "INBOX"), ctx))
    view = ctx.session.selected
    assert isinstance(view, SelectedView) and ctx.session.state is State.SELECTED
    calls: list[int] = []
    original = view.catch_up

    async def counting() -> None:
        calls.append(1)
        await original()

    view.catch_up = counting  # type: ignore[method-assign]
    recorder.sent.clear()
    result_of(dispatcher.dispatch(c.Noop("n1"), ctx))
    assert calls == [] and recorder.sent == []  # nothing rang: nothing read
    result_of(mail.deliver("alice", "INBOX", [AppendItem(message(1))]))
    assert view.watch.rang and recorder.sent == []  # the ring wrote nothing
    result_of(dispatcher.dispatch(c.Noop("n2"), ctx))
    assert calls == [1] and not view.watch.rang
    assert recorder.sent == [Exists(1), Recent(1)]
    result_of(mail.close())

"""The dispatcher, with command dataclasses built directly (no parser)."""

from __future__ import annotations

import pytest
from twisted.logger import capturedLogs

from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    ANY_STATE, AUTHENTICATED, CommandContext, CommandSpec, Completion, ConnectionClosed,
)
from imapd.imap.commands.dispatch import Dispatcher, Outcome
from imapd.imap.commands.registry import ALL_SPECS, Registry
from imapd.core.errors import ImapError
from imapd.core.model import Secret, SequenceSet
from imapd.imap.session.state import State
from imapd.accounts.users import UserDatabase
from imapd.imap.wire import commands as c
from imapd.imap.wire import responses as r
from imapd.imap.wire.values import Atom
from tests.support.context import FakeView, make_context, result_of

calls: list[str] = []


async def ok_handler(cmd: c.Noop, ctx: CommandContext) -> Completion:
    calls.append(cmd.tag)
    ctx.send(r.Untagged(r.Status.OK, "side note"))
    return Completion("done", r.ResponseCode("X-CODE"))


async def no_handler(cmd: c.Check, ctx: CommandContext) -> Completion:
    raise ImapError.no("Mailbox gone", "NONEXISTENT")


async def bad_handler(cmd: c.Expunge, ctx: CommandContext) -> Completion:
    raise ImapError.bad("Nope", "BADCHARSET", "UTF-8", 7)


async def buggy_handler(cmd: c.Close, ctx: CommandContext) -> Completion:
    raise ZeroDivisionError("password=hunter2 must not matter")


async def closed_handler(cmd: c.Capability, ctx: CommandContext) -> Completion:
    raise ConnectionClosed()


async def fetch_handler(cmd: c.Fetch, ctx: CommandContext) -> Completion:
    return Completion("FETCH completed")


REGISTRY = Registry([
    CommandSpec(c.Noop, ok_handler, ANY_STATE),
    CommandSpec(c.Check, no_handler, ANY_STATE),
    CommandSpec(c.Expunge, bad_handler, ANY_STATE),
    CommandSpec(c.Close, buggy_handler, ANY_STATE),
    CommandSpec(c.Capability, closed_handler, ANY_STATE),
    CommandSpec(c.Fetch, fetch_handler, AUTHENTICATED, may_send_expunge=False),
])


def dispatch(users: UserDatabase, command: object, state: State = State.NOT_AUTHENTICATED,
             max_bad: int = 20) -> tuple[Outcome | None, list[r.Response], CommandContext]:
    ctx, rec, _ = make_context(users)
    ctx.session.state = state
    outcome = result_of(Dispatcher(REGISTRY, max_bad).dispatch(command, ctx))  # type: ignore[arg-type]
    return outcome, rec.sent, ctx


def test_ok_reply_carries_code_and_untagged_sent_during_handler(users: UserDatabase) -> None:
    calls.clear()
    outcome, sent, _ = dispatch(users, c.Noop("a1"))
    assert outcome == Outcome(r.Tagged("a1", r.Status.OK, "done", r.ResponseCode("X-CODE")))
    assert sent == [r.Untagged(r.Status.OK, "side note")]
    assert calls == ["a1"]


def test_imap_errors_become_no_and_bad_with_codes(users: UserDatabase) -> None:
    outcome, _, _ = dispatch(users, c.Check("a2"))
    assert outcome is not None
    assert outcome.reply == r.Tagged("a2", r.Status.NO, "Mailbox gone", r.ResponseCode("NONEXISTENT"))
    outcome, _, _ = dispatch(users, c.Expunge("a3"))
    assert outcome is not None
    assert outcome.reply == r.Tagged(
        "a3", r.Status.BAD, "Nope", r.ResponseCode("BADCHARSET", (Atom("UTF-8"), 7)))


def test_unexpected_exception_is_serverbug_and_logged_without_arguments(users: UserDatabase) -> None:
    with capturedLogs() as events:
        outcome, _, ctx = dispatch(users, c.Close("a4"))
    assert outcome is not None
    assert outcome.reply == r.Tagged(
        "a4", r.Status.NO, catalogue.NO_SERVERBUG, r.ResponseCode(catalogue.CODE_SERVERBUG))
    assert len(events) == 1
    assert events[0]["command"] == "CLOSE" and events[0]["tag"] == "a4"
    assert events[0]["session_id"] == ctx.session.session_id
    assert "log_failure" in events[0]


def test_wrong_state_is_bad_and_handler_not_run(users: UserDatabase) -> None:
    cmd = c.Fetch("a5", False, SequenceSet.single(1), ())
    outcome, sent, _ = dispatch(users, cmd, State.NOT_AUTHENTICATED)
    assert outcome is not None
    assert outcome.reply == r.Tagged("a5", r.Status.BAD, catalogue.BAD_WRONG_STATE)
    assert sent == []


def test_unregistered_command_and_syntax_errors_are_bad(users: UserDatabase) -> None:
    outcome, _, _ = dispatch(users, c.Select("a6", "INBOX"))
    assert outcome is not None
    assert outcome.reply == r.Tagged("a6", r.Status.BAD, catalogue.BAD_UNKNOWN_COMMAND)
    outcome, _, _ = dispatch(users, c.CommandSyntaxError("a7", "Missing argument"))
    assert outcome is not None
    assert outcome.reply == r.Tagged("a7", r.Status.BAD, "Missing argument")
    outcome, _, _ = dispatch(users, c.CommandSyntaxError(None, "No tag"))
    assert outcome is not None
    assert outcome.reply == r.Untagged(r.Status.BAD, "No tag")


def test_connection_closed_under_handler_gives_no_reply(users: UserDatabase) -> None:
    outcome, _, _ = dispatch(users, c.Capability("a8"))
    assert outcome is None


def test_drain_before_reply_holds_expunge_for_fetch(users: UserDatabase) -> None:
    ctx, rec, _ = make_context(users)
    view = FakeView([r.Exists(5), r.Expunge(2)])
    ctx.session.state, ctx.session.selected = State.SELECTED, view
    dispatcher = Dispatcher(REGISTRY, 20)
    fetch = c.Fetch("f1", False, SequenceSet.single(1), ())
    result_of(dispatcher.dispatch(fetch, ctx))
    assert view.drains == [False]
    assert rec.sent == [r.Exists(5)]
    outcome = result_of(dispatcher.dispatch(c.Noop("n1"), ctx))
    assert view.drains == [False, True]
    assert rec.sent[1:] == [r.Untagged(r.Status.OK, "side note"), r.Expunge(2)]
    assert outcome is not None and outcome.reply.status is r.Status.OK
    # A failing command still drains (updates precede any tagged reply).
    result_of(dispatcher.dispatch(c.Check("k1"), ctx))
    assert view.drains == [False, True, True]


def test_bad_budget_counts_consecutive_bad_replies(users: UserDatabase) -> None:
    ctx, _, _ = make_context(users)
    dispatcher = Dispatcher(REGISTRY, 3)
    bad = c.CommandSyntaxError("x", "bad")
    flags = []
    for cmd in [bad, bad, c.Noop("ok"), bad, bad, bad]:
        outcome = result_of(dispatcher.dispatch(cmd, ctx))  # type: ignore[arg-type]
        assert outcome is not None
        flags.append(outcome.budget_exhausted)
    assert flags == [False, False, False, False, False, True]


def test_registry_refuses_duplicates_and_default_table_is_consistent() -> None:
    with pytest.raises(ValueError):
        Registry([CommandSpec(c.Noop, ok_handler, ANY_STATE)] * 2)
    registry = Registry(ALL_SPECS)
    assert {c.Capability, c.Noop, c.Logout, c.Login, c.Authenticate} <= registry.command_types()
    login = registry.lookup(c.Login)
    assert login is not None and login.states == frozenset({State.NOT_AUTHENTICATED})
    assert registry.lookup(c.Logout) is not None
    assert all(State.LOGOUT not in spec.states for spec in ALL_SPECS)


def test_secret_never_shows_in_command_repr() -> None:
    assert "hunter2" not in repr(c.Login("t", "alice", Secret(b"hunter2")))

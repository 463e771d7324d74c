"""Run one parsed command: state gate, handler, error mapping, drain.

The data path (see docs/architecture.md): the server parses a frame into a
``Command`` (or ``CommandSyntaxError``) and awaits ``Dispatcher.dispatch``;
it writes the returned tagged reply. Untagged responses went out during the
handler through ``ctx.send``, and pending mailbox updates are drained just
before the reply (RFC 3501 §7: untagged data precedes the tagged result;
§7.4.1: no EXPUNGE during FETCH/STORE/SEARCH). Changes reach the view only
here and in IDLE: when the selected mailbox's doorbell rang
(``MailboxWatch.rang``) the dispatcher awaits ``view.catch_up()`` first, so
the drain reports everything committed before the command ended, this
session's own changes included (the view drops what the client already saw).

Error mapping: ``ImapError`` -> ``NO``/``BAD [code] text``; a mail error
(``imapd.mail.errors``) -> the row of ``imapd.imap.commands.errors``; any other
exception -> ``NO [SERVERBUG]`` and a log line; the connection goes on. Only
the command's name and tag are logged, never its arguments (credentials).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from twisted.logger import Logger

from imapd.imap.commands import catalogue, searchcontext
from imapd.imap.commands.announce import announcement
from imapd.imap.commands.context import (
    SELECTED, AnySpec, CommandContext, Completion, ConnectionClosed,
)
from imapd.imap.commands.errors import imap_error
from imapd.imap.commands.registry import Registry
from imapd.core import telemetry
from imapd.core.errors import ErrorKind, ImapError
from imapd.imap.session.state import Session
from imapd.imap.session.view import SelectedView
from imapd.mail.errors import MailError
from imapd.imap.wire.commands import Command, CommandSyntaxError
from imapd.imap.wire.responses import ResponseCode, Status, Tagged, Untagged
from imapd.imap.wire.values import Atom, Value

log = Logger(namespace="imapd.dispatch")

# Pending updates sent between two yield points (``ctx.pace``).
PACE_EVERY = 64
# Command names that are not their class's name upper-cased.
_NAMES = {"UIDEXPUNGE": "UID EXPUNGE"}


def command_name(parsed: Command | CommandSyntaxError) -> str:
    """The command's name for telemetry (``UID FETCH``, ``LOGIN``):
    never an argument. A line that did not parse is ``INVALID``."""
    if isinstance(parsed, CommandSyntaxError):
        return "INVALID"
    name = type(parsed).__name__.upper()
    name = _NAMES.get(name, name)
    return f"UID {name}" if getattr(parsed, "uid", False) else name


@dataclass(frozen=True, slots=True)
class Outcome:
    """The reply to write, and whether the bad-command budget is now spent
    (the server then sends ``* BYE`` and closes)."""

    reply: Tagged | Untagged
    budget_exhausted: bool = False


def error_code(error: ImapError) -> ResponseCode | None:
    if error.code is None:
        return None
    args: tuple[Value, ...] = tuple(
        a if isinstance(a, int) else Atom(str(a)) for a in error.code_args
    )
    return ResponseCode(error.code, args)


def _failed(tag: str, error: ImapError) -> Tagged:
    status = Status.BAD if error.kind is ErrorKind.BAD else Status.NO
    return Tagged(tag, status, error.text, error_code(error))


async def catch_up(ctx: CommandContext) -> None:
    """Bring the selected view up to date if its doorbell rang (the view
    queues the changes; nothing is sent here).

    Not after a SELECT/EXAMINE with QRESYNC (``SelectedView.resynced``):
    its FETCH responses are the resynchronisation's, limited to the UIDs
    the client knows and to the state its HIGHESTMODSEQ names (RFC 7162
    §3.2.5.2). A change committed after that state (with a store read on
    other threads its doorbell can ring right then) would add FETCHes the
    client cannot tell from them, for messages it may not know yet; it
    stays rung and is told at the next command."""
    view = ctx.session.selected
    if not isinstance(view, SelectedView):
        return
    if view.resynced:
        view.resynced = False
        return
    if view.watch.rang:
        await view.catch_up()


class Dispatcher:
    """Dispatches commands through one ``Registry``."""

    def __init__(self, registry: Registry, max_bad_commands: int) -> None:
        self.registry = registry
        self.max_bad_commands = max_bad_commands

    def count_reply(self, session: Session, status: Status) -> bool:
        """Track consecutive BAD replies; True when the budget is spent.

        Consecutive, not total: a long-lived client that now and then sends
        an extension we lack must not be cut off after a day."""
        if status is Status.BAD:
            session.bad_commands += 1
        else:
            session.bad_commands = 0
        return session.bad_commands >= self.max_bad_commands

    def _outcome(self, session: Session, reply: Tagged | Untagged) -> Outcome:
        return Outcome(reply, self.count_reply(session, reply.status))

    async def dispatch(
        self, parsed: Command | CommandSyntaxError, ctx: CommandContext
    ) -> Outcome | None:
        """Run ``parsed``; None when the connection closed under the handler.
        Its verdict (OK/NO/BAD, RFC 3501 §7.1) and how long it took go to
        the installed telemetry."""
        started = time.monotonic()
        outcome = await self._dispatch(parsed, ctx)
        if outcome is not None:
            telemetry.sink().command_finished(
                "imap", command_name(parsed), outcome.reply.status.value,
                time.monotonic() - started)
        return outcome

    async def _dispatch(
        self, parsed: Command | CommandSyntaxError, ctx: CommandContext
    ) -> Outcome | None:
        session = ctx.session
        if isinstance(parsed, CommandSyntaxError):
            if parsed.invalid_name and parsed.tag is not None:
                reply = Tagged(parsed.tag, Status.NO, parsed.reason, ResponseCode("CANNOT"))
                return self._outcome(session, reply)
            if parsed.tag is None:
                return self._outcome(session, Untagged(Status.BAD, parsed.reason))
            return self._outcome(session, Tagged(parsed.tag, Status.BAD, parsed.reason))
        spec = self.registry.lookup(type(parsed))
        if spec is None:
            reply = Tagged(parsed.tag, Status.BAD, catalogue.BAD_UNKNOWN_COMMAND)
            return self._outcome(session, reply)
        if session.state not in spec.states:
            reply = Tagged(parsed.tag, Status.BAD, catalogue.BAD_WRONG_STATE)
            return self._outcome(session, reply)
        refused = await self._refresh_stale_view(spec, parsed, ctx)
        if refused is not None:
            return self._outcome(session, refused)
        try:
            result = await self._run(spec, parsed, ctx)
        except ConnectionClosed:
            return None
        await self._catch_up_after(ctx)
        try:
            await self._drain(spec, ctx)
        except ConnectionClosed:
            return None
        return self._outcome(session, result)

    @staticmethod
    async def _catch_up_after(ctx: CommandContext) -> None:
        """The catch-up after a command. If the store cannot be read (down,
        restarting, a lock held too long) the command's answer stands and
        the view is marked stale: one log line, not a traceback per session."""
        view = ctx.session.selected
        try:
            await catch_up(ctx)
        except MailError as error:
            if isinstance(view, SelectedView):
                view.stale = True
            log.warn("session {id}: catch-up postponed: {error}",
                     id=ctx.session.session_id, error=error)

    async def _refresh_stale_view(
        self, spec: AnySpec, cmd: Command, ctx: CommandContext
    ) -> Tagged | None:
        """Before a message command (one only valid in the selected state) on
        a stale view: catch up and tell the changes first (EXISTS for the
        client's own APPEND among them), so that UIDs the client holds from
        APPENDUID/COPYUID resolve (RFC 4315 §3); a UID STORE must not answer
        OK for a message the view has not taken in. If the store still cannot
        be read, the command fails NO [UNAVAILABLE] instead of running on an
        old picture of the mailbox."""
        view = ctx.session.selected
        if not isinstance(view, SelectedView) or not view.stale or spec.states != SELECTED:
            return None
        try:
            if view.watch.rang:
                await view.catch_up()
            await self._drain(spec, ctx)
        except MailError as error:
            return _failed(cmd.tag, imap_error(error))
        view.stale = False
        return None

    async def _run(self, spec: AnySpec, cmd: Command, ctx: CommandContext) -> Tagged:
        try:
            completion: Completion = await spec.handler(cmd, ctx)
        except ImapError as error:
            return _failed(cmd.tag, error)
        except MailError as error:
            return _failed(cmd.tag, imap_error(error))
        except ConnectionClosed:
            raise
        except Exception:
            log.failure(
                "{command} (tag {tag}) raised in session {session_id}",
                command=type(cmd).__name__.upper(),
                tag=cmd.tag,
                session_id=ctx.session.session_id,
            )
            return Tagged(
                cmd.tag, Status.NO, catalogue.NO_SERVERBUG,
                ResponseCode(catalogue.CODE_SERVERBUG),
            )
        return Tagged(cmd.tag, Status.OK, completion.text, completion.code)

    @staticmethod
    async def _drain(spec: AnySpec, ctx: CommandContext) -> None:
        """Send the selected view's pending updates before the tagged reply
        (with a FLAGS announcement first when the list grew, RFC 3501
        §7.2.6; as ``imapd.imap.commands.announce.send_updates``), pacing
        between them: another session's ``STORE 1:*`` on a big mailbox is
        one FETCH response per message here (issue 13)."""
        view = ctx.session.selected
        if view is None:
            return
        if not isinstance(view, SelectedView):
            responses = view.drain(allow_expunge=spec.may_send_expunge)
        else:  # with the live searches' updates around (RFC 5267 §4.3)
            responses = await searchcontext.before_drain(ctx, view, spec.may_send_expunge)
            responses += view.drain(allow_expunge=spec.may_send_expunge)
            responses += await searchcontext.after_drain(ctx, view)
        if isinstance(view, SelectedView) and view.flag_list.take_noted():
            for response in announcement(view):
                ctx.sender(response)
        for index, response in enumerate(responses, start=1):
            ctx.send(response)
            if index % PACE_EVERY == 0:
                await ctx.pace()

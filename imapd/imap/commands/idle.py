"""IDLE (RFC 2177): push mailbox changes to the client as they happen.

How a change reaches an idling client, and why it is cheap:

* Every commit to the mailbox, in this process or another one, rings the
  doorbell of each ``MailboxWatch`` on it (``imapd.mail.backend.ChangeFeed``).
  The ring only calls the view's ``on_change``: it runs inside whoever
  committed (another session's command, the backend's feed) and must
  never write to this client.
* While IDLE runs, ``on_change`` starts this session's own push (through
  ``ctx.spawn``): catch up (``SelectedView.catch_up``, one
  ``changes_since``) and drain to the client (untagged EXPUNGE / FETCH /
  EXISTS / RECENT; EXPUNGE is allowed during IDLE, RFC 2177 §3). At most
  one push runs at a time; rings during it make it go round again. Outside
  IDLE nothing is pushed: changes wait for the next command's catch-up and
  drain, as RFC 3501 §5.2 requires.
* An idling connection therefore costs one waiting Deferred and one
  callback: no timer and no polling of its own. Its inactivity timer is the
  connection's usual one (see ``handle_idle``).

``DONE`` is read with ``ctx.read_continuation``: the protocol hands the next
line to this handler instead of parsing it as a command, and anything the
client pipelined after ``DONE`` stays queued and runs after the tagged OK.
A push still running at ``DONE`` is waited for, so nothing of it is written
after the tagged OK.
"""

from __future__ import annotations

from twisted.logger import Logger

from imapd.imap.commands import catalogue
from imapd.imap.commands import searchcontext
from typing import Awaitable

from imapd.imap.commands.context import (
    AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.core import telemetry
from imapd.core.errors import ImapError
from imapd.imap.session.view import SelectedView
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Continuation

log = Logger(namespace="imapd.idle")

DONE = b"DONE"


class _Pusher:
    """This session's pushes while it idles (see the module docstring)."""

    def __init__(self, ctx: CommandContext, view: SelectedView) -> None:
        self.ctx = ctx
        self.view = view
        self.stopped = False
        self.busy = False
        self.running: Awaitable[None] | None = None

    def ring(self) -> None:
        """The view's ``on_change``: schedule a push, write nothing. The
        push starts next turn: the ring came from inside someone else's
        commit, which must finish before this session reads or writes (and
        one commit rings every idler: they share the next turn's timer)."""
        if self.busy or self.stopped or self.ctx.spawn is None:
            return
        self.busy = True
        self.running = None
        self.ctx.runtime.call_soon(self._start)

    def _start(self) -> None:
        spawn = self.ctx.spawn
        if self.stopped or spawn is None:
            self.busy = False
            return
        self.running = spawn(self._push())

    async def _push(self) -> None:
        try:
            while self.view.watch.rang and not self.stopped:
                await self.view.catch_up()
                if not self.stopped:  # else the dispatcher drains after DONE
                    await searchcontext.send_updates(self.ctx, self.view)
        except Exception:
            # Never let a failed push end the session; the dispatcher
            # catches up again after DONE.
            log.failure("session {id}: pushing IDLE updates failed",
                        id=self.ctx.session.session_id)
        finally:
            self.busy = False

    async def stop(self) -> None:
        """No more pushes; wait for one still running."""
        self.stopped = True
        self.view.on_change = None
        if self.busy and self.running is not None:
            await self.running


async def handle_idle(cmd: c.Idle, ctx: CommandContext) -> Completion:
    """RFC 2177 §3.

    Pending updates go out first, then ``+ idling`` (as in the RFC's
    example, where ``* 2 EXPUNGE`` precedes ``+ idling``). Until the client
    sends ``DONE`` (case-insensitive, RFC 2177 §4), every change to the
    selected mailbox is pushed as it arrives. In the authenticated state
    there is no mailbox: IDLE just waits for ``DONE``.

    Anything but ``DONE`` ends IDLE with ``BAD``: the grammar is
    ``"IDLE" CRLF "DONE"`` and a client must not send commands while idling
    (RFC 2177 §3), so the line is a syntax error of this command and is not
    run as a command (it could not be told apart from one).

    Autologout (RFC 2177 §3: a server MAY treat an idling client as
    inactive): the IDLE line restarted the connection's inactivity timer
    (``Limits.auth_timeout``, at least 30 minutes, RFC 3501 §5.4); pushes do
    not restart it, input does. A client re-issuing IDLE every 29 minutes,
    as RFC 2177 advises, is never logged out; one silent past the timeout
    gets ``* BYE`` like any inactive session.
    """
    view = ctx.session.selected
    pusher = None
    if isinstance(view, SelectedView):
        if view.watch.rang:
            await view.catch_up()
        await searchcontext.send_updates(ctx, view)
        pusher = _Pusher(ctx, view)
    answer = ctx.read_continuation(Continuation(catalogue.CONTINUE_IDLE))
    if pusher is not None:
        pusher.view.on_change = pusher.ring
        if pusher.view.watch.rang:  # rang while the prompt was written
            pusher.ring()
    idling = telemetry.sink()  # the same sink hears both: +1 and -1 balance
    idling.idle_changed(+1)
    try:
        line = await answer
    finally:
        idling.idle_changed(-1)
        if pusher is not None:
            await pusher.stop()
    if line.upper() != DONE:
        raise ImapError.bad(catalogue.BAD_IDLE_EXPECTED_DONE)
    return Completion(catalogue.OK_IDLE)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Idle, handle_idle, AUTHENTICATED),
)

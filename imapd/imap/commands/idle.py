"""IDLE (RFC 2177): push mailbox changes to the client as they happen.

How a change reaches an idling client, and why it is cheap:

* The store delivers every committed change to each ``Selection`` of the
  mailbox: at once for changes made in this process, and on the server's
  one per-process ``poll_changes`` timer for changes other processes made
  on the same data directory (``imapd.mail.interface``). The view
  queues them and calls ``view.on_change``.
* While IDLE runs, ``on_change`` drains the view straight to the client
  (untagged EXPUNGE / FETCH / EXISTS / RECENT; EXPUNGE is allowed during
  IDLE, RFC 2177 §3). Outside IDLE it is unset and changes wait for the
  next command's drain, as RFC 3501 §5.2 requires.
* An idling connection therefore costs one waiting Deferred and one
  callback: no timer and no polling of its own. Its inactivity timer is the
  connection's usual one (see ``handle_idle``).

``DONE`` is read with ``ctx.read_continuation``: the protocol hands the next
line to this handler instead of parsing it as a command, and anything the
client pipelined after ``DONE`` stays queued and runs after the tagged OK.
"""

from __future__ import annotations

from twisted.logger import Logger

from imapd.imap.commands import catalogue
from imapd.imap.commands.announce import send_updates
from imapd.imap.commands.context import (
    AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.core.errors import ImapError
from imapd.imap.session.state import SelectedViewLike
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Continuation

log = Logger(namespace="imapd.idle")

DONE = b"DONE"


def _push_updates(view: SelectedViewLike, ctx: CommandContext) -> None:
    """Send the view's pending updates now (the view's ``on_change``)."""
    try:
        send_updates(ctx, allow_expunge=True)
    except Exception:
        # Called from the store's delivery loop of another session's
        # change: never let one idler's failure reach that session.
        log.failure("session {id}: pushing IDLE updates failed", id=ctx.session.session_id)


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
    if view is not None:
        _push_updates(view, ctx)
    answer = ctx.read_continuation(Continuation(catalogue.CONTINUE_IDLE))
    if view is not None:
        view.on_change = lambda: _push_updates(view, ctx)
    try:
        line = await answer
    finally:
        if view is not None:
            view.on_change = None
    if line.upper() != DONE:
        raise ImapError.bad(catalogue.BAD_IDLE_EXPECTED_DONE)
    return Completion(catalogue.OK_IDLE)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Idle, handle_idle, AUTHENTICATED),
)

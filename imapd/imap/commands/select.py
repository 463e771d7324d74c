"""SELECT, EXAMINE (RFC 3501 §6.3.1, §6.3.2) and the selected-state
commands CHECK, CLOSE, EXPUNGE (§6.4.1–§6.4.3).

Also the small accessors other handler families use to reach the mail
core and the selected mailbox: ``mail_of``, ``user_of``, ``selected_view``.

Untagged updates caused by a command (the EXPUNGEs of EXPUNGE, the EXISTS
of an APPEND into the selected mailbox, other sessions' changes) are not
sent here: the dispatcher catches the session's ``SelectedView`` up and
drains it just before the tagged reply (RFC 3501 §7).
"""

from __future__ import annotations

from imapd.imap.commands import catalogue, condstore
from imapd.imap.commands.announce import flags_responses
from imapd.imap.commands.context import (
    AUTHENTICATED, SELECTED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.core.errors import ImapError
from imapd.mail.errors import NoSuchMailbox
from imapd.mail.service import MailService
from imapd.imap.session.state import State
from imapd.imap.session.view import SelectedView
from imapd.imap.wire import commands as c
from imapd.imap.wire.commands import QResync
from imapd.imap.wire.responses import Exists, Recent, Response, ResponseCode, Status, Untagged
from imapd.imap.wire.values import PList


# --- accessors shared by handler families -------------------------------------

def mail_of(ctx: CommandContext) -> MailService:
    """The mail core; NO [UNAVAILABLE] when the server runs without one."""
    mail = ctx.mail
    if mail is None:
        raise ImapError.no(catalogue.NO_STORE_UNAVAILABLE, catalogue.CODE_UNAVAILABLE)
    return mail


def user_of(ctx: CommandContext) -> str:
    """The authenticated user (the registry only runs these handlers in the
    authenticated or selected state, where it is always set)."""
    user = ctx.session.user
    if user is None:
        raise ImapError.bad(catalogue.BAD_WRONG_STATE)
    return user


def selected_view(ctx: CommandContext) -> SelectedView:
    """The session's selected mailbox view (selected state only)."""
    view = ctx.session.selected
    if not isinstance(view, SelectedView):
        raise ImapError.bad(catalogue.BAD_WRONG_STATE)
    return view


# --- SELECT / EXAMINE -----------------------------------------------------------

def selection_responses(view: SelectedView) -> list[Response]:
    """The untagged data SELECT and EXAMINE must send (RFC 3501 §6.3.1):
    FLAGS, EXISTS, RECENT, then OK [UNSEEN] (only when some message is
    unseen), OK [PERMANENTFLAGS] (empty for a read-only mailbox, §6.3.2),
    OK [UIDVALIDITY], OK [UIDNEXT], and OK [HIGHESTMODSEQ] (RFC 7162
    §3.1.2.1: "with every successful SELECT or EXAMINE command").
    FLAGS and PERMANENTFLAGS list the view's ``flag_list`` (the mailbox's
    keywords), which later grows with FLAGS announcements
    (``imapd.imap.commands.announce``)."""
    flags_response, *permanent = flags_responses(view.flag_list.flags, view.readonly)
    responses: list[Response] = [flags_response, Exists(view.exists), Recent(view.recent_count)]
    if view.first_unseen_seq is not None:
        responses.append(_status_ok(
            catalogue.CODE_UNSEEN, view.first_unseen_seq, catalogue.TEXT_UNSEEN))
    if view.readonly:
        responses.append(_status_ok(
            catalogue.CODE_PERMANENTFLAGS, PList(()), catalogue.TEXT_NO_PERMANENTFLAGS))
    else:
        responses.extend(permanent)
    responses.append(_status_ok(
        catalogue.CODE_UIDVALIDITY, view.uidvalidity, catalogue.TEXT_UIDVALIDITY))
    responses.append(_status_ok(
        catalogue.CODE_UIDNEXT, view.watch.uidnext, catalogue.TEXT_UIDNEXT))
    responses.append(condstore.highestmodseq_response(view.told_modseq))
    return responses


def _status_ok(code: str, value: int | PList, text: str) -> Untagged:
    return Untagged(Status.OK, text, ResponseCode(code, (value,)))


async def open_mailbox(
    ctx: CommandContext, name: str, readonly: bool, qresync: QResync | None = None,
) -> SelectedView:
    """Select ``name`` for the session (RFC 3501 §6.3.1, §6.3.2).

    The current selection, if any, is closed first: "If the client
    [selects] while a mailbox is already selected, the currently selected
    mailbox is deselected" and a failed SELECT leaves the session in the
    authenticated state (§6.3.1). EXAMINE opens a read-only selection that
    changes no flags and consumes no \\Recent. Once QRESYNC is enabled,
    closing a selected mailbox this way is marked by ``* OK [CLOSED]``
    (RFC 7162 §3.2.11) so the client knows which mailbox later responses
    are about. With ``qresync`` the resynchronisation (§3.2.5.2) is read
    before the selection responses are sent, as it may move the view to a
    later state (``condstore.resync``), and sent after them.
    """
    mail = mail_of(ctx)
    user = user_of(ctx)
    had_mailbox = ctx.session.selected is not None
    ctx.session.deselect()
    if had_mailbox and condstore.qresync_on(ctx.session):
        ctx.send(Untagged(Status.OK, catalogue.TEXT_CLOSED, ResponseCode(catalogue.CODE_CLOSED)))
    view = await SelectedView.open(mail, user, name, readonly)
    try:
        resynced = [] if qresync is None else await condstore.resync(view, qresync)
    except BaseException:
        view.close()
        raise
    ctx.session.selected = view
    ctx.session.state = State.SELECTED
    condstore.apply_modes(ctx.session)
    for index, response in enumerate(selection_responses(view) + resynced, start=1):
        ctx.send(response)
        if index % 64 == 0:
            await ctx.pace()  # a QRESYNC resync: a FETCH per changed message (issue 13)
    # The resync's FETCHes are the last untagged data of this command: a
    # change that rang meanwhile is told at the next command (dispatch).
    view.resynced = qresync is not None
    return view


async def _open_with_params(ctx: CommandContext, cmd: c.Select | c.Examine, readonly: bool) -> None:
    """SELECT/EXAMINE with RFC 7162 parameters: CONDSTORE (or QRESYNC) makes
    it a CONDSTORE enabling command (§3.1.8; the selection responses already
    carry HIGHESTMODSEQ), QRESYNC adds the resynchronisation (§3.2.5)."""
    condstore.check_select_params(ctx, cmd.qresync)
    await open_mailbox(ctx, cmd.mailbox, readonly, cmd.qresync)
    if cmd.condstore or cmd.qresync is not None:
        ctx.session.enabled.add(condstore.CONDSTORE)
        condstore.apply_modes(ctx.session)


async def handle_select(cmd: c.Select, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.1: tagged ``OK [READ-WRITE]``."""
    await _open_with_params(ctx, cmd, readonly=False)
    return Completion(catalogue.OK_SELECT, ResponseCode(catalogue.CODE_READ_WRITE))


async def handle_examine(cmd: c.Examine, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.2: like SELECT but read-only, tagged ``OK [READ-ONLY]``."""
    await _open_with_params(ctx, cmd, readonly=True)
    return Completion(catalogue.OK_EXAMINE, ResponseCode(catalogue.CODE_READ_ONLY))


# --- selected state ------------------------------------------------------------

async def handle_check(cmd: c.Check, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.4.1: a checkpoint. Every backend operation is already
    committed and synced when it returns, so there is nothing to flush; the
    dispatcher's drain still reports pending updates."""
    selected_view(ctx)
    return Completion(catalogue.OK_CHECK)


async def handle_close(cmd: c.Close, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.4.2: silently expunge ``\\Deleted`` messages (no untagged
    EXPUNGE; nothing is removed when the mailbox is read-only) and return to
    the authenticated state. The view is closed before the dispatcher
    drains, so none of its pending updates are sent either."""
    view = selected_view(ctx)
    try:
        if not view.readonly and not view.deleted:
            await view.watch.expunge()
    except NoSuchMailbox:
        # Deleted under us (not yet caught up): nothing to expunge, and
        # CLOSE still leaves the selected state.
        pass
    finally:
        ctx.session.deselect()
    return Completion(catalogue.OK_CLOSE)


async def handle_expunge(cmd: c.Expunge, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.4.3: remove every ``\\Deleted`` message. The
    expunges ring this session's doorbell like every other's; the view
    catches up with them (before the HIGHESTMODSEQ code, or in the
    dispatcher), and the dispatcher's drain then sends one untagged EXPUNGE per message, each
    numbered as the mailbox is after the ones before it (§7.4.1), or one
    VANISHED once QRESYNC is enabled (RFC 7162 §3.2.10; the tagged OK then
    carries HIGHESTMODSEQ). NO on a read-only (EXAMINEd) mailbox."""
    view = selected_view(ctx)
    if view.readonly:
        raise ImapError.no(catalogue.NO_READ_ONLY, catalogue.CODE_READ_ONLY)
    await view.watch.expunge()
    return Completion(catalogue.OK_EXPUNGE, await condstore.expunge_completion_code(ctx, view))


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Select, handle_select, AUTHENTICATED),
    CommandSpec(c.Examine, handle_examine, AUTHENTICATED),
    CommandSpec(c.Check, handle_check, SELECTED),
    CommandSpec(c.Close, handle_close, SELECTED),
    CommandSpec(c.Expunge, handle_expunge, SELECTED),
)

"""FLAGS announcements and the drain of pending updates (RFC 3501 §7.2.6,
§7.1, §7).

The session's view records the FLAGS list its client was told
(``imapd.imap.session.flaglist.FlagList``). The list grows when a keyword
appears that the client was not told about; the client must then get

    * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $New)
    * OK [PERMANENTFLAGS (\\Answered ... $New \\*)] Flags permitted

before the first FETCH that shows the keyword: the same two responses as
SELECT sends (PERMANENTFLAGS only for a read-write selection: a read-only
one was told ``()`` and that does not change, §6.3.2). Two places make sure
of it, and every untagged response of a session passes one of them:

* ``CommandContext.send`` checks every FETCH response that carries FLAGS
  (handler-made: FETCH, STORE, QRESYNC's SELECT; drain-made: others'
  changes, IDLE pushes) with ``FlagList.admit`` and sends the list first;
* ``send_updates`` (the dispatcher's drain before a tagged reply, and IDLE's
  push) sends the list first when flag changes or new messages delivered
  to the view brought a keyword no FETCH has shown yet (STORE .SILENT sends
  no FETCH, and EXISTS shows no flags, but the client's list must still
  name every keyword of the messages it knows exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.imap.commands import catalogue
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.responses import FlagsResponse, Response, ResponseCode, Status, Untagged
from imapd.imap.wire.values import Atom, PList

if TYPE_CHECKING:
    from imapd.imap.commands.context import CommandContext

# PERMANENTFLAGS' "\*": clients may create new keywords (RFC 3501 §7.1).
NEW_KEYWORDS = "\\*"


def flags_responses(flags: tuple[str, ...], readonly: bool) -> list[Response]:
    """``* FLAGS (...)`` and ``* OK [PERMANENTFLAGS (...)]`` as SELECT sends
    them (RFC 3501 §6.3.1); for a read-only selection only FLAGS."""
    responses: list[Response] = [FlagsResponse(flags)]
    if not readonly:
        permanent = PList(tuple(Atom(flag) for flag in flags + (NEW_KEYWORDS,)))
        code = ResponseCode(catalogue.CODE_PERMANENTFLAGS, (permanent,))
        responses.append(Untagged(Status.OK, catalogue.TEXT_PERMANENTFLAGS, code))
    return responses


def announcement(view: SelectedView) -> list[Response]:
    """The responses that tell the client the view's current FLAGS list."""
    return flags_responses(view.flag_list.flags, view.readonly)


def send_updates(ctx: CommandContext, allow_expunge: bool) -> None:
    """Send the selected view's pending updates (RFC 3501 §7), preceded by
    the FLAGS list when noted flag changes made it grow; FETCH responses
    among them are still checked by ``ctx.send``."""
    view = ctx.session.selected
    if view is None:
        return
    responses = view.drain(allow_expunge=allow_expunge)
    if isinstance(view, SelectedView) and view.flag_list.take_noted():
        for response in announcement(view):
            ctx.sender(response)
    for response in responses:
        ctx.send(response)

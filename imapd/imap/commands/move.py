"""MOVE and UID MOVE (RFC 6851).

The messages of the set go to the end of the target mailbox (with flags and
internal dates, under new UIDs, ``\\Recent`` there) and leave the selected
one, atomically: the backend's ``move`` is one transaction, so no other
session ever sees them in both mailboxes or in neither. The answer, in the
order RFC 6851 §3.3 and §4.3 give:

1. ``* OK [COPYUID uidvalidity source-uids target-uids] Moved UIDs``
   (UIDPLUS; omitted when nothing moved),
2. the expunges, sent by the dispatcher's drain: one ``* n EXPUNGE`` per
   message, or ``* VANISHED uids`` once QRESYNC is enabled (RFC 7162
   §3.2.10); moving into the selected mailbox itself also brings EXISTS
   for the new copies,
3. the tagged OK, with ``[HIGHESTMODSEQ n]`` once CONDSTORE is on.

A target that does not exist is ``NO [TRYCREATE]`` (the mail core raises it,
also for an empty set); an EXAMINEd mailbox is ``NO [READ-ONLY]`` (moving
expunges from the source, §3.3).
"""

from __future__ import annotations

from imapd.imap.commands import catalogue, condstore
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.select import selected_view
from imapd.imap.commands.uidplus import copyuid_code
from imapd.core.errors import ImapError
from imapd.imap.wire.commands import Move
from imapd.imap.wire.responses import Status, Untagged


async def handle_move(cmd: Move, ctx: CommandContext) -> Completion:
    """MOVE / UID MOVE (RFC 6851 §3.1); see the module docstring."""
    view = selected_view(ctx)
    if view.readonly:
        raise ImapError.no(catalogue.NO_READ_ONLY, catalogue.CODE_READ_ONLY)
    uids = [uid for _, uid in view.resolve(cmd.seqset, cmd.uid)]
    result = await view.watch.move(uids, cmd.mailbox)
    code = copyuid_code(result)
    if code is not None:
        ctx.send(Untagged(Status.OK, catalogue.TEXT_MOVED, code))
    done = catalogue.OK_UID_MOVE if cmd.uid else catalogue.OK_MOVE
    return Completion(done, await condstore.expunge_completion_code(ctx, view))


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Move, handle_move, SELECTED),
)

"""UIDPLUS (RFC 4315): UID EXPUNGE, and the COPYUID response code that COPY
and MOVE report.

``UID EXPUNGE uid-set`` (§2.1) removes the ``\\Deleted`` messages among
the given UIDs only, so a client can expunge its own deletions without
removing what another client marked. The expunges reach this session's
view like any other and the dispatcher's drain announces them (EXPUNGE, or
VANISHED under QRESYNC) before the tagged OK, which carries HIGHESTMODSEQ
once CONDSTORE is on (RFC 7162). NO [READ-ONLY] in an EXAMINEd mailbox.

``[COPYUID uidvalidity source-uids target-uids]`` (§3): the two sets list
the UIDs in the same order, so the n-th source UID became the n-th target
UID; each is compressed into ranges (``1:3,7``) without being reordered.
Nothing copied means no code (§3: a server MAY omit it; there is nothing to
report).
"""

from __future__ import annotations

from imapd.imap.commands import catalogue, condstore
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.select import selected_view
from imapd.core.errors import ImapError
from imapd.mail.records import CopyResult
from imapd.imap.session.view import uid_set_text
from imapd.imap.wire.commands import UidExpunge
from imapd.imap.wire.responses import ResponseCode
from imapd.imap.wire.values import Atom


def copyuid_code(result: CopyResult) -> ResponseCode | None:
    """``COPYUID`` for a COPY or MOVE result, or None when nothing moved."""
    if not result.pairs:
        return None
    sources = uid_set_text(source for source, _ in result.pairs)
    targets = uid_set_text(target for _, target in result.pairs)
    return ResponseCode(catalogue.CODE_COPYUID, (result.uidvalidity, Atom(sources), Atom(targets)))


async def handle_uid_expunge(cmd: UidExpunge, ctx: CommandContext) -> Completion:
    """UID EXPUNGE (RFC 4315 §2.1); see the module docstring."""
    view = selected_view(ctx)
    if view.readonly:
        raise ImapError.no(catalogue.NO_READ_ONLY, catalogue.CODE_READ_ONLY)
    uids = [uid for _, uid in view.resolve(cmd.seqset, uid=True)]
    if uids:
        await view.watch.expunge(uids)
    return Completion(catalogue.OK_UID_EXPUNGE, await condstore.expunge_completion_code(ctx, view))


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(UidExpunge, handle_uid_expunge, SELECTED),
)

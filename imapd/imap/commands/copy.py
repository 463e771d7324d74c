"""COPY and UID COPY (RFC 3501 §6.4.7, §6.4.8).

The messages of the set are copied to the end of the target mailbox, with
their flags and internal dates, under new UIDs, and are ``\\Recent`` there.
The backend does it in one transaction: all messages or none. A target that
does not exist is ``NO [TRYCREATE]`` (the mail core raises it, also for an empty
UID set, so the client learns the target is missing either way). The target
may be the selected mailbox itself: the copies then arrive in this session's
view like anyone's new messages and are announced with EXISTS before the
tagged OK (RFC 3501 §7.3.1). COPY only reads the source, so it works in a
read-only (EXAMINEd) mailbox too. The tagged OK carries UIDPLUS's
``[COPYUID uidvalidity source-uids target-uids]`` (RFC 4315 §3) when
something was copied.
"""

from __future__ import annotations

from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.select import selected_view
from imapd.imap.commands.uidplus import copyuid_code
from imapd.imap.wire.commands import Copy


async def handle_copy(cmd: Copy, ctx: CommandContext) -> Completion:
    """COPY / UID COPY (RFC 3501 §6.4.7, §6.4.8); see the module docstring."""
    view = selected_view(ctx)
    pairs = view.resolve(cmd.seqset, cmd.uid)
    result = await view.watch.copy([uid for _, uid in pairs], cmd.mailbox)
    return Completion("UID COPY completed" if cmd.uid else "COPY completed", copyuid_code(result))


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Copy, handle_copy, SELECTED),
)

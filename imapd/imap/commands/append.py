"""APPEND (RFC 3501 §6.3.11) and MULTIAPPEND (RFC 3502).

Every message goes to ``MailService.deliver``: it analyses the message
(FETCH and SEARCH later read the result as the ``meta`` blob; large ones
off the reactor thread) and appends it in one atomic, durable backend call.
The tagged OK is returned only after that call returned, i.e. once the
message is committed and synced to disk. Group commit (one disk sync for
the APPENDs of many sessions) is the backend's business: the SQLite
backend's writer thread batches whatever commits are queued.

UIDPLUS (RFC 4315 §3): the tagged OK carries ``[APPENDUID uidvalidity uid]``,
the target's UIDVALIDITY and the UID the message got.

MULTIAPPEND (RFC 3502): an APPEND with several messages is one ``deliver``
of all of them: all messages or none (RFC 3502 §3: when one message cannot
be appended, none is), under consecutive UIDs, reported as a uid-set
(``[APPENDUID 38505 3955:3957]``).

CATENATE (RFC 4469): a message given as ``CATENATE (...)`` is put together
first (``imapd.imap.commands.catenate``), then delivered like the others.

BINARY (RFC 3516 §4.3): a message sent as ``literal8`` may hold NUL
octets; the parts that do are stored re-encoded as base64 (in a worker
thread), so BODY[] never sends a NUL while BINARY[] gives the client's
octets back.
"""

from __future__ import annotations

from imapd.imap.commands import catalogue
from imapd.imap.commands.catenate import catenated
from imapd.imap.commands.context import (
    AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.imap.commands.select import mail_of, user_of
from imapd.imap.session.view import uid_set_text
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import ResponseCode
from imapd.imap.wire.values import Atom, Value
from imapd.core import telemetry
from imapd.mail.errors import MailError, StorageFull, Unavailable
from imapd.core.spool import MessageData
from imapd.mail.records import AppendItem
from imapd.message.transfer import encode_nul_parts


def _without_nul(message: MessageData) -> MessageData:
    """The message with its NUL-holding parts base64-encoded (RFC 3516 §4.3);
    blocking (reads a spooled message): run in a worker thread."""
    if message.find(b"\x00") < 0:  # a spooled one is searched in its file, not loaded
        return message
    # Holding NUL (so sent as literal8): re-encoded in memory, bounded by APPENDLIMIT.
    converted = encode_nul_parts(bytes(message))
    return message if converted is None else converted


async def _stored_form(ctx: CommandContext, item: AppendItem) -> AppendItem:
    """``item`` as it will be stored: only a message that may hold a NUL
    (spooled ones are checked in the thread) costs a thread hop."""
    if isinstance(item.message, bytes) and b"\x00" not in item.message:
        return item
    message = await ctx.runtime.in_thread(_without_nul, item.message)
    return AppendItem(message, item.flags, item.internal_date)


async def handle_append(cmd: c.Append, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.11. A missing target mailbox is ``NO [TRYCREATE]``;
    ``\\Recent`` or an unknown system flag in the flag list is BAD. When the
    target is the selected mailbox the new message is announced with EXISTS
    (and RECENT) by the dispatcher's drain before this OK ("the normal new
    message actions SHOULD occur"); it is ``\\Recent`` in exactly one
    session (§2.3.2). With several messages (RFC 3502 §3) all are appended
    in one atomic delivery, and APPENDUID names their UIDs as a set."""
    mail = mail_of(ctx)
    user = user_of(ctx)
    if any(m.catenate is not None for m in cmd.messages):
        # RFC 4469 §5: a missing target is TRYCREATE before any URL is read.
        await mail.target_entry(user, cmd.mailbox)
    items = [
        AppendItem(await catenated(ctx, mail, user, m.catenate), m.flags, m.internal_date)
        if m.catenate is not None else AppendItem(m.message, m.flags, m.internal_date)
        for m in cmd.messages
    ]
    items = [await _stored_form(ctx, item) for item in items]
    try:
        result = await mail.deliver(user, cmd.mailbox, items)
    except MailError as error:
        # The store's trouble may pass; anything else (no such mailbox, over
        # quota, a bad message) is the same on a retry.
        temporary = isinstance(error, (Unavailable, StorageFull))
        for _ in items:
            telemetry.sink().delivered("append", "temporary" if temporary else "permanent")
        raise
    for _ in items:
        telemetry.sink().delivered("append", "ok")
    uids: Value = Atom(uid_set_text(result.uids)) if cmd.more else result.uid
    return Completion(
        catalogue.OK_APPEND, ResponseCode(catalogue.CODE_APPENDUID, (result.uidvalidity, uids))
    )


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Append, handle_append, AUTHENTICATED),
)

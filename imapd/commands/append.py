"""APPEND (RFC 3501 §6.3.11).

The message is analysed once here (``imapd.message.analyze``; FETCH and
SEARCH later read the result from the store as the ``meta`` blob) and then
stored with its flags and internal date. The tagged OK is returned only
after the store call returned, i.e. once the message is committed and
synced to disk (the store's durability contract).
"""

from __future__ import annotations

from imapd.commands import catalogue
from imapd.commands.context import AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion
from imapd.commands.select import store_of, user_of
from imapd.message import analyze
from imapd.wire import commands as c

# Messages above this size are analysed in a worker thread so a large
# upload does not stall every other connection; small ones are cheaper
# inline than the thread hand-off.
THREAD_ANALYSIS_THRESHOLD = 256 * 1024


def analysis_blob(message: bytes) -> bytes:
    """The stored form of the message's MIME analysis."""
    return analyze(message).to_bytes()


async def handle_append(cmd: c.Append, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.11. A missing target mailbox is ``NO [TRYCREATE]``;
    ``\\Recent`` or an unknown system flag in the flag list is BAD. When the
    target is the selected mailbox the new message is announced with EXISTS
    (and RECENT) by the dispatcher's drain before this OK ("the normal new
    message actions SHOULD occur"); it is ``\\Recent`` in exactly one
    session (§2.3.2)."""
    store = store_of(ctx)
    user = user_of(ctx)
    if len(cmd.message) > THREAD_ANALYSIS_THRESHOLD:
        meta = await ctx.runtime.in_thread(analysis_blob, cmd.message)
    else:
        meta = analysis_blob(cmd.message)
    await store.append(user, cmd.mailbox, cmd.message, cmd.flags, cmd.internal_date, meta)
    return Completion(catalogue.OK_APPEND)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Append, handle_append, AUTHENTICATED),
)

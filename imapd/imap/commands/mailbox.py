"""Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
LIST, LSUB, STATUS (RFC 3501 §6.3.3–§6.3.10).

The hierarchy rules (names, ``\\Noselect`` placeholders, RENAME of INBOX,
subscriptions) belong to the mail core (``imapd.mail.service.MailService``);
these handlers turn its answers into responses. Every name is resolved
inside the authenticated user's own hierarchy, so no name reaches another
user's mail. Its errors are mail errors that the dispatcher maps with RFC
5530 codes (``imapd.imap.commands.errors``): ``NO [NONEXISTENT]``,
``NO [ALREADYEXISTS]``, ``NO [CANNOT]`` (invalid name, with the reason),
``NO [HASCHILDREN]``.
"""

from __future__ import annotations

from imapd.imap.commands import catalogue, condstore
from imapd.imap.commands.context import AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion
from imapd.imap.commands.mailbox_ext import (
    check_status_items, handle_extended_list, special_use_text, status_values,
)
from imapd.imap.commands.select import mail_of, user_of
from imapd.mail import names
from imapd.mail.records import NOSELECT
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import ListResponse, StatusResponse


async def handle_create(cmd: c.Create, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.3. A trailing delimiter only declares that inferiors
    will follow; missing superiors are created. CREATE of an existing name
    (INBOX included) is ``NO [ALREADYEXISTS]``. ``(USE (\\Sent))`` gives
    the new mailbox special-use attributes (RFC 6154 §3, ``NO [USEATTR]``
    for one we cannot give; nothing is created then)."""
    special_use = special_use_text(cmd.special_use)
    await mail_of(ctx).create_mailbox(user_of(ctx), cmd.mailbox, special_use)
    return Completion(catalogue.OK_CREATE)


async def handle_delete(cmd: c.Delete, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.4. INBOX cannot be deleted; a mailbox with inferiors
    becomes ``\\Noselect``. Sessions that have it selected (this one
    included) see its messages expunged at their next command (RFC 2180 §3)."""
    await mail_of(ctx).delete_mailbox(user_of(ctx), cmd.mailbox)
    return Completion(catalogue.OK_DELETE)


async def handle_rename(cmd: c.Rename, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.5: the whole subtree moves; renaming INBOX moves its
    messages to the new name and leaves INBOX empty."""
    await mail_of(ctx).rename_mailbox(user_of(ctx), cmd.old, cmd.new)
    return Completion(catalogue.OK_RENAME)


async def handle_subscribe(cmd: c.Subscribe, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.6: any valid name may be subscribed."""
    await mail_of(ctx).subscribe(user_of(ctx), cmd.mailbox)
    return Completion(catalogue.OK_SUBSCRIBE)


async def handle_unsubscribe(cmd: c.Unsubscribe, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.7."""
    await mail_of(ctx).unsubscribe(user_of(ctx), cmd.mailbox)
    return Completion(catalogue.OK_UNSUBSCRIBE)


async def handle_list(cmd: c.List, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.8. ``*`` matches any characters, ``%`` any but the
    delimiter; the reference is prefixed to the pattern. An empty pattern
    asks for the hierarchy delimiter and the root of the reference:
    ``* LIST (\\Noselect) "/" ""``. Each name carries ``\\Noselect`` when
    it is a placeholder and ``\\HasChildren``/``\\HasNoChildren`` (RFC 3348),
    and its special-use attributes (RFC 6154 §2). LIST-EXTENDED forms
    (RFC 5258) go to ``mailbox_ext.handle_extended_list``."""
    if cmd.extended:
        return await handle_extended_list(cmd, ctx)
    if cmd.pattern == "":
        ctx.send(ListResponse((NOSELECT,), names.DELIMITER, names.list_root(cmd.reference)))
        return Completion(catalogue.OK_LIST)
    infos = await mail_of(ctx).list_mailboxes(user_of(ctx), cmd.reference, cmd.pattern)
    for info in infos:
        ctx.send(ListResponse(info.list_attributes(), names.DELIMITER, info.name))
    return Completion(catalogue.OK_LIST)


async def handle_lsub(cmd: c.Lsub, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.9: the subscribed names matching the pattern, whether
    or not they exist; with ``%``, an unsubscribed superior of a matching
    subscribed name is listed with ``\\Noselect``."""
    infos = await mail_of(ctx).list_mailboxes(
        user_of(ctx), cmd.reference, cmd.pattern, subscribed_only=True
    )
    for info in infos:
        ctx.send(ListResponse(info.lsub_attributes(), names.DELIMITER, info.name, lsub=True))
    return Completion(catalogue.OK_LSUB)


async def handle_status(cmd: c.Status, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.3.10: one untagged STATUS with the items in the order
    asked. Allowed on the selected mailbox too (the values are the mail core's,
    which may be ahead of what the session has been told). Asking for
    HIGHESTMODSEQ is a CONDSTORE enabling command (RFC 7162 §3.1)."""
    check_status_items(cmd.items)
    if "HIGHESTMODSEQ" in cmd.items:
        condstore.enable_condstore(ctx)
    status = await mail_of(ctx).status(user_of(ctx), cmd.mailbox)
    ctx.send(StatusResponse(cmd.mailbox, status_values(ctx, status, cmd.items)))
    return Completion(catalogue.OK_STATUS)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Create, handle_create, AUTHENTICATED),
    CommandSpec(c.Delete, handle_delete, AUTHENTICATED),
    CommandSpec(c.Rename, handle_rename, AUTHENTICATED),
    CommandSpec(c.Subscribe, handle_subscribe, AUTHENTICATED),
    CommandSpec(c.Unsubscribe, handle_unsubscribe, AUTHENTICATED),
    CommandSpec(c.List, handle_list, AUTHENTICATED),
    CommandSpec(c.Lsub, handle_lsub, AUTHENTICATED),
    CommandSpec(c.Status, handle_status, AUTHENTICATED),
)

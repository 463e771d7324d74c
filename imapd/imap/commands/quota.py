"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA.

Every user has at most one quota root, ``""``: the whole account (every
mailbox of the user shares it, RFC 9208 §3). It exists while the user has
a limit on STORAGE or MESSAGE; a user without limits has no quota root
(GETQUOTAROOT lists none, GETQUOTA "" answers NO). Limits are set by
operators (``imapd user quota``); SETQUOTA needs an administrator, and
this server has no administrator logins, so it is always NO and
``QUOTASET`` is not advertised (§4.1.4).
"""

from __future__ import annotations

from imapd.core.errors import ImapError
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion
from imapd.imap.commands.select import mail_of, user_of
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Generic
from imapd.imap.wire.values import Atom, IString, MailboxName, PList, Value
from imapd.mail.backend import QuotaInfo

ROOT = ""
KIB = 1024


def quota_resources(info: QuotaInfo) -> tuple[Value, ...]:
    """``quota-resource`` triples (RFC 9208 §4.2.2) of the limited
    resources: STORAGE in units of 1024 octets (§5.1; usage rounded up, the
    limit down, so a client never sees room the server would refuse),
    MESSAGE as a count (§5.2)."""
    values: list[Value] = []
    if info.storage_limit is not None:
        values += [Atom("STORAGE"), -(-info.storage_used // KIB), info.storage_limit // KIB]
    if info.messages_limit is not None:
        values += [Atom("MESSAGE"), info.messages_used, info.messages_limit]
    return tuple(values)


def quota_response(info: QuotaInfo) -> Generic:
    """``* QUOTA "" (STORAGE used limit MESSAGE used limit)`` (§4.2.2)."""
    return Generic("QUOTA", (IString(ROOT.encode("ascii")), PList(quota_resources(info))))


async def handle_getquota(cmd: c.GetQuota, ctx: CommandContext) -> Completion:
    """RFC 9208 §4.2: the usage and limits of the named root; NO when it
    does not exist (any name but "", or "" for a user without limits)."""
    info = await mail_of(ctx).quota(user_of(ctx))
    resources = quota_resources(info)
    if cmd.root != ROOT or not resources:
        raise ImapError.no(catalogue.NO_QUOTA_ROOT, catalogue.CODE_NONEXISTENT)
    ctx.send(quota_response(info))
    return Completion(catalogue.OK_GETQUOTA)


async def handle_getquotaroot(cmd: c.GetQuotaRoot, ctx: CommandContext) -> Completion:
    """RFC 9208 §4.3: ``* QUOTAROOT mailbox [""]`` then, for the root, its
    ``* QUOTA``. The mailbox must exist (NO [NONEXISTENT] otherwise)."""
    mail, user = mail_of(ctx), user_of(ctx)
    await mail.status(user, cmd.mailbox)  # NoSuchMailbox -> NO [NONEXISTENT]
    info = await mail.quota(user)
    limited = bool(quota_resources(info))
    roots: tuple[Value, ...] = (IString(ROOT.encode("ascii")),) if limited else ()
    ctx.send(Generic("QUOTAROOT", (MailboxName(cmd.mailbox), *roots)))
    if limited:
        ctx.send(quota_response(info))
    return Completion(catalogue.OK_GETQUOTAROOT)


async def handle_setquota(cmd: c.SetQuota, ctx: CommandContext) -> Completion:
    """RFC 9208 §4.1.4: only an administrator may change limits; there is
    none over IMAP here, so NO [NOPERM] (RFC 5530 §3) and no change."""
    raise ImapError.no(catalogue.NO_SETQUOTA, catalogue.CODE_NOPERM)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.GetQuota, handle_getquota, AUTHENTICATED),
    CommandSpec(c.GetQuotaRoot, handle_getquotaroot, AUTHENTICATED),
    CommandSpec(c.SetQuota, handle_setquota, AUTHENTICATED),
)

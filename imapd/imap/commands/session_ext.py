"""Small session extensions: ENABLE (RFC 5161), NAMESPACE (RFC 2342),
ID (RFC 2971) and UNSELECT (RFC 3691)."""

from __future__ import annotations

from twisted.logger import Logger

from imapd import __version__
from imapd.imap import capabilities
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    ANY_STATE, AUTHENTICATED, SELECTED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.mail import names
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Generic
from imapd.imap.wire.values import Atom, IString, PList, Value

log = Logger(namespace="imapd.imap.session")

SERVER_NAME = "imapd"
# ID data a client sends is logged (for problem reports) only in part: these
# fields, each cut short and made printable (RFC 2971 §7: guard the log).
_LOGGED_ID_FIELDS = ("name", "version", "vendor", "os")
_LOGGED_ID_VALUE_MAX = 64


async def handle_enable(cmd: c.Enable, ctx: CommandContext) -> Completion:
    """RFC 5161 §3.1: enable the named extensions that the server offers
    and that need enabling (``capabilities.ENABLEABLE``); ignore the rest.
    One untagged ENABLED lists what this command newly enabled (§3.2, maybe
    nothing). Registered for the selected state too: clients must not ENABLE
    after SELECT, but servers need not check (§3.1), and a lenient answer
    beats a BAD for a late ENABLE."""
    enabled = capabilities.enable(ctx.session, ctx.features, cmd.capabilities)
    ctx.send(Generic("ENABLED", tuple(Atom(name) for name in enabled)))
    return Completion(catalogue.OK_ENABLE)


def namespace_response() -> Generic:
    """RFC 2342 §5: one personal namespace with an empty prefix and ``/`` as
    the delimiter; no other users' or shared namespaces (NIL NIL)."""
    personal = PList((PList((IString(b""), IString(names.DELIMITER.encode("ascii")))),))
    return Generic("NAMESPACE", (personal, None, None))


async def handle_namespace(cmd: c.Namespace, ctx: CommandContext) -> Completion:
    """RFC 2342 §5: ``* NAMESPACE (("" "/")) NIL NIL``."""
    ctx.send(namespace_response())
    return Completion(catalogue.OK_NAMESPACE)


def id_response(send_version: bool) -> Generic:
    """RFC 2971 §3.2: ``* ID ("name" "imapd")``; the version only when the
    operator allows it (``Config.id_send_version``; §7: implementation
    details make attacks easier)."""
    fields: list[Value] = [IString(b"name"), IString(SERVER_NAME.encode("ascii"))]
    if send_version:
        fields += [IString(b"version"), IString(__version__.encode("ascii"))]
    return Generic("ID", (PList(tuple(fields)),))


def _printable(value: str) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in value[:_LOGGED_ID_VALUE_MAX])
    return text + ("..." if len(value) > _LOGGED_ID_VALUE_MAX else "")


async def handle_id(cmd: c.Id, ctx: CommandContext) -> Completion:
    """RFC 2971 §3.1: valid in any state; the client's data changes nothing
    (§3: no behaviour may depend on it) and is logged only in part."""
    if cmd.params:
        wanted = {
            field.lower(): _printable(value)
            for field, value in cmd.params
            if field.lower() in _LOGGED_ID_FIELDS and value is not None
        }
        if wanted:
            log.debug("session {id} client ID {fields}", id=ctx.session.session_id, fields=wanted)
    ctx.send(id_response(ctx.config.id_send_version))
    return Completion(catalogue.OK_ID)


async def handle_unselect(cmd: c.Unselect, ctx: CommandContext) -> Completion:
    """RFC 3691 §2: like CLOSE but nothing is expunged; back to the
    authenticated state. Pending updates of the closed mailbox are dropped
    with it (the dispatcher drains no view)."""
    ctx.session.deselect()
    return Completion(catalogue.OK_UNSELECT)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Enable, handle_enable, AUTHENTICATED),
    CommandSpec(c.Namespace, handle_namespace, AUTHENTICATED),
    CommandSpec(c.Id, handle_id, ANY_STATE),
    CommandSpec(c.Unselect, handle_unselect, SELECTED),
)

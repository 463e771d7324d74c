"""Commands valid in any state: CAPABILITY, NOOP, LOGOUT (RFC 3501 §6.1)."""

from __future__ import annotations

from imapd.imap import capabilities
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    ANY_STATE, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.imap.session.state import State
from imapd.imap.wire import commands as c
from imapd.imap.wire import responses as r


async def handle_capability(cmd: c.Capability, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.1.1: one untagged CAPABILITY, then OK."""
    ctx.send(r.Capability(capabilities.advertised(ctx.session, ctx.features)))
    return Completion(catalogue.OK_CAPABILITY)


async def handle_noop(cmd: c.Noop, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.1.2: does nothing; pending updates are sent by the
    dispatcher's drain before this OK (that is NOOP's point as a poll)."""
    return Completion(catalogue.OK_NOOP)


async def handle_logout(cmd: c.Logout, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.1.3: untagged BYE, then the tagged OK; the server closes
    the connection after writing the OK because the state is LOGOUT."""
    ctx.send(r.Untagged(r.Status.BYE, catalogue.BYE_LOGOUT))
    ctx.session.deselect()
    ctx.session.state = State.LOGOUT
    return Completion(catalogue.OK_LOGOUT)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Capability, handle_capability, ANY_STATE),
    CommandSpec(c.Noop, handle_noop, ANY_STATE),
    CommandSpec(c.Logout, handle_logout, ANY_STATE),
)

"""STARTTLS (RFC 3501 §6.2.1; RFC 8314 §4.1 for why the server must not
trust anything sent before the handshake completes).

The handler only answers; the connection does the work through
``ctx.connection.start_tls()``: it throws away every command and byte the
client sent after STARTTLS (the command-injection class of bugs,
CVE-2011-0411) and starts TLS right after the tagged OK. The client must
then ask for the capabilities again (RFC 3501 §6.2.1): the OK carries no
CAPABILITY code, because anything sent in clear text before the handshake
could have been altered.
"""

from __future__ import annotations

from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    NOT_AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.core.errors import ImapError
from imapd.imap.wire import commands as c


async def handle_starttls(cmd: c.StartTLS, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.2.1: legal only before authentication; BAD when TLS is
    already on or the server has no certificate."""
    if ctx.session.secure:
        raise ImapError.bad(catalogue.BAD_TLS_ACTIVE)
    if not ctx.features.starttls or ctx.connection is None:
        raise ImapError.bad(catalogue.BAD_TLS_UNAVAILABLE)
    ctx.connection.start_tls()
    return Completion(catalogue.OK_STARTTLS)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.StartTLS, handle_starttls, NOT_AUTHENTICATED),
)

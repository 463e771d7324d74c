"""LOGIN and AUTHENTICATE (RFC 3501 §6.2.2, §6.2.3; SASL PLAIN RFC 4616;
SASL-IR RFC 4959).

Both end in ``authenticate_user``: the password check runs in a thread
(argon2 is slow on purpose), a failure answers ``NO [AUTHENTICATIONFAILED]``
after ``Limits.failed_login_delay`` whether the user exists or not, and a
success moves the session to AUTHENTICATED and answers
``OK [CAPABILITY ...] Logged in``. Credentials are only ever held as
``Secret`` and are never logged.
"""

from __future__ import annotations

import binascii
from typing import Awaitable, Callable

from imapd import capabilities
from imapd.commands import catalogue
from imapd.commands.context import (
    NOT_AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.errors import ImapError
from imapd.model import Secret
from imapd.wire import commands as c
from imapd.wire.responses import Continuation, ResponseCode
from imapd.wire.values import Atom


async def authenticate_user(
    ctx: CommandContext, username: str, password: Secret
) -> Completion:
    """Check the credentials and log the session in, or fail after the
    configured delay with the same answer for every kind of failure."""
    ok = await ctx.runtime.in_thread(ctx.users.verify, username, password)
    if not ok:
        await ctx.runtime.sleep(ctx.config.limits.failed_login_delay)
        raise ImapError.no(
            catalogue.NO_AUTHENTICATION_FAILED, catalogue.CODE_AUTHENTICATIONFAILED
        )
    ctx.session.log_in(username)
    caps = capabilities.advertised(ctx.session, ctx.features)
    code = ResponseCode(catalogue.CODE_CAPABILITY, tuple(Atom(cap) for cap in caps))
    return Completion(catalogue.OK_LOGGED_IN, code)


async def handle_login(cmd: c.Login, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.2.3. (Refusing plaintext LOGIN without TLS is issue 6.)"""
    return await authenticate_user(ctx, cmd.username, cmd.password)


def decode_sasl_base64(data: bytes) -> bytes:
    """Decode one client SASL response (RFC 3501 §6.2.2 base64; RFC 4959
    ``=`` is the empty response). Raise BAD on anything but clean base64."""
    if data == b"=":
        return b""
    if len(data) % 4:  # a2b_base64 tolerates stray padding; RFC 4648 does not
        raise ImapError.bad(catalogue.BAD_INVALID_BASE64)
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ImapError.bad(catalogue.BAD_INVALID_BASE64) from None


def parse_plain_message(message: bytes) -> tuple[str, Secret]:
    """RFC 4616 §2: ``[authzid] NUL authcid NUL passwd``. An authorization
    identity other than the user itself is refused (no proxy logins)."""
    parts = message.split(b"\0")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise ImapError.bad(catalogue.BAD_MALFORMED_PLAIN)
    authzid, authcid, password = parts
    try:
        username = authcid.decode("utf-8")
        requested = authzid.decode("utf-8")
    except UnicodeDecodeError:
        raise ImapError.bad(catalogue.BAD_MALFORMED_PLAIN) from None
    if requested and requested != username:
        raise ImapError.no(
            catalogue.NO_AUTHORIZATION_FAILED, catalogue.CODE_AUTHORIZATIONFAILED
        )
    return username, Secret(password)


async def _plain(cmd: c.Authenticate, ctx: CommandContext) -> Completion:
    """PLAIN takes one client message, either as the SASL-IR initial
    response or after an empty ``+`` challenge."""
    response = cmd.initial_response
    if response is None:
        response = await ctx.read_continuation(Continuation(text="", data=b""))
        if response == b"*":  # RFC 3501 §6.2.2: the client cancels
            raise ImapError.bad(catalogue.BAD_AUTH_CANCELLED)
    username, password = parse_plain_message(decode_sasl_base64(response))
    return await authenticate_user(ctx, username, password)


Mechanism = Callable[[c.Authenticate, CommandContext], Awaitable[Completion]]

# SASL mechanisms by upper-case name; capabilities.check_handlers compares
# this with the advertised AUTH= list at start-up.
MECHANISMS: dict[str, Mechanism] = {"PLAIN": _plain}


async def handle_authenticate(cmd: c.Authenticate, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.2.2: unknown mechanisms get a tagged NO."""
    mechanism = MECHANISMS.get(cmd.mechanism.upper())
    if mechanism is None or cmd.mechanism.upper() not in ctx.features.sasl_mechanisms:
        raise ImapError.no(catalogue.NO_UNSUPPORTED_MECHANISM)
    return await mechanism(cmd, ctx)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Login, handle_login, NOT_AUTHENTICATED),
    CommandSpec(c.Authenticate, handle_authenticate, NOT_AUTHENTICATED),
)

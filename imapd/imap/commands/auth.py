"""LOGIN and AUTHENTICATE (RFC 3501 §6.2.2, §6.2.3; SASL PLAIN RFC 4616;
SASL-IR RFC 4959; SCRAM-SHA-256 RFC 7677 / RFC 5802, and
SCRAM-SHA-256-PLUS on TLS connections, RFC 5802 §6 with RFC 9266
tls-exporter or RFC 5929 tls-server-end-point channel binding).

Every mechanism goes through the same gates, in this order:

1. Plaintext policy (RFC 3501 §6.2.3, RFC 8314): on an unencrypted
   connection from another host, unless ``--allow-plaintext``, every
   LOGIN/AUTHENTICATE gets ``NO [PRIVACYREQUIRED]`` and the capability list
   says LOGINDISABLED without ``AUTH=``.
2. Brute-force penalty (``imapd.accounts.penalty``): a delay that grows with
   recent failures of the client's address or of the user name, applied
   *before* the password is checked.
3. The check itself, in a thread (argon2 is slow on purpose). A failure
   answers ``NO [AUTHENTICATIONFAILED]`` no sooner than
   ``Limits.failed_login_delay`` after the check started, whether the user
   exists or not, so answer and timing are the same for both.
4. The per-user session limit: over it, ``* BYE`` and the connection closes.

Credentials are only ever held as ``Secret`` and are never logged; failed
attempts are logged with the client address only (a mistyped password is
often typed into the name field).
"""

from __future__ import annotations

import base64
import binascii
from typing import Awaitable, Callable, NoReturn

from twisted.logger import Logger

from imapd.imap import capabilities
from imapd.accounts.scram import MECHANISM as SCRAM_SHA_256
from imapd.accounts.scram import MECHANISM_PLUS as SCRAM_SHA_256_PLUS
from imapd.accounts.scram import Failure, ScramExchange, ScramFailed
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    NOT_AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.core.errors import ImapError
from imapd.core.model import Secret
from imapd.imap.session.state import State
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Continuation, ResponseCode, Status, Untagged
from imapd.imap.wire.values import Atom

log = Logger(namespace="imapd.accounts")

# RFC 5802 §6: -PLUS binds to a TLS channel; there is none on this connection.
NO_PLUS_WITHOUT_TLS = "SCRAM-SHA-256-PLUS needs a TLS connection (STARTTLS first)"


def require_plaintext_allowed(ctx: CommandContext) -> None:
    """Gate 1: refuse before anything is checked or delayed."""
    if not capabilities.plaintext_auth_allowed(ctx.session, ctx.features):
        raise ImapError.no(catalogue.NO_PLAINTEXT_DISABLED, catalogue.CODE_PRIVACYREQUIRED)


def _now(ctx: CommandContext) -> float:
    return ctx.connection.now() if ctx.connection is not None else 0.0


async def apply_penalty(ctx: CommandContext, username: str) -> None:
    """Gate 2: wait out the penalty of this address and this name."""
    guard = ctx.connection.login_guard() if ctx.connection is not None else None
    if guard is None:
        return
    delay = guard.delay_for(ctx.session.peer_host, username)
    if delay > 0:
        await ctx.runtime.sleep(delay)


async def fail_authentication(ctx: CommandContext, username: str, started: float) -> NoReturn:
    """Record the failure and raise ``NO [AUTHENTICATIONFAILED]`` once
    ``failed_login_delay`` has passed since ``started`` (so the time the
    check took, which differs between schemes and unknown users, is hidden)."""
    guard = ctx.connection.login_guard() if ctx.connection is not None else None
    if guard is not None:
        guard.record_failure(ctx.session.peer_host, username)
    log.info("session {id} ({peer}): authentication failed",
             id=ctx.session.session_id, peer=ctx.session.peer)
    remaining = ctx.config.limits.failed_login_delay - (_now(ctx) - started)
    if remaining > 0:
        await ctx.runtime.sleep(remaining)
    raise ImapError.no(catalogue.NO_AUTHENTICATION_FAILED, catalogue.CODE_AUTHENTICATIONFAILED)


def complete_login(ctx: CommandContext, username: str) -> Completion:
    """Gate 4, then log the session in: ``OK [CAPABILITY ...] Logged in``."""
    connection = ctx.connection
    if connection is not None:
        guard = connection.login_guard()
        if guard is not None:
            guard.record_success(ctx.session.peer_host, username)
        if connection.user_session_count(username) >= ctx.config.limits.max_connections_per_user:
            log.info("session {id} ({peer}): per-user connection limit reached",
                     id=ctx.session.session_id, peer=ctx.session.peer)
            ctx.send(Untagged(Status.BYE, catalogue.BYE_TOO_MANY_FOR_USER))
            ctx.session.state = State.LOGOUT  # the server closes after the reply
            raise ImapError.no(catalogue.BYE_TOO_MANY_FOR_USER, catalogue.CODE_LIMIT)
    ctx.session.log_in(username)
    log.info("session {id} ({peer}): logged in as {user}",
             id=ctx.session.session_id, peer=ctx.session.peer, user=username)
    caps = capabilities.advertised(ctx.session, ctx.features)
    code = ResponseCode(catalogue.CODE_CAPABILITY, tuple(Atom(cap) for cap in caps))
    return Completion(catalogue.OK_LOGGED_IN, code)


async def authenticate_user(
    ctx: CommandContext, username: str, password: Secret
) -> Completion:
    """Gates 2-4 for a user name and password (LOGIN, PLAIN)."""
    await apply_penalty(ctx, username)
    started = _now(ctx)
    ok = await ctx.runtime.in_thread(ctx.users.verify, username, password)
    if not ok:
        await fail_authentication(ctx, username, started)
    return complete_login(ctx, username)


async def handle_login(cmd: c.Login, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.2.3."""
    require_plaintext_allowed(ctx)
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


async def _read_sasl(ctx: CommandContext, challenge: bytes) -> bytes:
    """Send ``+ base64(challenge)`` and return the decoded client answer."""
    data = base64.b64encode(challenge)
    response = await ctx.read_continuation(Continuation(text="", data=data))
    if response == b"*":  # RFC 3501 §6.2.2: the client cancels
        raise ImapError.bad(catalogue.BAD_AUTH_CANCELLED)
    return decode_sasl_base64(response)


async def _scram(cmd: c.Authenticate, ctx: CommandContext, plus: bool) -> Completion:
    """RFC 5802 §5 over IMAP: client-first (SASL-IR or after ``+``),
    server-first, client-final, then the server-final as one more challenge
    answered by an empty line, then the tagged OK (RFC 3501 §6.2.2 has no
    "additional data with success"). ``plus``: SCRAM-SHA-256-PLUS, bound to
    this TLS connection (RFC 5802 §6, RFC 9266, RFC 5929)."""
    if cmd.initial_response is not None:
        client_first = decode_sasl_base64(cmd.initial_response)
    else:
        client_first = await _read_sasl(ctx, b"")
    bindings = ctx.connection.channel_bindings() if ctx.connection is not None else {}
    offered = SCRAM_SHA_256_PLUS in capabilities.sasl_mechanisms(ctx.session, ctx.features)
    exchange = ScramExchange(ctx.users.scram_keys, plus=plus, bindings=bindings, plus_offered=offered)
    try:
        server_first = exchange.first(client_first)
    except ScramFailed as failure:
        await _scram_refusal(ctx, failure, exchange.username, _now(ctx))
    username = exchange.username or ""
    await apply_penalty(ctx, username)
    client_final = await _read_sasl(ctx, server_first)
    started = _now(ctx)
    try:
        server_final = exchange.final(client_final)
    except ScramFailed as failure:
        await _scram_refusal(ctx, failure, username, started)
    if await _read_sasl(ctx, server_final) != b"":
        raise ImapError.bad(f"{catalogue.BAD_SCRAM}: the server-final answer must be empty")
    return complete_login(ctx, username)


async def _scram_refusal(
    ctx: CommandContext, failure: ScramFailed, username: str | None, started: float
) -> NoReturn:
    """Answer a failed SCRAM exchange: BAD with the reason for a broken
    message, NO [AUTHORIZATIONFAILED] for another user's identity (RFC 5530),
    NO [AUTHENTICATIONFAILED] with the reason when the exchange was refused
    (channel binding, RFC 5802 §6), and a wrong proof exactly like a wrong
    password (penalty, delay, no detail)."""
    if failure.kind is Failure.MALFORMED:
        raise ImapError.bad(f"{catalogue.BAD_SCRAM}: {failure.reason}")
    if failure.kind is Failure.AUTHORIZATION:
        raise ImapError.no(catalogue.NO_AUTHORIZATION_FAILED, catalogue.CODE_AUTHORIZATIONFAILED)
    if failure.kind is Failure.REFUSED:
        guard = ctx.connection.login_guard() if ctx.connection is not None else None
        if guard is not None and username is not None:
            guard.record_failure(ctx.session.peer_host, username)
        log.info("session {id} ({peer}): SCRAM refused: {why}",
                 id=ctx.session.session_id, peer=ctx.session.peer, why=failure.reason)
        raise ImapError.no(failure.reason, catalogue.CODE_AUTHENTICATIONFAILED)
    await fail_authentication(ctx, username or "", started)


async def _scram_sha_256(cmd: c.Authenticate, ctx: CommandContext) -> Completion:
    return await _scram(cmd, ctx, plus=False)


async def _scram_sha_256_plus(cmd: c.Authenticate, ctx: CommandContext) -> Completion:
    return await _scram(cmd, ctx, plus=True)


Mechanism = Callable[[c.Authenticate, CommandContext], Awaitable[Completion]]

# SASL mechanisms by upper-case name; capabilities.check_handlers compares
# this with the advertised AUTH= list at start-up.
MECHANISMS: dict[str, Mechanism] = {
    "PLAIN": _plain, SCRAM_SHA_256: _scram_sha_256, SCRAM_SHA_256_PLUS: _scram_sha_256_plus,
}


def available_mechanisms(channel_binding: bool = False) -> tuple[str, ...]:
    """What the server advertises (in this order). SCRAM-SHA-256 works for
    users whose password was set by imapd (they have SCRAM keys); for the
    others it fails like a wrong password, and PLAIN still works.
    ``channel_binding``: the server's TLS layer can give channel binding
    data and the operator turned SCRAM-SHA-256-PLUS on (``--scram-plus``,
    off by default: stock mutt cannot bind, docs/security.md), so it is
    offered too (on TLS connections only, ``capabilities.sasl_mechanisms``)."""
    if channel_binding:
        return ("PLAIN", SCRAM_SHA_256, SCRAM_SHA_256_PLUS)
    return ("PLAIN", SCRAM_SHA_256)


async def handle_authenticate(cmd: c.Authenticate, ctx: CommandContext) -> Completion:
    """RFC 3501 §6.2.2: unknown mechanisms get a tagged NO."""
    name = cmd.mechanism.upper()
    mechanism = MECHANISMS.get(name)
    if name == SCRAM_SHA_256_PLUS and name in ctx.features.sasl_mechanisms and not ctx.session.secure:
        raise ImapError.no(NO_PLUS_WITHOUT_TLS)
    if mechanism is None or name not in capabilities.sasl_mechanisms(ctx.session, ctx.features):
        raise ImapError.no(catalogue.NO_UNSUPPORTED_MECHANISM)
    require_plaintext_allowed(ctx)
    return await mechanism(cmd, ctx)


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(c.Login, handle_login, NOT_AUTHENTICATED),
    CommandSpec(c.Authenticate, handle_authenticate, NOT_AUTHENTICATED),
)

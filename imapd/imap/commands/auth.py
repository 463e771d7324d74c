"""LOGIN and AUTHENTICATE (RFC 3501 §6.2.2, §6.2.3; SASL PLAIN RFC 4616;
SASL-IR RFC 4959; SCRAM-SHA-256 RFC 7677 / RFC 5802, and
SCRAM-SHA-256-PLUS on TLS connections, RFC 5802 §6 with RFC 9266
tls-exporter or RFC 5929 tls-server-end-point channel binding).

The IMAP adapter of ``imapd.accounts.authenticator``: it reads credentials
off the IMAP wire (arguments, SASL-IR, ``+`` continuations in base64),
asks the ``Authenticator`` (plaintext policy, brute-force penalty, the
check in a thread, the failure delay; see its docstring for the gates) and
answers its verdict the IMAP way:

- plaintext refused: ``NO [PRIVACYREQUIRED]`` (and the capability list
  says LOGINDISABLED without ``AUTH=``, by the same rule);
- wrong credentials: ``NO [AUTHENTICATIONFAILED]`` after the delay;
- another identity: ``NO [AUTHORIZATIONFAILED]`` (RFC 5530);
- a refused SCRAM exchange: ``NO [AUTHENTICATIONFAILED]`` with the reason;
- a broken SASL message: BAD with the reason.

Then, IMAP's own gate: over the per-user session limit, ``* BYE`` and the
connection closes; else the session logs in (``OK [CAPABILITY ...]``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Awaitable, Callable, NoReturn

from twisted.logger import Logger

from imapd.accounts.authenticator import (
    Authenticator, Client, Outcome, Verdict, may_act_as, split_plain,
)
from imapd.accounts.scram import MECHANISM as SCRAM_SHA_256
from imapd.accounts.scram import MECHANISM_PLUS as SCRAM_SHA_256_PLUS
from imapd.core.errors import ImapError
from imapd.core.model import Secret
from imapd.imap import capabilities
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import (
    NOT_AUTHENTICATED, AnySpec, CommandContext, CommandSpec, Completion,
)
from imapd.imap.session.state import State
from imapd.imap.wire import commands as c
from imapd.imap.wire.responses import Continuation, ResponseCode, Status, Untagged
from imapd.imap.wire.values import Atom

log = Logger(namespace="imapd.accounts")

# RFC 5802 §6: -PLUS binds to a TLS channel; there is none on this connection.
NO_PLUS_WITHOUT_TLS = "SCRAM-SHA-256-PLUS needs a TLS connection (STARTTLS first)"


def authenticator(ctx: CommandContext) -> Authenticator:
    """The login checks over this server's users, penalty tracker and
    clock (none of the latter two in unit contexts without a connection).
    Cheap: the shared state is the connection's ``LoginGuard``."""
    connection = ctx.connection
    if connection is None:
        return Authenticator(ctx.users, ctx.runtime, ctx.config.limits)
    return Authenticator(ctx.users, ctx.runtime, ctx.config.limits,
                         guard=connection.login_guard(), now=connection.now)


def client_of(ctx: CommandContext) -> Client:
    """The penalty key (the peer host) and the log label of this session."""
    session = ctx.session
    return Client(session.peer_host, f"session {session.session_id} ({session.peer})")


def require_plaintext_allowed(ctx: CommandContext) -> None:
    """Gate 1: refuse before anything is checked or delayed."""
    if not capabilities.plaintext_auth_allowed(ctx.session, ctx.features):
        raise ImapError.no(catalogue.NO_PLAINTEXT_DISABLED, catalogue.CODE_PRIVACYREQUIRED)


def refuse(verdict: Verdict) -> NoReturn:
    """Answer a failed verdict (RFC 5530 codes; see the module docstring)."""
    if verdict.outcome is Outcome.MALFORMED:
        raise ImapError.bad(f"{catalogue.BAD_SCRAM}: {verdict.reason}")
    if verdict.outcome is Outcome.UNAUTHORIZED:
        raise ImapError.no(catalogue.NO_AUTHORIZATION_FAILED, catalogue.CODE_AUTHORIZATIONFAILED)
    if verdict.outcome is Outcome.REFUSED:
        raise ImapError.no(verdict.reason, catalogue.CODE_AUTHENTICATIONFAILED)
    raise ImapError.no(catalogue.NO_AUTHENTICATION_FAILED, catalogue.CODE_AUTHENTICATIONFAILED)


def complete_login(ctx: CommandContext, username: str) -> Completion:
    """IMAP's gate after the checks, then log the session in:
    ``OK [CAPABILITY ...] Logged in``."""
    connection = ctx.connection
    if connection is not None:
        # The server records this session under the name as it counts
        # (``ImapServerFactory.user_session_count``): count and log_in
        # below must stay in one step, with no await between them.
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
    ctx: CommandContext, username: str, password: Secret, mechanism: str = "LOGIN"
) -> Completion:
    """A user name and password (LOGIN, PLAIN) through the checks."""
    verdict = await authenticator(ctx).check_password(
        client_of(ctx), username, password, mechanism)
    if not verdict.ok:
        refuse(verdict)
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
    parts = split_plain(message)
    if parts is None:
        raise ImapError.bad(catalogue.BAD_MALFORMED_PLAIN)
    requested, username, password = parts
    if not may_act_as(username, requested):
        raise ImapError.no(
            catalogue.NO_AUTHORIZATION_FAILED, catalogue.CODE_AUTHORIZATIONFAILED
        )
    return username, password


async def _plain(cmd: c.Authenticate, ctx: CommandContext) -> Completion:
    """PLAIN takes one client message, either as the SASL-IR initial
    response or after an empty ``+`` challenge."""
    response = cmd.initial_response
    if response is None:
        response = await ctx.read_continuation(Continuation(text="", data=b""))
        if response == b"*":  # RFC 3501 §6.2.2: the client cancels
            raise ImapError.bad(catalogue.BAD_AUTH_CANCELLED)
    username, password = parse_plain_message(decode_sasl_base64(response))
    return await authenticate_user(ctx, username, password, "PLAIN")


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
    login = authenticator(ctx).scram(
        client_of(ctx), plus=plus, bindings=bindings, plus_offered=offered)
    server_first = await login.first(client_first)
    if not server_first.ok:
        refuse(server_first)
    server_final = await login.final(await _read_sasl(ctx, server_first.data))
    if not server_final.ok:
        refuse(server_final)
    if await _read_sasl(ctx, server_final.data) != b"":
        raise ImapError.bad(f"{catalogue.BAD_SCRAM}: the server-final answer must be empty")
    verdict = login.done()
    assert verdict.user is not None
    return complete_login(ctx, verdict.user)


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

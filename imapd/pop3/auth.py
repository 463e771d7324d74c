"""The AUTHORIZATION state (RFC 1939 §4, §7): USER/PASS, AUTH (RFC 5034:
PLAIN, RFC 4616; SCRAM-SHA-256, RFC 7677), STLS (RFC 2595 §4), CAPA, QUIT.

Every check is the shared ``Authenticator``'s (plaintext policy first,
then penalties and the failure delay); here only the POP3 wire: answers
are ``-ERR [AUTH]`` for refused credentials (RFC 3206 §4, RFC 5034 §6
AUTH-RESP-CODE), challenges are ``+ base64`` lines and ``*`` cancels
(RFC 5034 §4). Credentials are never logged.
"""

from __future__ import annotations

import base64
import binascii

from imapd.accounts.authenticator import Outcome, Verdict, may_act_as, split_plain
from imapd.core.model import Secret
from imapd.pop3 import replies as r
from imapd.pop3.commands import Command
from imapd.pop3.session import Bad, Handler, Pop3Session, Refused

PLAINTEXT_DISABLED = "Plaintext authentication disallowed on non-secure connections"
AUTH_FAILED = "Authentication failed"
SCRAM = "SCRAM-SHA-256"


def require_plaintext_allowed(session: Pop3Session) -> None:
    """Gate 1 of the Authenticator (RFC 2595 §2.3, RFC 8314 §4): checked
    before credentials are even read."""
    if not session.plaintext_allowed():
        raise Refused(PLAINTEXT_DISABLED, r.AUTH)


def refuse(verdict: Verdict) -> None:
    """Map a failed verdict to ``-ERR`` (malformed exchanges are bad commands)."""
    if verdict.outcome is Outcome.MALFORMED:
        raise Bad(f"Invalid SASL message: {verdict.reason}")
    if verdict.outcome is Outcome.REFUSED:
        raise Refused(verdict.reason, r.AUTH)
    raise Refused(AUTH_FAILED, r.AUTH)


async def user(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §7 USER: remember the name for PASS."""
    if len(command.args) != 1:
        raise Bad("USER takes one argument")
    require_plaintext_allowed(session)
    session.pending_user = command.args[0]
    session.link.send(r.ok())
    return False


async def password(session: Pop3Session, command: Command) -> bool:
    """RFC 1939 §7 PASS: after USER; a failure starts over at USER."""
    name, session.pending_user = session.pending_user, None
    if name is None:
        raise Bad("USER first")
    if not command.args:
        raise Bad("PASS takes one argument")
    require_plaintext_allowed(session)
    secret = Secret(command.args[0].encode("utf-8"))
    verdict = await session.authenticator.check_password(session.client, name, secret, "USER")
    if not verdict.ok:
        refuse(verdict)
    await session.log_in(name)
    return False


def decode_sasl(data: bytes) -> bytes:
    """One client SASL line: strict base64, ``=`` for an empty initial
    response (RFC 5034 §4)."""
    if data == b"=":
        return b""
    if len(data) % 4:
        raise Bad("Invalid base64 data")
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise Bad("Invalid base64 data") from None


async def read_sasl(session: Pop3Session, challenge: bytes) -> bytes:
    """``+ base64(challenge)`` and the decoded answer; ``*`` cancels."""
    prompt = b"+ " + base64.b64encode(challenge) + r.CRLF
    try:
        answer = await session.link.read_continuation(prompt)
    except ValueError as error:  # an unframeable answer (too long)
        raise Bad(str(error)) from None
    if answer == b"*":
        raise Bad("Authentication cancelled")
    return decode_sasl(answer)


async def authenticate(session: Pop3Session, command: Command) -> bool:
    """RFC 5034 §4 AUTH; without a mechanism, the mechanisms as a list
    (what older clients ask, as in RFC 1734 era servers)."""
    if not command.args:
        mechanisms = session.settings.sasl if session.plaintext_allowed() else ()
        lines = [m.encode("ascii") for m in mechanisms]
        session.link.send(b"".join(r.multiline(r.ok(), lines)))
        return False
    if len(command.args) > 2:
        raise Bad("AUTH takes a mechanism and an optional initial response")
    mechanism = command.args[0].upper()
    if mechanism not in session.settings.sasl:
        raise Refused("Unsupported authentication mechanism")
    require_plaintext_allowed(session)
    # Not ASCII: not base64 either, which decode_sasl then says.
    initial = command.args[1].encode("utf-8") if len(command.args) == 2 else None
    if mechanism == "PLAIN":
        await _plain(session, initial)
    else:
        await _scram(session, initial)
    return False


async def _plain(session: Pop3Session, initial: bytes | None) -> None:
    message = decode_sasl(initial) if initial is not None else await read_sasl(session, b"")
    parts = split_plain(message)
    if parts is None:
        raise Bad("Malformed PLAIN message")
    requested, name, secret = parts
    if not may_act_as(name, requested):
        raise Refused("Authorization failed", r.AUTH)
    verdict = await session.authenticator.check_password(session.client, name, secret, "PLAIN")
    if not verdict.ok:
        refuse(verdict)
    await session.log_in(name)


async def _scram(session: Pop3Session, initial: bytes | None) -> None:
    """RFC 5802 §5: client-first, server-first, client-final, then the
    server-final as one more challenge answered by an empty line (RFC 5034
    §4 has no additional data with success), then ``+OK``."""
    client_first = decode_sasl(initial) if initial is not None else await read_sasl(session, b"")
    login = session.authenticator.scram(
        session.client, plus=False, bindings=session.link.channel_bindings())
    server_first = await login.first(client_first)
    if not server_first.ok:
        refuse(server_first)
    server_final = await login.final(await read_sasl(session, server_first.data))
    if not server_final.ok:
        refuse(server_final)
    if await read_sasl(session, server_final.data) != b"":
        raise Bad("The answer to the server-final message must be empty")
    verdict = login.done()
    assert verdict.user is not None
    await session.log_in(verdict.user)


async def stls(session: Pop3Session, command: Command) -> bool:
    """RFC 2595 §4: only before login, only once; a USER given in clear
    text is forgotten (the connection's later input is TLS)."""
    if command.args:
        raise Bad("STLS takes no arguments")
    if session.link.secure:
        raise Refused("TLS is already active")
    if not session.link.tls_available():
        raise Refused("TLS is not available")
    session.pending_user = None
    session.link.send(r.ok("Begin TLS negotiation now"))
    session.link.start_tls()
    return False


async def capa(session: Pop3Session, command: Command) -> bool:
    return await session.capa(command)


async def quit_(session: Pop3Session, command: Command) -> bool:
    return await session.quit_authorization(command)


HANDLERS: dict[str, Handler] = {
    "USER": user, "PASS": password, "AUTH": authenticate, "STLS": stls,
    "CAPA": capa, "QUIT": quit_,
}

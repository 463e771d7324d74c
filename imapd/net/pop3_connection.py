"""POP3 over Twisted: the POP3 side of ``imapd.net.connection`` and the
factory every ``--pop3``/``--pop3s`` endpoint shares.

``LineConnection`` owns the machinery (pipelining, RFC 2449 §6.6; fairness
slices and back-pressure; output streamed as the client reads it; the
inactivity timeouts and login deadline, RFC 1939 §3; the STLS hold, RFC
2595 §4; the continuation exchange AUTH uses, RFC 5034 §4). This subclass
frames lines only (``imapd.pop3.framer``: POP3 has no literals), hands
each to the I/O-free ``imapd.pop3.session.Pop3Session``, and says goodbye
with ``-ERR`` and a reason.

The factory counts connections per process, per address and per user
(``Limits``, as IMAP's factory does; the counts are POP3's own) and shares
the IMAP factory's ``LoginGuard``, so brute-force penalties earned on
one protocol apply on the other.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Coroutine, Iterator, cast

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from imapd.accounts.authenticator import Authenticator
from imapd.accounts.penalty import LoginGuard
from imapd.accounts.store import UserStore
from imapd.core import telemetry
from imapd.core.config import Config
from imapd.imap.wire.framer import (
    CommandFrame, FrameError, FrameEvent, Framer, NeedContinuation,
)
from imapd.mail.service import MailService
from imapd.net import accounting, tls
from imapd.net.connection import Goodbye, LineConnection
from imapd.net.peer import format_peer, is_local, peer_host, set_no_delay
from imapd.net.runtime import Clock, ReactorRuntime, global_reactor
from imapd.pop3 import replies as r
from imapd.pop3.framer import LineFramer
from imapd.pop3.session import Pop3Session, Pop3Settings

log = Logger(namespace="imapd.pop3")

# A complete STLS line (RFC 2595 §4): what follows it is held, unanswered.
_STLS_LINE = re.compile(rb"\ASTLS\r?\n\Z", re.IGNORECASE)
_BYE = {
    Goodbye.FLOOD: "Too much input",
    Goodbye.TOO_MANY_BAD: "Too many bad commands",
    Goodbye.BAD_COMPRESSED: "Bad input",
    Goodbye.AUTOLOGOUT: "Disconnected for inactivity",
    Goodbye.LOGIN_TOO_SLOW: "Login took too long",
}
_ids = itertools.count(1)


def settings_of(config: Config) -> Pop3Settings:
    """The session settings from the server's configuration."""
    from imapd import __version__

    options = config.pop3
    name = f"imapd {__version__}" if config.id_send_version else "imapd"
    return Pop3Settings(
        uidl_style=options.uidl_format, seen_on_retr=options.seen_on_retr,
        implementation=name, allow_plaintext=config.allow_plaintext,
        max_bad_commands=config.limits.max_bad_commands,
        max_sessions_per_user=config.limits.max_connections_per_user,
        expire=options.expire, login_delay=options.login_delay)


class Pop3Factory(ServerFactory):
    """Builds POP3 connections; ``guard``: the penalty tracker shared with
    IMAP (None: a new one)."""

    noisy = False

    def __init__(self, config: Config, users: UserStore, mail: MailService | None, *,
                 clock: Clock | None = None, tls: object | None = None,
                 guard: LoginGuard | None = None) -> None:
        self.config = config
        self.users = users
        self.mail = mail
        self.clock: Clock = clock if clock is not None else global_reactor()
        self.runtime = ReactorRuntime(self.clock)
        self.tls = tls
        self.settings = settings_of(config)
        self.guard = guard if guard is not None else LoginGuard(config.limits, self.clock.seconds)
        self.connections: set[Pop3Connection] = set()
        self._per_host: dict[str, int] = {}
        self._per_user: dict[str, set[Pop3Connection]] = {}

    def buildProtocol(self, addr: Any) -> Pop3Connection:
        return Pop3Connection(self)

    def authenticator(self) -> Authenticator:
        return Authenticator(self.users, self.runtime, self.config.limits,
                             guard=self.guard, now=self.clock.seconds, protocol="pop3")

    def connection_opened(self, connection: Pop3Connection) -> str | None:
        """Register; or the refusal text over the process or address limit."""
        limits = self.config.limits
        if len(self.connections) >= limits.max_connections:
            return "Too many connections"
        if self._per_host.get(connection.peer_host, 0) >= limits.max_connections_per_ip:
            return "Too many connections from your address"
        self.connections.add(connection)
        self._per_host[connection.peer_host] = self._per_host.get(connection.peer_host, 0) + 1
        return None

    def user_session_count(self, user: str, connection: Pop3Connection) -> int:
        """Other sessions of ``user``; ``connection`` is counted for it from
        now on (it is logging in as ``user``) until it closes."""
        for sessions in self._per_user.values():
            sessions.discard(connection)
        sessions = self._per_user.setdefault(user, set())
        count = len(sessions)
        sessions.add(connection)
        return count

    def connection_closed(self, connection: Pop3Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            left = self._per_host.get(connection.peer_host, 0) - 1
            if left > 0:
                self._per_host[connection.peer_host] = left
            else:
                self._per_host.pop(connection.peer_host, None)
        for user, sessions in list(self._per_user.items()):
            sessions.discard(connection)
            if not sessions:
                del self._per_user[user]

    def shutdown_connections(self) -> None:
        """Server stopping: ``-ERR`` and close; nothing is updated (a
        session without QUIT changes nothing, RFC 1939 §6)."""
        for connection in list(self.connections):
            connection.account.note(accounting.SHUTDOWN)
            connection.goodbye("Server shutting down", r.SYS_TEMP)


class Pop3Connection(LineConnection):
    """The server side of one POP3 connection (also the session's ``Link``)."""

    protocol_name = "pop3"

    def __init__(self, factory: Pop3Factory) -> None:
        framer = cast(Framer, LineFramer(factory.config.pop3.max_line))
        super().__init__(factory.clock, factory.config.limits, framer, factory.tls)
        self.server = factory
        self.peer_host = "?"
        self._secure = False
        self._local = False
        self.session = Pop3Session(factory.mail, factory.authenticator(), factory.settings, self)

    # --- Link ------------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        return self._secure

    @property
    def local(self) -> bool:
        return self._local

    def tls_available(self) -> bool:
        return self.tls_context is not None

    def user_session_count(self, user: str) -> int:
        return self.server.user_session_count(user, self)

    def channel_bindings(self) -> dict[str, bytes]:
        return tls.channel_bindings(self.transport)

    # --- lifecycle -------------------------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        address = self._transport().getPeer()
        self.peer_host = peer_host(address)
        self._secure = bool(ISSLTransport.providedBy(self.transport))
        self._local = is_local(address) and self.server.config.loopback_is_local
        self.label = f"pop3 session {next(_ids)} ({format_peer(address)})"
        self.account.open(format_peer(address), self.clock.seconds(), self.transport)
        self.opened_at = self.account.opened_at
        refusal = self.server.connection_opened(self)
        if refusal is not None:
            log.info("{label} refused: {why}", label=self.label, why=refusal)
            self.account.note(accounting.REFUSED)
            self.goodbye(refusal, r.SYS_TEMP)
            return
        self.send(self.session.greeting())
        self.start_timers()

    def connection_ended(self) -> None:
        self.account.close(self.session.user, self.clock.seconds(), self._secure)
        self.session.abort()
        self.server.connection_closed(self)

    def goodbye(self, text: str, code: str | None = None) -> None:
        if not self._closing:
            self.send(r.err(text, code))
            self.close()

    def tls_started(self) -> None:
        self._secure = True

    @property
    def authenticated(self) -> bool:
        return self.session.authenticated

    def encode(self, response: bytes | Iterator[bytes]) -> bytes | Iterator[bytes]:
        return response

    def say_bye(self, reason: Goodbye) -> None:
        self.account.note(accounting.goodbye_reason(reason.value))
        self.goodbye(_BYE[reason])

    # --- input -------------------------------------------------------------------------

    def handle_events(self, events: list[FrameEvent]) -> bool:
        """Queue lines in order; behind a STLS line, hold the rest."""
        for index, event in enumerate(events):
            self._arm_timer()
            stls = (isinstance(event, CommandFrame) and not self.reading_continuation
                    and _STLS_LINE.match(event.data) is not None)
            if isinstance(event, NeedContinuation):
                continue  # never made: POP3 has no literals
            self.enqueue(event)
            if stls:
                assert isinstance(event, CommandFrame)
                self.hold_after(event, events[index + 1:])
                return True
        return True

    def answer_frame_error(self, error: FrameError) -> bool:
        """An overlong line: ``-ERR``, counted as a bad command."""
        self.send(r.err(error.reason))
        telemetry.sink().command_finished("pop3", "UNKNOWN", "-ERR", 0.0)
        return self.session.count_bad().too_many_bad

    def run_frame(self, frame: CommandFrame) -> Coroutine[Any, Any, None]:
        return self._execute(frame)

    async def _execute(self, frame: CommandFrame) -> None:
        try:
            outcome = await self.session.run(frame.data)
        except self.closed_error:
            if self._lost or self._closing:
                return  # the connection went away during the command
            raise  # not ours: logged by _crashed, which closes the connection
        self._running = False
        if self._closing:
            return
        self.command_finished(logout=outcome.close, too_many_bad=outcome.too_many_bad)

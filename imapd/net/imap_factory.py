"""The server factory: what all connections of one server share.

It holds the configuration, the user database, the mail core
(``MailService``; None in tests of the bare protocol), the dispatcher and
the clock; builds one ``ImapServerProtocol`` per connection; counts
connections (per address and, once logged in, per user: kept up to date on
open, login and close, so a burst of N connects or logins costs O(N), not
O(N²) scans of every connection); and closes the mail service at shutdown. Changes made by other
processes reach this process's sessions through the backend's own change
feed (``imapd.mail.backend.ChangeFeed``): the factory polls nothing.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from imapd.imap import capabilities
from imapd.accounts.penalty import LoginGuard
from imapd.imap.commands import auth, catalogue
from imapd.imap.commands.context import CommandContext, ConnectionHooks, Features, Runtime
from imapd.imap.commands.dispatch import Dispatcher
from imapd.imap.commands.registry import Registry, default_registry
from imapd.core.config import Config
from imapd.net.imap_connection import ImapServerProtocol
from imapd.net.runtime import Clock, ReactorRuntime, global_reactor
from imapd.net.tls import ServerTLS
from imapd.imap.session.state import Session
from imapd.accounts.store import UserStore
from imapd.imap.wire.responses import Continuation, Response
from imapd.mail.service import MailService

log = Logger(namespace="imapd.net")


class ImapServerFactory(ServerFactory):
    """Builds IMAP connections. ``clock`` and ``runtime`` default to the
    global reactor; tests pass a ``task.Clock`` and an ``InlineRuntime``."""

    protocol = ImapServerProtocol
    noisy = False  # our own "listening on" line replaces Twisted's

    def __init__(
        self,
        config: Config,
        users: UserStore,
        mail: MailService | None = None,
        *,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        registry: Registry | None = None,
        features: Features | None = None,
        tls: ServerTLS | None = None,
    ) -> None:
        self.config = config
        self.users = users
        self.mail = mail
        self.clock: Clock = clock if clock is not None else global_reactor()
        self.runtime = runtime if runtime is not None else ReactorRuntime(self.clock)
        self.registry = registry if registry is not None else default_registry()
        self.tls = tls
        self.features = features if features is not None else Features(
            literal_plus=capabilities.framer_supports_literal_plus(config.limits),
            sasl_mechanisms=auth.available_mechanisms(
                channel_binding=isinstance(tls, ServerTLS) and config.scram_plus),
            starttls=tls is not None,
            allow_plaintext=config.allow_plaintext,
            append_limit=config.limits.max_literal,
        )
        self.login_guard = LoginGuard(config.limits, self.clock.seconds)
        # Start-up check: never advertise what we cannot do.
        capabilities.check_handlers(
            self.features, self.registry.command_types(), auth.MECHANISMS
        )
        self.dispatcher = Dispatcher(self.registry, config.limits.max_bad_commands)
        self.connections: set[ImapServerProtocol] = set()
        # Open connections by peer host (``Limits.max_connections_per_ip``).
        self._per_host: dict[str, int] = {}
        # Connections that logged in, or are logging in, by user name
        # (``Limits.max_connections_per_user``); see ``user_session_count``.
        self._per_user: dict[str, set[ImapServerProtocol]] = {}
        self._user_of: dict[ImapServerProtocol, str] = {}
        self._mail_closed = False

    def buildProtocol(self, addr: IAddress | None) -> ImapServerProtocol:
        return ImapServerProtocol(self)

    def make_context(
        self,
        session: Session,
        sender: Callable[[Response], None],
        continuation_reader: Callable[[Continuation], Awaitable[bytes]],
        connection: ConnectionHooks | None = None,
    ) -> CommandContext:
        return CommandContext(
            session=session, config=self.config, users=self.users,
            runtime=self.runtime, features=self.features, sender=sender,
            continuation_reader=continuation_reader, mail=self.mail,
            connection=connection,
        )

    def connection_opened(self, connection: ImapServerProtocol) -> str | None:
        """Register a connection; or, over ``Limits.max_connections`` or
        ``Limits.max_connections_per_ip``, the ``* BYE`` text to refuse it with."""
        limits = self.config.limits
        if len(self.connections) >= limits.max_connections:
            return catalogue.BYE_TOO_MANY_CONNECTIONS
        host = connection.session.peer_host
        if self._per_host.get(host, 0) >= limits.max_connections_per_ip:
            return catalogue.BYE_TOO_MANY_FROM_ADDRESS
        self.connections.add(connection)
        self._per_host[host] = self._per_host.get(host, 0) + 1
        return None

    def user_session_count(self, user: str, excluding: ImapServerProtocol | None = None) -> int:
        """Logged-in connections of ``user`` other than ``excluding`` (for
        the per-user limit).

        The login gate (``imapd.imap.commands.auth.complete_login``) asks
        this once, right before ``excluding`` logs in as ``user`` in the
        same step (no await in between), so ``excluding`` is recorded under
        ``user`` here; it is dropped again when its connection closes, or
        at the next count if it did not log in as ``user`` after all (it
        was refused and is closing). A count therefore looks only at this
        user's connections: at most the per-user limit plus the refused
        ones not yet closed, not every connection of the server."""
        stale = [
            other for other in self._per_user.get(user, ())
            if other is not excluding
            and not (other.session.authenticated and other.session.user == user)
        ]
        for other in stale:
            self._forget_user(other)
        count = sum(1 for other in self._per_user.get(user, ()) if other is not excluding)
        if excluding is not None:
            self._forget_user(excluding)
            self._per_user.setdefault(user, set()).add(excluding)
            self._user_of[excluding] = user
        return count

    def connection_closed(self, connection: ImapServerProtocol) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            host = connection.session.peer_host
            remaining = self._per_host.get(host, 0) - 1
            if remaining > 0:
                self._per_host[host] = remaining
            else:
                self._per_host.pop(host, None)
        self._forget_user(connection)

    def _forget_user(self, connection: ImapServerProtocol) -> None:
        user = self._user_of.pop(connection, None)
        if user is None:
            return
        sessions = self._per_user.get(user)
        if sessions is not None:
            sessions.discard(connection)
            if not sessions:
                del self._per_user[user]

    def shutdown_connections(self) -> None:
        for connection in list(self.connections):
            connection.shutdown()

    # --- shutdown ---------------------------------------------------------------

    async def close_store(self) -> None:
        """Close the mail service (its watches and backend) at server
        shutdown, after the listening ports are closed. Idempotent; errors
        are logged."""
        if self.mail is None or self._mail_closed:
            return
        self._mail_closed = True
        try:
            await self.mail.close()
        except Exception:
            log.failure("closing the mail service failed")
        else:
            log.info("imapd: mail store closed")

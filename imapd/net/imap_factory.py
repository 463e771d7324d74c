"""The server factory: what all connections of one server share.

It holds the configuration, the user database, the mail core
(``MailService``; None in tests of the bare protocol), the dispatcher and
the clock; builds one ``ImapServerProtocol`` per connection; counts
connections; and closes the mail service at shutdown. Changes made by other
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
from imapd.accounts.users import UserDatabase
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
        users: UserDatabase,
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
        same_host = sum(1 for other in self.connections if other.session.peer_host == host)
        if same_host >= limits.max_connections_per_ip:
            return catalogue.BYE_TOO_MANY_FROM_ADDRESS
        self.connections.add(connection)
        return None

    def user_session_count(self, user: str, excluding: object = None) -> int:
        """Logged-in connections of ``user`` (for the per-user limit)."""
        return sum(
            1 for other in self.connections
            if other is not excluding and other.session.authenticated
            and other.session.user == user
        )

    def connection_closed(self, connection: ImapServerProtocol) -> None:
        self.connections.discard(connection)

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

"""The server factory: what all connections of one server share.

It holds the configuration, the user database, the mail store (optional
until the store is wired), the dispatcher and the clock; builds one
``ImapServerProtocol`` per connection; counts connections; and, when the
store has ``poll_changes``, calls it on a short timer so changes made by
other processes on the same data directory reach this process's views.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

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

log = Logger(namespace="imapd.net")

DEFAULT_POLL_INTERVAL = 0.5


class ImapServerFactory(ServerFactory):
    """Builds IMAP connections. ``clock`` and ``runtime`` default to the
    global reactor; tests pass a ``task.Clock`` and an ``InlineRuntime``."""

    protocol = ImapServerProtocol
    noisy = False  # our own "listening on" line replaces Twisted's

    def __init__(
        self,
        config: Config,
        users: UserDatabase,
        store: Any = None,
        *,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        registry: Registry | None = None,
        features: Features | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        tls: ServerTLS | None = None,
    ) -> None:
        self.config = config
        self.users = users
        self.store = store
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
        self.poll_interval = poll_interval
        self._poller: LoopingCall | None = None
        self._store_closed = False

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
            continuation_reader=continuation_reader, store=self.store,
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

    # --- store change polling ------------------------------------------------

    def startFactory(self) -> None:
        poll = getattr(self.store, "poll_changes", None)
        if poll is None or self._poller is not None:
            return
        self._poller = LoopingCall(self._poll_once)
        self._poller.clock = self.clock  # type: ignore[assignment]
        self._poller.start(self.poll_interval, now=False)

    def stopFactory(self) -> None:
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None

    async def close_store(self) -> None:
        """Stop polling and close the store (server shutdown, after the
        listening ports are closed). Idempotent; errors are logged."""
        self.stopFactory()
        close = getattr(self.store, "close", None)
        if close is None or self._store_closed:
            return
        self._store_closed = True
        try:
            await close()
        except Exception:
            log.failure("closing the mail store failed")
        else:
            log.info("imapd: mail store closed")

    def _poll_once(self) -> Deferred[None]:
        """One ``await store.poll_changes()``; errors are logged, never stop
        the loop (LoopingCall waits for this Deferred, so polls never overlap)."""
        d: Deferred[None] = Deferred.fromCoroutine(self.store.poll_changes())

        def logged(failure: Failure) -> None:
            log.failure("store.poll_changes failed", failure)

        d.addErrback(logged)
        return d

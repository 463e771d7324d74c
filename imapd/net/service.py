"""Listening: one Twisted service that binds every ``--imap`` endpoint.

Shared by ``imapd serve`` and ``twistd imapd``. Binding happens in
``startService``; a failure to bind raises ``ListenError`` with one line a
person can act on (e.g. port 143 needs privileges: try ``--imap tcp:1143``).
Each bound port is logged as ``imapd: listening on IMAP <host>:<port>`` with
the real port, so ``tcp:0`` users (tests) learn it from the log; implicit-TLS
ports (``--imaps``, RFC 8314 §3.3) as ``listening on IMAPS <host>:<port>``.
They are plain TCP endpoints wrapped in Twisted's TLS layer with the
factory's reloadable ``ServerTLS``, so SIGHUP reloads apply to them too.
"""

from __future__ import annotations

import errno
from typing import Any, Awaitable, Callable, cast

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from imapd.net.imap_factory import ImapServerFactory
from imapd.net.peer import format_peer

log = Logger(namespace="imapd")

SUGGESTED_ENDPOINT = "tcp:1143"


class ListenError(Exception):
    """Could not listen on an endpoint; ``str()`` is the one-line message."""


def describe_listen_failure(description: str, failure: Failure) -> str:
    """One clear line for a failed bind."""
    error = failure.value
    socket_error = getattr(error, "socketError", None)
    code = getattr(socket_error, "errno", None)
    if isinstance(error, CannotListenError) and code in (errno.EACCES, errno.EPERM):
        return (
            f"imapd: cannot listen on {description}: permission denied "
            f"(ports below 1024 need root or CAP_NET_BIND_SERVICE); "
            f"try --imap {SUGGESTED_ENDPOINT}"
        )
    if isinstance(error, CannotListenError) and code == errno.EADDRINUSE:
        return f"imapd: cannot listen on {description}: address already in use"
    reason = socket_error if socket_error is not None else error
    return f"imapd: cannot listen on {description}: {reason}"


class ImapdService(service.Service):
    """Listens with ``factory`` on each endpoint description. ``close``
    closes the storage once the ports are closed (default: the factory's
    ``close_store``); the composition root (``imapd.app``) passes it."""

    def __init__(
        self, factory: ImapServerFactory, endpoints: list[str], reactor: Any,
        tls_endpoints: list[str] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.factory = factory
        self._close = close
        self.endpoint_descriptions = list(endpoints)
        self.tls_endpoint_descriptions = list(tls_endpoints or [])
        if self.tls_endpoint_descriptions and factory.tls is None:
            raise ValueError("implicit TLS endpoints need the factory's TLS")
        self.reactor = reactor
        self.ports: list[IListeningPort] = []

    def startService(self) -> None:
        """Bind every endpoint. Raises ``ListenError`` (after closing any
        port already bound) if one fails at once, as TCP binds do."""
        super().startService()  # type: ignore[no-untyped-call]
        failures: list[str] = []
        plain: list[tuple[str, str, Any]] = [
            (d, d, self.factory) for d in self.endpoint_descriptions]
        if self.tls_endpoint_descriptions:
            from imapd.net.tls import tcp_description_for_implicit_tls

            wrapped = TLSMemoryBIOFactory(cast(Any, self.factory.tls), False, cast(Any, self.factory))
            wrapped.noisy = False
            plain += [
                (d, tcp_description_for_implicit_tls(d), wrapped)
                for d in self.tls_endpoint_descriptions
            ]
        for shown, description, factory in plain:
            endpoint = serverFromString(self.reactor, description)  # type: ignore[no-untyped-call]
            d: Deferred[IListeningPort] = endpoint.listen(factory)
            kind = "IMAP" if factory is self.factory else "IMAPS"
            d.addCallbacks(self._listening, self._failed, callbackArgs=(kind,),
                           errbackArgs=(shown, failures))
        if failures:
            self.stopService()
            raise ListenError(failures[0])

    def _listening(self, port: IListeningPort, kind: str) -> None:
        self.ports.append(port)
        address = format_peer(cast(Any, port).getHost())
        log.info("imapd: listening on {kind} {address}", kind=kind, address=address)

    def _failed(self, failure: Failure, description: str, failures: list[str]) -> None:
        message = describe_listen_failure(description, failure)
        failures.append(message)
        log.error("{message}", message=message)
        if self.running and len(failures) == 1 and self.ports == []:
            return  # synchronous failure: startService raises
        # An endpoint that failed later (asynchronously): nothing sensible to
        # serve half-configured, so stop.
        self.reactor.callLater(0, self.reactor.stop)

    def stopService(self) -> Deferred[Any]:
        """Say BYE to every client, stop listening, then close the storage
        (every acknowledged change is already durable; closing checkpoints
        the WAL)."""
        super().stopService()  # type: ignore[no-untyped-call]
        self.factory.shutdown_connections()
        ports, self.ports = self.ports, []
        stopping = [cast(Any, port).stopListening() for port in ports]
        stopped: Deferred[Any] = DeferredList([d for d in stopping if d is not None])
        stopped.addCallback(lambda _: Deferred.fromCoroutine(self._close_storage()))
        return stopped

    async def _close_storage(self) -> None:
        if self._close is not None:
            await self._close()
        else:
            await self.factory.close_store()

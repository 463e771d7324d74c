"""Listening: one Twisted service that binds every endpoint of every
protocol (``--imap``, ``--imaps``; POP3 and LMTP next), each a ``Listener``.

Shared by ``imapd serve`` and ``twistd imapd`` (``imapd.app`` builds it).
Binding happens in
``startService``; a failure to bind raises ``ListenError`` with one line a
person can act on (e.g. port 143 needs privileges: try ``--imap tcp:1143``).
Each bound port is logged as ``imapd: listening on <KIND> <host>:<port>``
(``IMAP``) with the real port, so ``tcp:0`` users (tests) learn it from the
log; implicit-TLS ports (``--imaps``, RFC 8314 §3.3) as ``listening on IMAPS
<host>:<port>``. They are plain TCP endpoints wrapped in Twisted's TLS layer
with the server's reloadable ``ServerTLS``, so SIGHUP reloads apply to them
too.

Every TCP and UNIX endpoint listens with the service's ``backlog``
(``--listen-backlog``, default 1024, capped by the kernel's
``net.core.somaxconn``) unless its description names one (``backlog=``).
Twisted's default is 50: when a burst of connects fills the kernel's accept
queue, Linux drops the handshake's final ACK, so clients believe they are
connected while the server never accepts them, and wait for a greeting that
never comes (issue 13: 5,000 connects, ~4,000 never greeted).
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence, cast

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from imapd.core.config import Limits
from imapd.net.peer import ProxyHeaderFactory, format_peer, split_proxy

log = Logger(namespace="imapd")

SUGGESTED_ENDPOINT = "tcp:1143"


DEFAULT_BACKLOG = Limits().listen_backlog
SOMAXCONN_PATH = "/proc/sys/net/core/somaxconn"
# Endpoint types whose parsers take ``backlog=`` (Twisted's tcp, tcp6, ssl
# and unix endpoint descriptions).
_BACKLOG_KINDS = frozenset({"tcp", "tcp6", "ssl", "unix"})
# Fields of a description are separated by colons not escaped with "\".
_FIELD_SEPARATOR = re.compile(r"(?<!\\):")


def kernel_backlog_cap(path: str = SOMAXCONN_PATH) -> int | None:
    """The kernel's cap on listen backlogs (Linux ``net.core.somaxconn``);
    None where it cannot be read (other systems cap silently)."""
    try:
        with open(path, "rb") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def effective_backlog(requested: int, cap: int | None) -> int:
    """``requested``, at most ``cap`` (the kernel would cap it anyway; this
    way the log says what is in force), at least 1."""
    if cap is not None and cap > 0:
        requested = min(requested, cap)
    return max(1, requested)


def with_backlog(description: str, backlog: int) -> str:
    """``description`` with ``backlog=N`` added, for TCP and UNIX
    endpoints that do not name a backlog themselves; others unchanged."""
    fields = _FIELD_SEPARATOR.split(description)
    if fields[0].lower() not in _BACKLOG_KINDS or len(fields) < 2:
        return description
    if any(field.startswith("backlog=") for field in fields[1:]):
        return description  # the operator's own choice wins
    return f"{description}:backlog={backlog}"


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


class Server(Protocol):
    """What the service asks of each protocol's factory at shutdown."""

    def shutdown_connections(self) -> None:
        """Say goodbye to every client (IMAP: ``* BYE``, RFC 3501 §7.1.5)."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One endpoint: ``kind`` names it in the log (``IMAP``, ``IMAPS``);
    ``description`` is the Twisted endpoint as the operator wrote it;
    ``tls``: implicit TLS with this context factory (RFC 8314 §3.3), the
    endpoint then being the plain TCP one
    (``tls.tcp_description_for_implicit_tls``)."""

    kind: str
    description: str
    factory: Any
    tls: object | None = None


def imap_listeners(
    factory: Any, endpoints: Sequence[str], tls_endpoints: Sequence[str] = ()
) -> list[Listener]:
    """IMAP on ``endpoints`` and IMAPS on ``tls_endpoints`` with the
    factory's certificate."""
    if tls_endpoints and factory.tls is None:
        raise ValueError("implicit TLS endpoints need the factory's TLS")
    return [Listener("IMAP", d, factory) for d in endpoints] + [
        Listener("IMAPS", d, factory, tls=factory.tls) for d in tls_endpoints]


def bottom_description(description: str, implicit_tls: bool, backlog: int) -> str:
    """The endpoint that binds the socket of ``description``: without
    the ``haproxy:`` prefix (``peer.split_proxy``; the service wraps the
    factory itself), as plain TCP for implicit TLS (the service adds TLS,
    so SIGHUP reloads apply), with the service's backlog."""
    description = split_proxy(description)[1]
    if implicit_tls:
        from imapd.net.tls import tcp_description_for_implicit_tls

        description = tcp_description_for_implicit_tls(description)
    return with_backlog(description, backlog)


def endpoint_problem(description: str, implicit_tls: bool) -> str | None:
    """Why ``description`` is not an endpoint imapd can listen on (None:
    it is), found by parsing it the way ``startService`` will, so a typo
    is one line at start-up instead of a traceback from deep in Twisted.
    Parsing builds an endpoint object only; nothing is bound."""
    try:
        serverFromString(None, bottom_description(description, implicit_tls, DEFAULT_BACKLOG))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, KeyError, IndexError) as error:
        text = str(error)
        if isinstance(error, IndexError) and description.lower().startswith("systemd:"):
            text = "no such socket passed by systemd"
        return text or type(error).__name__
    return None


def wrap_factory(listener: Listener, reactor: Any) -> Any:
    """The listener's factory with TLS (implicit TLS, RFC 8314 §3.3) and,
    outside it, the PROXY header reader: HAProxy sends the header in the
    clear before the TLS handshake it passes through."""
    factory = listener.factory
    if listener.tls is not None:
        factory = TLSMemoryBIOFactory(cast(Any, listener.tls), False, factory)
        factory.noisy = False
    if split_proxy(listener.description)[0]:
        factory = ProxyHeaderFactory(factory, reactor)
    return factory


def adopt_port(reactor: Any, fd: int, factory: Any) -> IListeningPort:
    """Listen on an inherited, already listening socket (Twisted dups it;
    ``fd`` is closed here)."""
    probe = socket.socket(fileno=fd)  # learns the address family
    family = probe.family
    try:
        if family == socket.AF_UNIX:  # the parent owns the path: leave it be
            from imapd.net.workers import adopt_unix_port

            return adopt_unix_port(reactor, fd, factory)
        port: IListeningPort = reactor.adoptStreamPort(fd, family, factory)
    finally:
        probe.close()
    return port


class ListeningService(service.Service):
    """Binds every listener at start (with ``backlog``, see the module
    docstring); at stop, says goodbye through each of ``servers``, closes
    the ports, then awaits ``close`` (the storage)."""

    def __init__(
        self, listeners: Sequence[Listener], reactor: Any, *,
        servers: Sequence[Server] = (),
        close: Callable[[], Awaitable[None]] | None = None,
        backlog: int = DEFAULT_BACKLOG,
        inherited: Sequence[int] | None = None,
    ) -> None:
        self.listeners = list(listeners)
        # Listening sockets bound by a parent (``imapd serve --workers``,
        # ``imapd.net.workers``), one descriptor per listener in order:
        # adopted instead of bound.
        self.inherited = inherited
        self.servers = list(servers)
        self._close = close
        self.reactor = reactor
        self.backlog = backlog
        self.ports: list[IListeningPort] = []

    def startService(self) -> None:
        """Bind every endpoint. Raises ``ListenError`` (after closing any
        port already bound) if one fails at once, as TCP binds do."""
        super().startService()  # type: ignore[no-untyped-call]
        failures: list[str] = []
        cap = kernel_backlog_cap()
        backlog = effective_backlog(self.backlog, cap)
        if backlog < self.backlog:
            log.info("imapd: listen backlog {backlog} (net.core.somaxconn caps {asked})",
                     backlog=backlog, asked=self.backlog)
        inherited = list(self.inherited) if self.inherited is not None else None
        for listener in self.listeners:
            factory = wrap_factory(listener, self.reactor)
            kind = listener.kind
            if split_proxy(listener.description)[0]:
                kind += " (PROXY protocol)"
            if inherited is not None:
                self._listening(adopt_port(self.reactor, inherited.pop(0), factory), kind,
                                "sharing")
                continue
            description = bottom_description(listener.description, listener.tls is not None, backlog)
            endpoint = serverFromString(self.reactor, description)  # type: ignore[no-untyped-call]
            d: Deferred[IListeningPort] = endpoint.listen(factory)
            d.addCallbacks(self._listening, self._failed, callbackArgs=(kind,),
                           errbackArgs=(listener.description, failures))
        if failures:
            self.stopService()
            raise ListenError(failures[0])

    def _listening(self, port: IListeningPort, kind: str, verb: str = "listening on") -> None:
        """Log the bound port. A worker's adopted port says ``sharing``: the
        ``--workers`` parent says ``listening on`` once all workers are, so
        whoever waits for that line can reach every one."""
        self.ports.append(port)
        address = format_peer(cast(Any, port).getHost())
        name, _, extra = kind.partition(" ")
        log.info("imapd: {verb} {kind} {address}{extra}", verb=verb, kind=name, address=address,
                 extra=f" {extra}" if extra else "")

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
        """Say goodbye to every client, stop listening, then close the
        storage (every acknowledged change is already durable; closing
        checkpoints the WAL)."""
        super().stopService()  # type: ignore[no-untyped-call]
        for server in self.servers:
            server.shutdown_connections()
        ports, self.ports = self.ports, []
        stopping = [cast(Any, port).stopListening() for port in ports]
        stopped: Deferred[Any] = DeferredList([d for d in stopping if d is not None])
        stopped.addCallback(lambda _: Deferred.fromCoroutine(self._close_storage()))
        return stopped

    async def _close_storage(self) -> None:
        if self._close is not None:
            await self._close()

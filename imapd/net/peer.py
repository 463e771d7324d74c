"""Facts about a connection's peer and the limits that follow from it:
how it is logged, whether it is local (plaintext passwords allowed), and
the framer limits that apply before login. Split from ``protocol`` so that
module stays about the connection's life cycle."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any, cast

from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import IProtocol, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper, HAProxyWrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy  # type: ignore[import-untyped]

from imapd.core.config import Limits


def format_peer(address: object) -> str:
    """How logs and the LMTP ``Received:`` field name a peer: ``host:port``,
    ``[v6]:port``, or ``unix`` / ``unix:PATH`` for a local socket's client
    (which rarely has a name of its own)."""
    if isinstance(address, UNIXAddress):
        raw: object = address.name
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        return f"unix:{name}" if name else "unix"
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def peer_host(address: object) -> str:
    """The address alone (no port), the key of per-address limits."""
    if isinstance(address, UNIXAddress):
        return "unix"
    return str(getattr(address, "host", address))


def preauth_limits(limits: Limits) -> Limits:
    """The framer's limits before login: literals up to
    ``max_preauth_literal`` and commands with room for two of them (LOGIN
    name and password) besides the line."""
    literal = min(limits.max_literal, limits.max_preauth_literal)
    command = min(limits.max_command, limits.max_line + 2 * literal + 16)
    # Never spooled: unauthenticated clients create no files.
    spool = max(limits.literal_spool_threshold, literal)
    return dataclasses.replace(
        limits, max_literal=literal, max_command=command, literal_spool_threshold=spool)


def is_local(address: object) -> bool:
    """Loopback or a UNIX socket: nobody on a network can read this
    connection, so plaintext passwords are acceptable (issue 6 policy)."""
    if isinstance(address, UNIXAddress):
        return True
    try:
        ip = ipaddress.ip_address(str(getattr(address, "host", "")).split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def set_no_delay(transport: object) -> None:
    """TCP_NODELAY: Twisted sends what one reactor turn wrote together,
    never a trickle of tiny segments, so Nagle's algorithm only adds
    delay: a synchronizing literal's ``+`` still unacknowledged holds back
    the tagged OK until the client's delayed ACK (up to 40 ms per APPEND).
    Not every transport is TCP."""
    set_flag = getattr(transport, "setTcpNoDelay", None)
    if set_flag is not None:
        try:
            set_flag(True)
        except OSError:
            pass  # not a TCP socket after all (e.g. a socketpair)


# --- PROXY protocol (HAProxy) ----------------------------------------------------

# A proxy sends its header at once; a connection that sends none within this
# many seconds is closed (nothing else bounds it: the IMAP timers start
# only once the header told who the client is).
PROXY_HEADER_TIMEOUT = 10.0
PROXY_PREFIX = "haproxy:"


def split_proxy(description: str) -> tuple[bool, str]:
    """``haproxy:tcp:143`` -> (True, ``tcp:143``): the endpoint expects a
    PROXY protocol header (v1 or v2) before each connection's own bytes."""
    if description[:len(PROXY_PREFIX)].lower() == PROXY_PREFIX:
        return True, description[len(PROXY_PREFIX):]
    return False, description


class ProxyHeaderProtocol(HAProxyProtocolWrapper):
    """Reads the PROXY header (v1 text or v2 binary, HAProxy's "PROXY
    protocol" specification) before the wrapped protocol exists for the
    client: its ``connectionMade`` runs only after the header, so the
    session's peer (``getPeer``: logs, penalties, per-address limits, the
    loopback plaintext rule) is the real client, and the greeting follows
    the header. Twisted's own wrapper starts the wrapped protocol at once,
    while ``getPeer`` is still the proxy's address. A malformed header, or
    none within ``PROXY_HEADER_TIMEOUT``, closes the connection. A v2
    ``LOCAL`` header (the proxy's health check) leaves the proxy's address."""

    def __init__(self, factory: Any, wrapped: IProtocol) -> None:
        super().__init__(factory, wrapped)
        self._buffer = b""
        self._deadline: Any = None  # the header's IDelayedCall

    def makeConnection(self, transport: ITransport) -> None:
        # ProtocolWrapper.makeConnection without starting the wrapped protocol.
        directlyProvides(self, providedBy(transport))
        cast(Any, Protocol).makeConnection(self, transport)
        factory: Any = self.factory
        factory.registerProtocol(self)
        self._deadline = factory.clock.callLater(PROXY_HEADER_TIMEOUT, self._give_up)

    def _wrapped(self) -> Any:
        return self.wrappedProtocol

    def dataReceived(self, data: bytes) -> None:
        if self._proxyInfo is not None:
            self._wrapped().dataReceived(data)
            return
        self._buffer += data
        if self._parser is None:
            kind = _header_kind(self._buffer)
            if kind is None:
                return  # not enough bytes yet to tell v1 from v2
            if kind == "":
                self._give_up()
                return
            self._parser = V2Parser() if kind == "v2" else V1Parser()
        buffered, self._buffer = self._buffer, b""
        try:
            info, remaining = self._parser.feed(buffered)
        except InvalidProxyHeader:
            self._give_up()
            return
        if info is None:
            return
        self._cancel_deadline()
        self._proxyInfo = info
        self._wrapped().makeConnection(self)
        if remaining:
            self._wrapped().dataReceived(remaining)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        if self._proxyInfo is not None:
            cast(Any, super()).connectionLost(reason)
        else:
            cast(Any, self.factory).unregisterProtocol(self)

    def _give_up(self) -> None:
        self._deadline = None
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


def _header_kind(data: bytes) -> str | None:
    """"v1", "v2", "" (neither: refuse) or None (too few bytes to tell)."""
    v2, v1 = V2Parser.PREFIX, V1Parser.PROXYSTR
    if data[:len(v2)] == v2[:len(data)] and len(data) < 13:
        return None
    if data.startswith(v2):
        return "v2" if data[12] & 0xF0 == 0x20 else ""
    if data[:len(v1)] == v1[:len(data)] and len(data) < len(v1):
        return None
    return "v1" if data.startswith(v1) else ""


class ProxyHeaderFactory(HAProxyWrappingFactory):
    """Wraps a server factory: every connection starts with a PROXY header
    (``ProxyHeaderProtocol``). ``clock`` times the header."""

    protocol = ProxyHeaderProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self, wrapped: Any, clock: Any) -> None:
        cast(Any, super()).__init__(wrapped)
        self.clock = clock

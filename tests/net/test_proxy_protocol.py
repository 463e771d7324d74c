"""``--imap haproxy:tcp:PORT``: the PROXY protocol header (HAProxy's
specification, v1 text and v2 binary) names the real client, and the
session uses that address for its logs, the per-address connection limit
and the loopback plaintext rule (a remote client behind a local proxy is
not local). Hand-written headers over real sockets to a real server.
"""

from __future__ import annotations

import re
import socket
import struct
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server
from tests.support.waiting import wait_until

PROXIED = re.compile(r"listening on IMAP 127\.0\.0\.1:(\d+) \(PROXY protocol\)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    args = ["--imap", "haproxy:tcp:0:interface=127.0.0.1", "--log-level", "debug",
            "--max-connections-per-ip", "1"]
    with running_server(tmp_path_factory.mktemp("proxy"), extra_args=args) as running:
        yield running


def proxied_port(server: RunningServer) -> int:
    match = wait_until(lambda: PROXIED.search(server.log()), "the PROXY port listening")
    return int(match.group(1))


def v1(source: str, port: int = 51234) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {port} 143\r\n".encode("ascii")


def v2(source: str, port: int = 51234) -> bytes:
    """A v2 PROXY command for TCP over IPv4 (signature, version 2 | PROXY,
    AF_INET | STREAM, length 12, addresses, ports)."""
    body = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 143)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def through_proxy(server: RunningServer, header: bytes, *, split: int | None = None) -> RawClient:
    client = RawClient("127.0.0.1", proxied_port(server), timeout=30)
    if split is None:
        client.send(header)
    else:  # a header that arrives in pieces
        client.send(header[:split])
        client.send(header[split:])
    return client


def capability(client: RawClient) -> bytes:
    client.send(b"C CAPABILITY\r\n")
    return b"".join(client.until_tagged(b"C"))


def test_the_session_peer_is_the_client_the_header_names(server: RunningServer) -> None:
    client = through_proxy(server, v1("203.0.113.7"), split=3)
    assert client.line().startswith(b"* OK")
    # A remote client: plaintext login refused (RFC 3501 §6.2.3), although
    # the TCP peer (the proxy) is on loopback.
    assert b"LOGINDISABLED" in capability(client)
    client.close()
    wait_until(lambda: "connected from 203.0.113.7:51234" in server.log(), "the real peer logged")

    local = through_proxy(server, v2("127.0.0.1", 40000))
    assert local.line().startswith(b"* OK")
    assert b"LOGINDISABLED" not in capability(local)
    local.send(b"L LOGIN alice wonderland\r\n")
    assert local.until_tagged(b"L")[-1].startswith(b"L OK")
    local.close()


def test_the_per_address_limit_counts_real_clients(server: RunningServer) -> None:
    first = through_proxy(server, v1("198.51.100.1"))
    second = through_proxy(server, v2("198.51.100.2"))
    assert first.line().startswith(b"* OK") and second.line().startswith(b"* OK")
    third = through_proxy(server, v1("198.51.100.1", 60000))  # limit is 1 per address
    assert third.line().startswith(b"* BYE")
    for client in (first, second, third):
        client.close()


def test_no_greeting_without_a_valid_header(server: RunningServer) -> None:
    for garbage in (b"A1 CAPABILITY\r\n", b"PROXY TCP4 not-an-address\r\n"):
        client = through_proxy(server, garbage)
        with pytest.raises((EOFError, ConnectionResetError)):
            client.line()
        client.close()


def test_plain_endpoints_are_unchanged(tmp_path: Path, server: RunningServer) -> None:
    client = RawClient.for_server(server, timeout=30)  # the plain --imap endpoint
    assert client.line().startswith(b"* OK")
    assert b"LOGINDISABLED" not in capability(client)
    client.close()


def test_implicit_tls_behind_a_proxy(tmp_path: Path) -> None:
    """``--imaps haproxy:ssl:PORT``: the header in the clear, then TLS."""
    import ssl

    args = ["--imaps", "haproxy:ssl:0:interface=127.0.0.1", "--log-level", "debug"]
    with running_server(tmp_path, extra_args=args) as running:
        match = wait_until(lambda: re.search(
            r"listening on IMAPS 127\.0\.0\.1:(\d+) \(PROXY protocol\)", running.log()),
            "the IMAPS port listening")
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=30) as raw:
            raw.sendall(v1("192.0.2.55"))
            with context.wrap_socket(raw) as tls:
                assert tls.recv(4096).startswith(b"* OK")
        wait_until(lambda: "connected from 192.0.2.55:51234" in running.log(), "the peer logged")


def test_a_connection_without_a_header_is_closed_after_the_timeout() -> None:
    """Nothing else bounds it: the IMAP timers start after the header."""
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from imapd.net.peer import PROXY_HEADER_TIMEOUT, ProxyHeaderFactory

    started: list[object] = []

    class Recorder(Protocol):
        def connectionMade(self) -> None:
            started.append(self.transport)

    clock = Clock()
    factory = ProxyHeaderFactory(Factory.forProtocol(Recorder), clock)
    for header in (b"", b"PROXY TC"):  # silent, or a header that stalls half-way
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(header)
        clock.advance(PROXY_HEADER_TIMEOUT - 0.1)
        assert not transport.disconnecting and started == []
        clock.advance(0.1)
        assert transport.disconnecting  # aborted
    complete = factory.buildProtocol(None)
    complete.makeConnection(StringTransport())
    complete.dataReceived(v1("192.0.2.1"))
    clock.advance(PROXY_HEADER_TIMEOUT * 2)
    assert len(started) == 1 and started[0].getPeer().host == "192.0.2.1"  # type: ignore[attr-defined]

"""How peers are named in logs and in the LMTP Received field."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from imapd.net.peer import format_peer, peer_host


def test_tcp_peers() -> None:
    assert format_peer(IPv4Address("TCP", "127.0.0.1", 4321)) == "127.0.0.1:4321"
    assert format_peer(IPv6Address("TCP", "::1", 4321)) == "[::1]:4321"


def test_unix_socket_peers_are_named_as_such() -> None:
    """A UNIX socket's client has no name: "unix", not "UNIXAddress(None)"."""
    assert format_peer(UNIXAddress(None)) == "unix"
    assert format_peer(UNIXAddress(b"/run/imapd/lmtp")) == "unix:/run/imapd/lmtp"
    assert peer_host(UNIXAddress(None)) == "unix"

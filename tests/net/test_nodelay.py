"""The server turns Nagle's algorithm off on TCP connections (replies are
written whole; waiting for an ACK only delays them), and still serves
transports that are not TCP or refuse the option."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.core.config import Config, Limits
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.runtime import InlineRuntime
from tests.support.context import make_users


PEER = IPv4Address("TCP", "127.0.0.1", 40001)


class TcpTransport(StringTransport):
    def __init__(self, refuse: bool = False) -> None:
        super().__init__(peerAddress=PEER)  # type: ignore[no-untyped-call]
        self.refuse = refuse
        self.no_delay: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        if self.refuse:
            raise OSError(95, "Operation not supported")
        self.no_delay.append(enabled)


def connect(tmp_path: Path, transport: StringTransport) -> bytes:
    users = make_users(tmp_path / "data", alice="wonderland")
    clock = Clock()
    factory = ImapServerFactory(
        Config(data_dir=users.path.parent, limits=Limits()), users, None,
        clock=clock, runtime=InlineRuntime(clock))
    protocol = factory.buildProtocol(cast(Any, PEER))
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
    greeting: bytes = transport.value()  # type: ignore[no-untyped-call]
    return greeting


def test_tcp_connections_have_no_delay(tmp_path: Path) -> None:
    transport = TcpTransport()
    assert connect(tmp_path, transport).startswith(b"* OK ")
    assert transport.no_delay == [True]


@pytest.mark.parametrize("transport", [
    TcpTransport(refuse=True),
    StringTransport(peerAddress=PEER),  # type: ignore[no-untyped-call]
])
def test_other_transports_are_served_as_before(tmp_path: Path, transport: StringTransport) -> None:
    assert connect(tmp_path, transport).startswith(b"* OK ")

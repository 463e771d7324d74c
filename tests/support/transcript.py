"""An in-process server connection over ``StringTransport`` with a
``task.Clock``: deterministic, byte-exact protocol transcripts.

    conv = Conversation(users)
    assert conv.read() == b"* OK [CAPABILITY IMAP4rev1 ...] imapd ready\\r\\n"
    assert conv.exchange(b"a NOOP\\r\\n") == b"a OK NOOP completed\\r\\n"
    conv.clock.advance(60)          # timeouts
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.core.config import Config, Limits
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.imap_connection import ImapServerProtocol
from imapd.net.runtime import InlineRuntime
from imapd.accounts.users import UserDatabase


class Conversation:
    """One client connection to a fresh in-process server."""

    def __init__(
        self,
        users: UserDatabase,
        limits: Limits | None = None,
        *,
        store: Any = None,
        factory: ImapServerFactory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.factory = factory or ImapServerFactory(
            Config(data_dir=users.path.parent, limits=limits or Limits()),
            users, store, clock=self.clock, runtime=InlineRuntime(self.clock),
        )
        peer = IPv4Address("TCP", "127.0.0.1", 40001)
        self.transport = StringTransport(peerAddress=peer)  # type: ignore[no-untyped-call]
        self.protocol: ImapServerProtocol = self.factory.buildProtocol(cast(Any, peer))
        self.protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def read(self) -> bytes:
        """Everything written since the last read."""
        value: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        self.transport.clear()  # type: ignore[no-untyped-call]
        return value

    def exchange(self, data: bytes) -> bytes:
        self.send(data)
        return self.read()

    @property
    def closing(self) -> bool:
        """The server asked to close the connection."""
        return bool(self.transport.disconnecting)

    def disconnect(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]

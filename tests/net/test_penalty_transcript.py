"""The login penalty through IMAP LOGIN on a ``task.Clock`` (issue 13,
item 5), with the default limits (2 s doubling to 15 s, 30 s decay): the
users behind one address (NAT, webmail) no longer all wait 15 s per login
for an hour after one of them mistyped a password four times."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.accounts.users import UserDatabase
from imapd.core.config import Config, Limits
from imapd.net.imap_connection import ImapServerProtocol
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.runtime import InlineRuntime

NAT = "127.0.0.50"  # loopback, so plaintext LOGIN is allowed; one shared address
FAILED = b"NO [AUTHENTICATIONFAILED] Authentication failed\r\n"


def make_factory(users: UserDatabase, clock: Clock) -> ImapServerFactory:
    config = Config(data_dir=users.path.parent, limits=Limits())
    return ImapServerFactory(config, users, None, clock=clock, runtime=InlineRuntime(clock))


def login(factory: ImapServerFactory, clock: Clock, host: str, user: str, password: str) -> tuple[bytes, float]:
    """LOGIN on a new connection from ``host``: the reply and how long (on
    the clock) it took, advancing in 0.5 s steps up to a minute."""
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 50000))  # type: ignore[no-untyped-call]
    protocol: ImapServerProtocol = factory.buildProtocol(cast(Any, None))
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
    transport.clear()  # type: ignore[no-untyped-call]
    protocol.dataReceived(f"t LOGIN {user} {password}\r\n".encode())
    waited = 0.0
    while not transport.value() and waited < 60:  # type: ignore[no-untyped-call]
        clock.advance(0.5)
        waited += 0.5
    reply: bytes = transport.value()  # type: ignore[no-untyped-call]
    protocol.connectionLost(cast(Any, None))
    return reply, waited


def mistype_four_times(factory: ImapServerFactory, clock: Clock, host: str) -> None:
    for _ in range(4):
        reply, _ = login(factory, clock, host, "alice", "typo")
        assert reply == b"t " + FAILED


def test_a_success_clears_the_shared_address(users: UserDatabase) -> None:
    clock = Clock()
    factory = make_factory(users, clock)
    mistype_four_times(factory, clock, NAT)
    # The next login from the address waits out its penalty (checked
    # before the password, the right one included) ...
    reply, waited = login(factory, clock, NAT, "bob", "builder")
    assert reply.startswith(b"t OK") and waited == 15.0
    # ... and clears it: bob's next device, and anyone else there, at once.
    reply, waited = login(factory, clock, NAT, "bob", "builder")
    assert reply.startswith(b"t OK") and waited == 0.0
    # alice's own name is still penalised, from anywhere, until she succeeds.
    reply, waited = login(factory, clock, "127.0.0.60", "alice", "wonderland")
    assert reply.startswith(b"t OK") and waited == 15.0


def test_the_penalty_decays_in_half_a_minute(users: UserDatabase) -> None:
    clock = Clock()
    factory = make_factory(users, clock)
    mistype_four_times(factory, clock, NAT)
    clock.advance(30.0)
    reply, waited = login(factory, clock, NAT, "bob", "builder")
    assert reply.startswith(b"t OK") and waited == 0.0


def test_another_address_never_waits(users: UserDatabase) -> None:
    clock = Clock()
    factory = make_factory(users, clock)
    mistype_four_times(factory, clock, NAT)
    reply, waited = login(factory, clock, "127.0.0.70", "bob", "builder")
    assert reply.startswith(b"t OK") and waited == 0.0

"""SCRAM over IMAP AUTHENTICATE (RFC 3501 §6.2.2, RFC 5802, RFC 4959),
byte for byte, in process (StringTransport + task.Clock).

The client side is computed here from RFC 5802 §3 (``tests/security/
test_scram.py``'s ``Credentials``, itself checked against RFC 7677's
example); only the server nonce is read back from the server-first.
"""

from __future__ import annotations

import base64
from typing import Any, cast

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.core.config import Config, Limits
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.imap_connection import ImapServerProtocol
from imapd.net.runtime import InlineRuntime
from imapd.accounts.users import UserDatabase
from tests.security.test_scram import Credentials
from tests.support import capabilities as caps


class Peer:
    """One loopback client of an in-process server without TLS."""

    def __init__(self, users: UserDatabase, clock: Clock) -> None:
        config = Config(data_dir=users.path.parent, limits=Limits(failed_login_delay=1.0))
        factory = ImapServerFactory(config, users, None, clock=clock, runtime=InlineRuntime(clock))
        address = IPv4Address("TCP", "127.0.0.1", 50000)
        self.transport = StringTransport(peerAddress=address)  # type: ignore[no-untyped-call]
        self.protocol: ImapServerProtocol = factory.buildProtocol(cast(Any, address))
        self.protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]
        self.read()

    def read(self) -> bytes:
        value: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        self.transport.clear()  # type: ignore[no-untyped-call]
        return value

    def send(self, data: bytes) -> bytes:
        self.protocol.dataReceived(data)
        return self.read()


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def challenge(line: bytes) -> str:
    assert line.startswith(b"+ ") and line.endswith(b"\r\n"), line
    return base64.b64decode(line[2:-2]).decode()


def alice(users: UserDatabase) -> Credentials:
    """alice/wonderland with the salt and count the server stored."""
    keys = users.scram_keys("alice")
    assert keys is not None
    return Credentials(b"wonderland", keys.salt, keys.iterations)


LOGGED_IN = b"a OK [CAPABILITY IMAP4rev1 LITERAL+ " + caps.EVERY_STATE + b" COMPRESS=DEFLATE] Logged in\r\n"


@pytest.mark.parametrize("initial_response", [True, False])
def test_mutt_style_exchange_with_authzid_logs_in(users: UserDatabase, initial_response: bool) -> None:
    """What mutt (GNU SASL) sends, with SASL-IR and without."""
    peer = Peer(users, Clock())
    header, bare = "n,a=alice,", "n=alice,r=Vp2Ejz5HcnQHPHnS9X8ZgZ6K"
    if initial_response:
        out = peer.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64(header + bare) + b"\r\n")
    else:
        assert peer.send(b"a AUTHENTICATE SCRAM-SHA-256\r\n") == b"+ \r\n"
        out = peer.send(b64(header + bare) + b"\r\n")
    server_first = challenge(out)
    assert server_first.startswith("r=Vp2Ejz5HcnQHPHnS9X8ZgZ6K")
    final, verifier = alice(users).final(bare, server_first, header.encode())
    assert peer.send(b64(final) + b"\r\n") == b"+ " + b64(verifier) + b"\r\n"
    assert peer.send(b"\r\n") == LOGGED_IN
    assert peer.protocol.session.user == "alice"


def test_other_authzid_gets_authorizationfailed(users: UserDatabase) -> None:
    peer = Peer(users, Clock())
    out = peer.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64("n,a=bob,n=alice,r=abcdef") + b"\r\n")
    assert out == b"a NO [AUTHORIZATIONFAILED] Authorization identity not allowed\r\n"
    assert peer.send(b"b NOOP\r\n") == b"b OK NOOP completed\r\n"  # not logged in, no penalty wait


@pytest.mark.parametrize("message,answer", [
    ("x,,n=alice,r=abc", b"a BAD Malformed SCRAM message: GS2 header must start with n, y or p=\r\n"),
    ("n,alice,n=alice,r=abc",
     b"a BAD Malformed SCRAM message: GS2 header: the authorization identity must be a=name\r\n"),
    ("n,a=al=ice,n=alice,r=abc",
     b"a BAD Malformed SCRAM message: authorization identity has '=' not followed by 2C or 3D\r\n"),
    ("n,,n=alice,r=a\x7fb", b"a BAD Malformed SCRAM message: client nonce must be printable ASCII without commas\r\n"),
    ("n,,m=x,n=alice,r=abc", b"a NO [AUTHENTICATIONFAILED] SCRAM extension m= is not supported\r\n"),
    ("p=tls-exporter,,n=alice,r=abc",
     b"a NO [AUTHENTICATIONFAILED] channel binding needs SCRAM-SHA-256-PLUS\r\n"),
])
def test_bad_client_first_gets_a_reason(users: UserDatabase, message: str, answer: bytes) -> None:
    peer = Peer(users, Clock())
    assert peer.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64(message) + b"\r\n") == answer


def test_c_mismatch_is_refused_with_a_reason(users: UserDatabase) -> None:
    """The client signed c= for a header without a=: a man in the middle
    could have added the authzid; c= must match the header as sent."""
    peer = Peer(users, Clock())
    bare = "n=alice,r=abcdef"
    server_first = challenge(peer.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64("n,a=alice," + bare) + b"\r\n"))
    final, _ = alice(users).final(bare, server_first, b"n,,")
    assert peer.send(b64(final) + b"\r\n") == (
        b"a NO [AUTHENTICATIONFAILED] channel binding (c=) does not match this connection\r\n")


def test_wrong_proof_waits_and_says_no_more(users: UserDatabase) -> None:
    clock = Clock()
    peer = Peer(users, clock)
    bare = "n=alice,r=abcdef"
    server_first = challenge(peer.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64("n,a=alice," + bare) + b"\r\n"))
    final, _ = Credentials(b"wrong", alice(users).salt, alice(users).iterations).final(
        bare, server_first, b"n,a=alice,")
    assert peer.send(b64(final) + b"\r\n") == b""
    clock.advance(1.0)  # Limits.failed_login_delay
    assert peer.read() == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"


def test_plus_is_not_offered_and_is_refused_without_tls(users: UserDatabase) -> None:
    peer = Peer(users, Clock())
    assert peer.send(b"c CAPABILITY\r\n") == b"* CAPABILITY " + caps.PRE_LOGIN + b"\r\nc OK CAPABILITY completed\r\n"
    first = b64("p=tls-exporter,,n=alice,r=abc")
    assert peer.send(b"a AUTHENTICATE SCRAM-SHA-256-PLUS " + first + b"\r\n") == (
        b"a NO Unsupported authentication mechanism\r\n")


def test_nonempty_answer_to_server_final_is_bad(users: UserDatabase) -> None:
    peer = Peer(users, Clock())
    bare = "n=alice,r=abcdef"
    server_first = challenge(peer.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64("n,," + bare) + b"\r\n"))
    final, verifier = alice(users).final(bare, server_first, b"n,,")
    assert peer.send(b64(final) + b"\r\n") == b"+ " + b64(verifier) + b"\r\n"
    assert peer.send(b64("junk") + b"\r\n") == (
        b"a BAD Malformed SCRAM message: the server-final answer must be empty\r\n")

"""Byte-exact, deterministic transcripts (StringTransport + task.Clock) of
the security behaviour: plaintext policy for a remote peer, STARTTLS input
holding (dropped when TLS starts, answered when STARTTLS is refused),
penalties on the clock, per-state timeouts and the login deadline, and a
hypothesis fuzz of whole connections."""

from __future__ import annotations

import base64
import re
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.accounts.penalty import LoginGuard
from imapd.imap.commands import catalogue
from imapd.core.config import Config, Limits
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.imap_connection import ImapServerProtocol
from imapd.net.runtime import InlineRuntime
from imapd.accounts.users import UserDatabase
from tests.support import capabilities as caps

REMOTE = "192.0.2.7"  # TEST-NET-1: never contacted, only a peer address value
NO_TLS_CAPS = caps.PRE_LOGIN  # written out in tests/support/capabilities.py
REMOTE_CAPS = caps.PRE_LOGIN_REMOTE_PLAINTEXT


class TLSStringTransport(StringTransport):
    """Records STARTTLS instead of doing it."""

    def __init__(self, peer: IPv4Address) -> None:
        super().__init__(peerAddress=peer)  # type: ignore[no-untyped-call]
        self.tls_started: list[object] = []

    def startTLS(self, contextFactory: object) -> None:
        self.tls_started.append(contextFactory)


class Peer:
    """One client connection from ``host`` to an in-process server."""

    def __init__(self, factory: ImapServerFactory, host: str = REMOTE) -> None:
        address = IPv4Address("TCP", host, 50000)
        self.transport = TLSStringTransport(address)
        self.protocol: ImapServerProtocol = factory.buildProtocol(cast(Any, address))
        self.protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]

    def read(self) -> bytes:
        value: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        self.transport.clear()  # type: ignore[no-untyped-call]
        return value

    def exchange(self, data: bytes) -> bytes:
        self.protocol.dataReceived(data)
        return self.read()


def make_factory(
    users: UserDatabase, clock: Clock, *, tls: bool = True, allow_plaintext: bool = False, **limits: Any
) -> ImapServerFactory:
    config = Config(data_dir=users.path.parent, limits=Limits(**limits), allow_plaintext=allow_plaintext)
    sentinel = cast(Any, object()) if tls else None  # the transport above never uses it
    return ImapServerFactory(config, users, None, clock=clock, runtime=InlineRuntime(clock), tls=sentinel)


def test_remote_unencrypted_greeting_and_refusals(users: UserDatabase) -> None:
    peer = Peer(make_factory(users, Clock()))
    assert peer.read() == b"* OK [CAPABILITY " + REMOTE_CAPS + b"] imapd ready\r\n"
    no = b"NO [PRIVACYREQUIRED] " + catalogue.NO_PLAINTEXT_DISABLED.encode() + b"\r\n"
    assert peer.exchange(b"a LOGIN alice wonderland\r\n") == b"a " + no
    assert peer.exchange(b"b AUTHENTICATE PLAIN\r\n") == b"b " + no  # no "+": nothing is read
    assert peer.exchange(b"c CAPABILITY\r\n") == (
        b"* CAPABILITY " + REMOTE_CAPS + b"\r\nc OK CAPABILITY completed\r\n")


def test_allow_plaintext_and_loopback(users: UserDatabase) -> None:
    permissive = Peer(make_factory(users, Clock(), tls=False, allow_plaintext=True))
    assert permissive.read() == b"* OK [CAPABILITY " + NO_TLS_CAPS + b"] imapd ready\r\n"
    local = Peer(make_factory(users, Clock(), tls=False), host="127.0.0.1")
    assert local.read() == b"* OK [CAPABILITY " + NO_TLS_CAPS + b"] imapd ready\r\n"
    assert local.exchange(b"a LOGIN alice wonderland\r\n").startswith(b"a OK [CAPABILITY")


def test_starttls_drops_everything_behind_it_and_starts_tls_after_the_ok(users: UserDatabase) -> None:
    peer = Peer(make_factory(users, Clock()))
    peer.read()
    out = peer.exchange(b"a STARTTLS\r\nb LOGIN alice {10}\r\nwonderland\r\nc NOOP\r\nd NO")
    assert out == b"a OK Begin TLS negotiation now\r\n"  # no "+" for b's literal, no b/c replies
    assert len(peer.transport.tls_started) == 1
    assert peer.protocol.session.secure
    # Now (in TLS) the session is fresh: CAPABILITY shows AUTH=, no STARTTLS.
    assert peer.exchange(b"e CAPABILITY\r\n") == (
        b"* CAPABILITY " + NO_TLS_CAPS + b"\r\ne OK CAPABILITY completed\r\n")
    assert peer.exchange(b"f STARTTLS\r\n") == b"f BAD TLS is already active\r\n"


def test_refused_starttls_releases_what_was_held_behind_it(users: UserDatabase) -> None:
    peer = Peer(make_factory(users, Clock(), tls=False), host="127.0.0.1")
    peer.read()
    out = peer.exchange(b"a STARTTLS\r\nb APPEND x {3}\r\n")
    # Refused, so the held command goes on: its "+" comes after a's answer.
    assert out == b"a BAD TLS is not available\r\n+ Ready for literal data\r\n"
    assert peer.exchange(b"abc\r\nc NOOP\r\n").endswith(b"c OK NOOP completed\r\n")


def test_flood_behind_a_pending_starttls_closes_the_connection(users: UserDatabase) -> None:
    clock = Clock()
    factory = make_factory(users, clock, failed_login_delay=1.0, auth_penalty_initial=0.0, max_line=100)
    peer = Peer(factory, host="127.0.0.1")
    peer.read()
    # STARTTLS waits behind a failing LOGIN (1 s); the client keeps sending.
    assert peer.exchange(b"a LOGIN alice wrong\r\nb STARTTLS\r\n") == b""
    assert peer.exchange(b"x" * 101) == b"* BYE " + catalogue.BYE_FATAL_FRAME.encode() + b"\r\n"
    assert peer.transport.disconnecting


def test_penalty_on_the_clock(users: UserDatabase) -> None:
    clock = Clock()
    factory = make_factory(users, clock, failed_login_delay=1.0, auth_penalty_initial=2.0, auth_penalty_max=5.0)
    peer = Peer(factory, host="127.0.0.1")
    peer.read()
    failed = b"NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    for tag, penalty in ((b"a", 0.0), (b"b", 2.0), (b"c", 4.0), (b"d", 5.0), (b"e", 5.0)):
        assert peer.exchange(tag + b" LOGIN alice wrong\r\n") == b""
        clock.advance(penalty)  # the penalty, then the check, then 1 s
        clock.advance(0.999)
        assert peer.read() == b""
        clock.advance(0.001)
        assert peer.read() == tag + b" " + failed
    # The window passes: forgotten (a new connection from the same address).
    clock.advance(factory.config.limits.auth_penalty_window)
    again = Peer(factory, host="127.0.0.1")
    again.read()
    assert again.exchange(b"f LOGIN alice wonderland\r\n").startswith(b"f OK")


def test_penalty_is_per_user_name_even_for_unknown_users(users: UserDatabase) -> None:
    clock = Clock()
    factory = make_factory(users, clock, failed_login_delay=0.0, auth_penalty_initial=3.0)
    first = Peer(factory, host="127.0.0.1")
    first.read()
    first.exchange(b"a LOGIN ghost wrong\r\n")  # unknown user, fails at once
    other = Peer(factory, host="127.0.0.2")
    other.read()
    assert other.exchange(b"b LOGIN ghost wrong\r\n") == b""  # same name, other address: waits
    clock.advance(3.0)
    assert other.read().startswith(b"b NO [AUTHENTICATIONFAILED]")
    fresh = Peer(factory, host="127.0.0.3")
    fresh.read()
    assert fresh.exchange(b"c LOGIN bob builder\r\n").startswith(b"c OK")


def test_login_guard_bounds_its_memory_and_forgets() -> None:
    now = [0.0]
    guard = LoginGuard(Limits(auth_penalty_entries=10, auth_penalty_window=60.0), lambda: now[0])
    for i in range(100):
        guard.record_failure(f"10.0.0.{i}", "x" * 10_000 + str(i))
    assert guard.tracked() == 10  # two keys (address, user) per failure, capped
    assert guard.delay_for("10.0.0.99", "someone") == 2.0  # the newest survive
    assert guard.delay_for("10.0.0.0", "someone") == 0.0
    now[0] = 60.0
    assert guard.delay_for("10.0.0.99", "someone") == 0.0


def test_preauth_trickle_cannot_hold_a_connection(users: UserDatabase) -> None:
    """RFC 3501 §5.4 and slow clients: before login, only complete commands
    reset the idle timer, so a byte per second still times out."""
    clock = Clock()
    peer = Peer(make_factory(users, clock, preauth_timeout=10.0), host="127.0.0.1")
    peer.read()
    for byte in b"a NOOP":
        peer.exchange(bytes([byte]))
        clock.advance(1.0)
    clock.advance(4.0)
    assert peer.read() == b"* BYE " + catalogue.BYE_AUTOLOGOUT.encode() + b"\r\n"
    assert peer.transport.disconnecting


def test_busy_but_unauthenticated_connection_hits_the_login_deadline(users: UserDatabase) -> None:
    clock = Clock()
    peer = Peer(make_factory(users, clock, preauth_timeout=10.0, max_preauth_duration=30.0), host="127.0.0.1")
    peer.read()
    for _ in range(5):
        clock.advance(5.0)
        assert peer.exchange(b"a NOOP\r\n") == b"a OK NOOP completed\r\n"
    clock.advance(5.0)
    assert peer.read() == b"* BYE " + catalogue.BYE_LOGIN_TOO_SLOW.encode() + b"\r\n"


def test_logged_in_session_is_not_cut_by_the_login_deadline(users: UserDatabase) -> None:
    clock = Clock()
    peer = Peer(make_factory(users, clock, max_preauth_duration=30.0), host="127.0.0.1")
    peer.read()
    assert peer.exchange(b"a LOGIN alice wonderland\r\n").startswith(b"a OK")
    clock.advance(60.0)
    assert peer.read() == b"" and not peer.transport.disconnecting
    clock.advance(30 * 60.0)  # RFC 3501 §5.4: at least 30 minutes idle after login
    assert peer.read() == b"* BYE " + catalogue.BYE_AUTOLOGOUT.encode() + b"\r\n"


def test_scram_proof_failure_is_penalised_like_a_wrong_password(users: UserDatabase) -> None:
    clock = Clock()
    factory = make_factory(users, clock, failed_login_delay=0.0, auth_penalty_initial=2.0)
    peer = Peer(factory, host="127.0.0.1")
    peer.read()
    first = base64.b64encode(b"n,,n=alice,r=abcdefghijkl")
    out = peer.exchange(b"a AUTHENTICATE SCRAM-SHA-256 " + first + b"\r\n")
    server_first = base64.b64decode(out[2:-2]).decode()
    nonce = dict(part.split("=", 1) for part in server_first.split(","))["r"]
    final = f"c=biws,r={nonce},p={base64.b64encode(bytes(32)).decode()}".encode()
    assert peer.exchange(base64.b64encode(final) + b"\r\n").startswith(b"a NO [AUTHENTICATIONFAILED]")
    assert peer.exchange(b"b LOGIN alice wonderland\r\n") == b""  # penalised now
    clock.advance(2.0)
    assert peer.read().startswith(b"b OK")


# --- fuzzing whole connections ------------------------------------------------

commands = st.sampled_from([
    b"a STARTTLS\r\n", b"a LOGIN alice wonderland\r\n", b"a LOGIN alice {3}\r\n", b"abc\r\n",
    b"a AUTHENTICATE PLAIN\r\n", b"a AUTHENTICATE SCRAM-SHA-256\r\n", b"*\r\n", b"=\r\n",
    b"a AUTHENTICATE PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n", b"a NOOP\r\n", b"a CAPABILITY\r\n",
    b"a LOGOUT\r\n", b"{5+}\r\nhello", b"\r\n", b"a SELECT INBOX\r\n", b"bm9wZQ==\r\n",
])
ANSWER_LINE = re.compile(rb"\A(\* [A-Z]|\+( |\Z)|[^ ]+ (OK|NO|BAD)( |\Z))")
sessions = st.lists(commands | st.binary(max_size=20), max_size=25)


# too_slow stays suppressed as in the suite profile (tests/conftest.py): this list replaces it.
@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chunks=sessions, remote=st.booleans(), advance=st.lists(st.floats(0, 100), max_size=25))
def test_any_client_input_only_ever_gets_imap_answers(
    users: UserDatabase, chunks: list[bytes], remote: bool, advance: list[float]
) -> None:
    """Whatever a client sends before and around authentication, the server
    answers with well-formed lines and never reports an internal error."""
    clock = Clock()
    factory = make_factory(users, clock, failed_login_delay=0.5, max_line=200, max_literal=50)
    peer = Peer(factory, host=REMOTE if remote else "127.0.0.1")
    out = peer.read()
    for index, chunk in enumerate(chunks):
        if peer.transport.disconnecting:
            break
        peer.protocol.dataReceived(chunk)
        clock.advance(advance[index] if index < len(advance) else 0.0)
        out += peer.read()
    clock.advance(200.0)
    out += peer.read()
    assert b"SERVERBUG" not in out
    for line in out.split(b"\r\n")[:-1]:
        assert ANSWER_LINE.match(line), line

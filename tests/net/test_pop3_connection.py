"""The POP3 connection (``imapd.net.pop3_connection``) on a string
transport and a ``task.Clock``, with a real mail service and user
database: pipelined commands answered in order (RFC 2449 §6.6), the STLS
hold (RFC 2595 §4), overlong lines, the bad-command limit, timeouts,
connection limits, shutdown, and a dropped connection releasing its
maildrop."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from imapd.accounts.users import UserDatabase
from imapd.core.config import Config, Limits
from imapd.mail.records import AppendItem
from imapd.net.pop3_connection import Pop3Connection, Pop3Factory
from imapd.net.runtime import InlineRuntime
from tests.net.test_connection import TlsTransport
from tests.support.inline import run_inline as result
from tests.support.context import make_mail

MESSAGE = b"Subject: hi\r\n\r\n.hello\r\n"


class Peer:
    host = "192.0.2.7"
    port = 4711


def factory(tmp_path: Path, users: UserDatabase, *, tls: object = None,
            **limits: object) -> Pop3Factory:
    clock = Clock()
    config = Config(data_dir=tmp_path, limits=Limits(**limits),  # type: ignore[arg-type]
                    allow_plaintext=True)
    made = Pop3Factory(config, users, make_mail(tmp_path / "mail", clock), clock=clock, tls=tls)
    made.runtime = InlineRuntime(clock)  # password checks inline, not in threads
    return made


def connect(made: Pop3Factory) -> tuple[Pop3Connection, TlsTransport]:
    connection = made.buildProtocol(None)
    transport = TlsTransport()
    transport.getPeer = lambda: Peer()  # type: ignore[method-assign]
    connection.makeConnection(transport)  # type: ignore[no-untyped-call]
    return connection, transport


def take(transport: TlsTransport) -> bytes:
    data = transport.written()
    transport.clear()  # type: ignore[no-untyped-call]
    return data


@pytest.fixture
def made(tmp_path: Path, users: UserDatabase) -> Pop3Factory:
    return factory(tmp_path, users)


def test_pipelined_session_is_answered_in_order_and_quit_closes(made: Pop3Factory) -> None:
    assert made.mail is not None
    result(made.mail.deliver("alice", "INBOX", [AppendItem(MESSAGE)]))
    connection, transport = connect(made)
    assert take(transport) == b"+OK POP3 server ready\r\n"
    connection.dataReceived(b"USER alice\r\nPASS wonderland\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n")
    assert take(transport) == (
        b"+OK\r\n+OK Logged in, 1 messages (23 octets)\r\n+OK 1 23\r\n"
        b"+OK 23 octets\r\nSubject: hi\r\n\r\n..hello\r\n.\r\n"
        b"+OK Message 1 deleted\r\n+OK Logging out\r\n")
    assert transport.disconnecting
    connection.connectionLost()  # type: ignore[no-untyped-call]
    assert made.connections == set()
    assert result(made.mail.status("alice", "INBOX")).messages == 0


def test_stls_holds_and_drops_what_was_pipelined_behind_it(
        tmp_path: Path, users: UserDatabase) -> None:
    made = factory(tmp_path, users, tls="tls-context")
    connection, transport = connect(made)
    take(transport)
    connection.dataReceived(b"STLS\r\nUSER alice\r\n")
    assert take(transport) == b"+OK Begin TLS negotiation now\r\n"
    assert transport.tls_started_with == "tls-context"
    assert connection.secure
    connection.dataReceived(b"CAPA\r\n")
    assert b"STLS" not in take(transport)


def test_an_overlong_line_is_err_and_the_connection_goes_on(made: Pop3Factory) -> None:
    connection, transport = connect(made)
    take(transport)
    connection.dataReceived(b"USER " + b"x" * 2000 + b"\r\nQUIT\r\n")
    assert take(transport) == b"-ERR Line too long\r\n+OK Logging out\r\n"


def test_too_many_bad_commands_end_the_connection(
        tmp_path: Path, users: UserDatabase) -> None:
    made = factory(tmp_path, users, max_bad_commands=2)
    connection, transport = connect(made)
    take(transport)
    connection.dataReceived(b"FOO\r\nBAR\r\nCAPA\r\n")
    assert take(transport) == (
        b"-ERR Unknown command\r\n-ERR Unknown command\r\n-ERR Too many bad commands\r\n")
    assert transport.disconnecting


def test_idle_before_login_is_disconnected(made: Pop3Factory) -> None:
    connection, transport = connect(made)
    take(transport)
    clock = made.clock
    assert isinstance(clock, Clock)
    clock.advance(made.config.limits.preauth_timeout)
    assert take(transport) == b"-ERR Disconnected for inactivity\r\n"
    assert transport.disconnecting


def test_connections_per_address_are_limited(tmp_path: Path, users: UserDatabase) -> None:
    made = factory(tmp_path, users, max_connections_per_ip=1)
    connect(made)
    _, second = connect(made)
    assert take(second) == b"-ERR [SYS/TEMP] Too many connections from your address\r\n"
    assert second.disconnecting


def test_shutdown_says_err_and_changes_nothing(made: Pop3Factory) -> None:
    assert made.mail is not None
    result(made.mail.deliver("alice", "INBOX", [AppendItem(MESSAGE)]))
    connection, transport = connect(made)
    connection.dataReceived(b"USER alice\r\nPASS wonderland\r\nDELE 1\r\n")
    take(transport)
    made.shutdown_connections()
    assert take(transport) == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    connection.connectionLost()  # type: ignore[no-untyped-call]
    assert result(made.mail.status("alice", "INBOX")).messages == 1
    assert all(not made.mail.watches(i) for i in range(1, 10))


def test_sessions_per_user_are_limited_across_connections(
        tmp_path: Path, users: UserDatabase) -> None:
    made = factory(tmp_path, users, max_connections_per_user=1)
    first, one = connect(made)
    first.dataReceived(b"USER alice\r\nPASS wonderland\r\n")
    assert take(one).endswith(b"+OK Logged in, 0 messages (0 octets)\r\n")
    second, two = connect(made)
    second.dataReceived(b"USER alice\r\nPASS wonderland\r\n")
    assert take(two).endswith(b"-ERR [IN-USE] Too many sessions for this user\r\n")
    first.connectionLost()  # type: ignore[no-untyped-call]
    second.dataReceived(b"USER alice\r\nPASS wonderland\r\n")
    assert take(two) == b"+OK\r\n+OK Logged in, 0 messages (0 octets)\r\n"


def test_input_behind_a_refused_stls_is_answered(made: Pop3Factory) -> None:
    connection, transport = connect(made)  # no TLS configured
    take(transport)
    connection.dataReceived(b"STLS\r\nQUIT\r\n")
    assert take(transport) == b"-ERR TLS is not available\r\n+OK Logging out\r\n"


def test_a_connection_error_from_below_closes_instead_of_wedging(
        made: Pop3Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConnectionError raised by the store (a lost database connection),
    not by this connection closing, must not leave the command "running"
    for ever: it is logged and the connection closes."""
    connection, transport = connect(made)
    take(transport)

    async def broken(line: bytes) -> None:
        raise ConnectionResetError("database connection lost")

    monkeypatch.setattr(connection.session, "run", broken)
    from twisted.logger import capturedLogs

    with capturedLogs() as events:
        connection.dataReceived(b"CAPA\r\n")
    assert transport.disconnecting
    assert any("protocol error" in str(e.get("log_format")) for e in events)

"""The LMTP connection (``imapd.net.lmtp_connection``) on a fake transport
and clock: idle timeout, overlong lines split across reads, the
connection limit, shutdown."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.lmtp.session import LmtpSettings
from imapd.mail.service import MailService
from imapd.net.lmtp_connection import LmtpConnection, LmtpFactory
from imapd.storage.memory import MemoryBackend


def factory(**options: Any) -> LmtpFactory:
    made = LmtpFactory(MailService(MemoryBackend()), None, LmtpSettings(hostname="h"),  # type: ignore[arg-type]
                       Clock(), **options)

    def exists(name: str) -> Deferred[bool]:
        return succeed(name == "alice")

    made.exists = exists  # type: ignore[method-assign]
    return made


def connect(made: LmtpFactory) -> tuple[LmtpConnection, StringTransport]:
    connection = made.buildProtocol(None)
    transport = StringTransport()  # type: ignore[no-untyped-call]
    connection.makeConnection(transport)  # type: ignore[no-untyped-call]
    return connection, transport


def take(transport: StringTransport) -> bytes:
    value: bytes = transport.value()  # type: ignore[no-untyped-call]
    transport.clear()  # type: ignore[no-untyped-call]
    return value


def test_idle_timeout_says_421_and_closes() -> None:
    made = factory(idle=10.0)
    connection, transport = connect(made)
    assert take(transport) == b"220 h LMTP ready\r\n"
    clock: Clock = made.reactor
    clock.advance(9)
    connection.dataReceived(b"NOOP\r\n")
    clock.advance(9)
    assert take(transport) == b"250 2.0.0 OK\r\n" and not transport.disconnecting
    clock.advance(2)
    assert take(transport) == b"421 4.4.2 Idle timeout, closing connection\r\n"
    assert transport.disconnecting


def test_an_overlong_line_across_reads_is_dropped_once() -> None:
    connection, transport = connect(factory(max_line=100))
    take(transport)
    for _ in range(5):
        connection.dataReceived(b"x" * 80)
    connection.dataReceived(b"tail\r\nNOOP\r\n")
    assert take(transport) == b"500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n"


def test_the_connection_limit_and_shutdown() -> None:
    made = factory(max_connections=1)
    _, first = connect(made)
    _, second = connect(made)
    assert take(second) == b"421 4.3.2 Too many connections\r\n" and second.disconnecting
    take(first)
    made.shutdown_connections()
    assert take(first) == b"421 4.3.2 Service shutting down\r\n" and first.disconnecting


def test_a_pipelined_transaction_in_one_read() -> None:
    connection, transport = connect(factory())
    take(transport)
    connection.dataReceived(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\nS: x\r\n\r\n"
                            b"..\r\n.\r\nQUIT\r\n")
    assert take(transport).endswith(
        b"354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 <alice> Saved\r\n"
        b"221 2.0.0 Bye\r\n")
    assert transport.disconnecting


BDAT_TRANSACTION = (b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\n"
                    b"BDAT 14\r\nNOOP\r\n.\r\nQUIT\nBDAT 3 LAST\r\nx\r\rNOOP\r\n")
BDAT_REPLIES = (b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
                b"250 2.0.0 14 octets received\r\n250 2.0.0 <alice> Saved\r\n250 2.0.0 OK\r\n")


def test_pipelined_bdat_chunks_in_one_read() -> None:
    """Chunk octets that look like commands (or a DATA terminator) are
    octets: the connection frames input only when the session wants it."""
    connection, transport = connect(factory())
    take(transport)
    connection.dataReceived(BDAT_TRANSACTION)
    assert take(transport).endswith(b"250 SIZE 67108864\r\n" + BDAT_REPLIES)
    assert not transport.disconnecting


def test_bdat_chunks_split_across_reads() -> None:
    connection, transport = connect(factory())
    take(transport)
    for index in range(len(BDAT_TRANSACTION)):
        connection.dataReceived(BDAT_TRANSACTION[index:index + 1])
    assert take(transport).endswith(b"250 SIZE 67108864\r\n" + BDAT_REPLIES)

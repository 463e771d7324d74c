"""Every telemetry call site (``imapd.core.telemetry``) with a recording
sink installed: the session summary of IMAP, POP3 and LMTP connections
(user, peer, seconds, bytes in and out, reason for the close), commands
and their verdicts, IDLE, deliveries (LMTP, LDA, APPEND) and store commits
(SQLite inline and group commit)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.accounts.users import UserDatabase
from imapd.core import telemetry
from imapd.core.config import Limits
from imapd.core.telemetry import SessionSummary
from imapd.lmtp import lda
from imapd.lmtp.session import LmtpSession, LmtpSettings
from imapd.mail.records import AppendItem
from imapd.net.lmtp_connection import LmtpFactory
from tests.lmtp.test_session import NOW, Recording, exists, talk
from tests.net.test_pop3_connection import connect as pop3_connect
from tests.net.test_pop3_connection import factory as pop3_factory
from tests.net.test_pop3_connection import take
from tests.support.context import make_mail
from tests.support.inline import run_inline
from tests.support.transcript import Conversation


class Recorder:
    """A ``Telemetry`` that keeps every event as a tuple."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def connection_opened(self, protocol: str, peer: str) -> None:
        self.events.append(("opened", protocol, peer))

    def connection_closed(self, summary: SessionSummary) -> None:
        self.events.append(("closed", summary))

    def logged_in(self, protocol: str, mechanism: str, success: bool) -> None:
        self.events.append(("login", protocol, mechanism, success))

    def command_finished(self, protocol: str, command: str, result: str,
                         seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("command", protocol, command, result))

    def idle_changed(self, delta: int) -> None:
        self.events.append(("idle", delta))

    def delivered(self, via: str, outcome: str) -> None:
        self.events.append(("delivered", via, outcome))

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        assert seconds >= 0
        self.events.append(("committed", engine, changes))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [event[1:] for event in self.events if event[0] == kind]

    def summaries(self) -> list[SessionSummary]:
        return [event[0] for event in self.of("closed")]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    previous = telemetry.install(recording)
    try:
        yield recording
    finally:
        telemetry.install(previous)


def conversation(users: UserDatabase, **kwargs: Any) -> tuple[Conversation, list[bytes]]:
    """An IMAP conversation whose every exchange is kept (to count bytes)."""
    conv = Conversation(users, **kwargs)
    return conv, [conv.read()]


# --- IMAP -------------------------------------------------------------------------------


def test_imap_login_logout_summary_counts_every_byte(users: UserDatabase,
                                                     recorder: Recorder) -> None:
    conv, received = conversation(users)
    sent = [b"a LOGIN alice wonderland\r\n", b"b NOOP\r\nc BLURB\r\n", b"d LOGOUT\r\n"]
    received.append(conv.exchange(sent[0]))
    conv.clock.advance(2.5)
    received.append(conv.exchange(sent[1]))
    received.append(conv.exchange(sent[2]))
    assert conv.closing
    conv.disconnect()
    assert recorder.of("opened") == [("imap", "127.0.0.1:40001")]
    assert [c[:3] for c in recorder.of("command")] == [
        ("imap", "LOGIN", "OK"), ("imap", "NOOP", "OK"), ("imap", "INVALID", "BAD"),
        ("imap", "LOGOUT", "OK")]
    assert recorder.summaries() == [SessionSummary(
        protocol="imap", peer="127.0.0.1:40001", user="alice", seconds=2.5,
        bytes_in=sum(map(len, sent)), bytes_out=sum(map(len, received)),
        reason="logout", secure=False)]


def test_imap_dropped_connection_is_disconnected_without_user(users: UserDatabase,
                                                              recorder: Recorder) -> None:
    conv, received = conversation(users)
    received.append(conv.exchange(b"a CAPABILITY\r\n"))
    conv.send(b"b NOOP")  # half a line, then the client vanishes
    conv.disconnect()
    (summary,) = recorder.summaries()
    assert (summary.user, summary.reason) == (None, "disconnected")
    assert summary.bytes_in == len(b"a CAPABILITY\r\nb NOOP")
    assert summary.bytes_out == sum(map(len, received))


def test_imap_goodbyes_and_shutdown_are_reasons(users: UserDatabase, recorder: Recorder) -> None:
    conv, _ = conversation(users, limits=Limits(preauth_timeout=60))
    conv.clock.advance(61)
    conv.disconnect()
    other = Conversation(users)
    other.factory.shutdown_connections()
    other.disconnect()
    assert [s.reason for s in recorder.summaries()] == ["idle timeout", "shutdown"]


def test_imap_idle_enters_and_leaves(users: UserDatabase, recorder: Recorder) -> None:
    conv, _ = conversation(users)
    conv.exchange(b"a LOGIN alice wonderland\r\nb IDLE\r\n")
    assert recorder.of("idle") == [(1,)]
    conv.exchange(b"DONE\r\n")
    assert recorder.of("idle") == [(1,), (-1,)]
    conv.exchange(b"c IDLE\r\n")
    conv.disconnect()  # dropped while idling: still balanced
    assert recorder.of("idle") == [(1,), (-1,), (1,), (-1,)]


def test_imap_append_reports_each_delivery(users: UserDatabase, recorder: Recorder,
                                          tmp_path: Path) -> None:
    clock = Clock()
    conv, _ = conversation(users, store=make_mail(tmp_path / "mail", clock), clock=clock)
    conv.exchange(b"a LOGIN alice wonderland\r\n")
    reply = conv.exchange(b"b APPEND INBOX {2+}\r\nhi\r\n")
    assert b"b OK" in reply
    reply = conv.exchange(b"c APPEND Nowhere {2+}\r\nhi\r\n")
    assert b"c NO [TRYCREATE]" in reply
    assert recorder.of("delivered") == [("append", "ok"), ("append", "permanent")]
    assert ("imap", "APPEND", "NO") in [c[:3] for c in recorder.of("command")]
    # The store (SQLite, inline writer here) reported its commit.
    assert ("sqlite", 1) in recorder.of("committed")


# --- POP3 -------------------------------------------------------------------------------


def test_pop3_session_summary_and_verdicts(tmp_path: Path, users: UserDatabase,
                                           recorder: Recorder) -> None:
    made = pop3_factory(tmp_path, users)
    connection, transport = pop3_connect(made)
    received = [take(transport)]
    sent = b"USER alice\r\nPASS wonderland\r\nSTAT\r\nXYZZY secret\r\nRETR 9\r\nQUIT\r\n"
    made.clock.advance(1)  # type: ignore[attr-defined]
    connection.dataReceived(sent)
    received.append(take(transport))
    connection.connectionLost()  # type: ignore[no-untyped-call]
    assert [c[:3] for c in recorder.of("command")] == [
        ("pop3", "USER", "+OK"), ("pop3", "PASS", "+OK"), ("pop3", "STAT", "+OK"),
        ("pop3", "UNKNOWN", "-ERR"), ("pop3", "RETR", "-ERR"), ("pop3", "QUIT", "+OK")]
    assert recorder.of("opened") == [("pop3", "192.0.2.7:4711")]
    assert recorder.summaries() == [SessionSummary(
        protocol="pop3", peer="192.0.2.7:4711", user="alice", seconds=1.0,
        bytes_in=len(sent), bytes_out=sum(map(len, received)), reason="logout",
        secure=False)]


def test_pop3_too_many_bad_commands_is_the_reason(tmp_path: Path, users: UserDatabase,
                                                  recorder: Recorder) -> None:
    made = pop3_factory(tmp_path, users, max_bad_commands=2)
    connection, transport = pop3_connect(made)
    connection.dataReceived(b"BAD1\r\nBAD2\r\n")
    assert transport.disconnecting
    connection.connectionLost()  # type: ignore[no-untyped-call]
    (summary,) = recorder.summaries()
    assert (summary.user, summary.reason) == (None, "too many bad commands")


# --- LMTP -------------------------------------------------------------------------------


def test_lmtp_session_reports_commands_and_one_delivery_per_recipient(
        recorder: Recorder) -> None:
    backend = Recording()
    from imapd.mail.errors import Unavailable
    from imapd.mail.service import MailService

    backend.errors = {"dave": Unavailable("down")}
    lmtp = LmtpSession(MailService(backend), exists, LmtpSettings(hostname="mx.test"),
                       now=lambda: NOW)
    talk(lmtp, b"LHLO mta\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@x.org>\r\n"
               b"RCPT TO:<nobody@x.org>\r\nRCPT TO:<dave@x.org>\r\nFOO\r\n"
               b"DATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert [c[:3] for c in recorder.of("command")] == [
        ("lmtp", "LHLO", "250"), ("lmtp", "MAIL", "250"), ("lmtp", "RCPT", "250"),
        ("lmtp", "RCPT", "5xx"), ("lmtp", "RCPT", "250"), ("lmtp", "UNKNOWN", "5xx"),
        ("lmtp", "DATA", "4xx"), ("lmtp", "QUIT", "221")]
    assert recorder.of("delivered") == [("lmtp", "ok"), ("lmtp", "temporary")]


def test_lmtp_bdat_chunks_report_when_the_chunk_ends(recorder: Recorder) -> None:
    from imapd.mail.service import MailService

    lmtp = LmtpSession(MailService(Recording()), exists, LmtpSettings(), now=lambda: NOW)
    talk(lmtp, b"LHLO mta\r\nMAIL FROM:<>\r\nRCPT TO:<alice@x.org>\r\n")
    assert run_inline(lmtp.feed(b"BDAT 4\r\n")) == []
    run_inline(lmtp.feed_octets(b"ab\r\n"))
    run_inline(lmtp.feed(b"BDAT 0 LAST\r\n"))
    assert [c[1:3] for c in recorder.of("command")][-2:] == [("BDAT", "250"), ("BDAT", "250")]
    assert recorder.of("delivered") == [("lmtp", "ok")]


def test_lmtp_connection_summary_counts_bytes(recorder: Recorder) -> None:
    clock = Clock()
    factory = LmtpFactory(make_mail_memory(), users=None,  # type: ignore[arg-type]
                          settings=LmtpSettings(hostname="mx.test"), reactor=clock)
    peer = IPv4Address("TCP", "127.0.0.1", 2424)
    transport = StringTransport(peerAddress=peer)  # type: ignore[no-untyped-call]
    connection = factory.buildProtocol(peer)
    connection.makeConnection(transport)  # type: ignore[no-untyped-call]
    sent = b"LHLO mta\r\nNOOP\r\nQUIT\r\n"
    clock.advance(3)
    connection.dataReceived(sent)
    connection.connectionLost()  # type: ignore[no-untyped-call]
    assert recorder.summaries() == [SessionSummary(
        protocol="lmtp", peer="127.0.0.1:2424", user=None, seconds=3.0, bytes_in=len(sent),
        bytes_out=len(transport.value()), reason="logout")]  # type: ignore[no-untyped-call]


def make_mail_memory() -> Any:
    from imapd.mail.service import MailService

    return MailService(Recording())


def test_lda_reports_its_outcome(recorder: Recorder) -> None:
    from imapd.mail.service import MailService

    mail = MailService(Recording())
    ok = run_inline(lda.deliver(mail, exists, lda.Request("alice"), b"Subject: x\r\n\r\nx\r\n"))
    unknown = run_inline(lda.deliver(mail, exists, lda.Request("zed"), b"x\r\n"))
    assert (ok[0], unknown[0]) == (lda.EX_OK, lda.EX_NOUSER)
    assert recorder.of("delivered") == [("lda", "ok"), ("lda", "permanent")]


# --- storage: the SQLite group commit ------------------------------------------------------


def test_sqlite_group_commit_reports_latency_and_batch_size(
        tmp_path: Path, recorder: Recorder) -> None:
    from tests.support.reactor_thread import on_reactor, reactor_hop
    from imapd.storage.sqlite.backend import open_backend
    from imapd.mail.service import MailService
    from twisted.internet.defer import Deferred, gatherResults

    backend = open_backend(tmp_path / "mail", hop=reactor_hop(), make_waiter=Deferred)
    mail = MailService(backend)

    async def many() -> None:
        await mail.deliver("alice", "INBOX", [AppendItem(b"Subject: 0\r\n\r\n0\r\n")])
        await gatherResults([
            Deferred.fromCoroutine(
                mail.deliver("alice", "INBOX", [AppendItem(b"Subject: n\r\n\r\nn\r\n")]))
            for _ in range(20)])
        await mail.close()

    on_reactor(many)
    commits = [event for event in recorder.of("committed") if event[0] == "sqlite"]
    assert commits and sum(changes for _, changes in commits) >= 21
    sizes = getattr(backend.writer, "batch_sizes")
    assert [changes for _, changes in commits][-len(sizes):] == sizes


def test_summary_is_frozen_and_reported_once(users: UserDatabase, recorder: Recorder) -> None:
    conv, _ = conversation(users)
    conv.disconnect()
    conv.protocol.connection_ended()  # a second end reports nothing more
    (summary,) = recorder.summaries()
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.reason = "x"  # type: ignore[misc]


def test_imap_bytes_are_counted_as_carried_under_compress(users: UserDatabase,
                                                         recorder: Recorder) -> None:
    """Under COMPRESS=DEFLATE (RFC 4978) the counts are the compressed
    octets on the connection, not the protocol text: a counter in the
    response writer or after the inflater would get both wrong."""
    import zlib

    conv, received = conversation(users)
    sent = [b"a LOGIN alice wonderland\r\n", b"c COMPRESS DEFLATE\r\n"]
    received += [conv.exchange(sent[0]), conv.exchange(sent[1])]
    stream = zlib.compressobj(9, zlib.DEFLATED, -15)
    noops = b"".join(b"n%d NOOP\r\n" % i for i in range(200))
    squeezed = stream.compress(noops) + stream.flush(zlib.Z_SYNC_FLUSH)
    sent.append(squeezed)
    conv.send(squeezed)
    for _ in range(50):  # the slices and the DEFLATE flush run on the clock
        conv.clock.advance(0.01)
    received.append(conv.read())
    assert zlib.decompressobj(-15).decompress(received[-1]).count(b"OK NOOP") == 200
    conv.disconnect()
    (summary,) = recorder.summaries()
    assert summary.bytes_in == sum(map(len, sent)) < len(noops)
    assert summary.bytes_out == sum(map(len, received))


def test_tls_is_noted_and_a_broken_handshake_is_the_reason(
        tmp_path: Path, users: UserDatabase, recorder: Recorder) -> None:
    from OpenSSL import SSL
    from twisted.python.failure import Failure

    made = pop3_factory(tmp_path, users, tls="tls-context")
    connection, transport = pop3_connect(made)
    connection.dataReceived(b"STLS\r\n")
    assert transport.tls_started_with == "tls-context"
    connection.connectionLost(Failure(SSL.Error("handshake failed")))  # type: ignore[no-untyped-call]
    (summary,) = recorder.summaries()
    assert (summary.secure, summary.reason) == (True, "tls failure")


def test_lines_that_cannot_be_framed_are_reported_too(
        tmp_path: Path, users: UserDatabase, recorder: Recorder) -> None:
    conv, _ = conversation(users, limits=Limits(max_line=100))
    reply = conv.exchange(b"a " + b"x" * 200 + b"\r\nb NOOP\r\n")
    assert b"BAD" in reply and b"b OK" in reply
    made = pop3_factory(tmp_path, users)
    connection, transport = pop3_connect(made)
    connection.dataReceived(b"X" * 5000 + b"\r\nNOOP\r\n")  # past the POP3 line limit
    assert [c[:3] for c in recorder.of("command")] == [
        ("imap", "INVALID", "BAD"), ("imap", "NOOP", "OK"), ("pop3", "UNKNOWN", "-ERR"),
        ("pop3", "NOOP", "-ERR")]  # NOOP before login: not valid in this state


def test_pop3_quit_whose_update_fails_is_err(tmp_path: Path, users: UserDatabase,
                                            recorder: Recorder,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from imapd.mail.errors import Unavailable

    made = pop3_factory(tmp_path, users)
    connection, transport = pop3_connect(made)
    connection.dataReceived(b"USER alice\r\nPASS wonderland\r\n")

    async def down() -> None:
        raise Unavailable("store down")

    monkeypatch.setattr(connection.session, "update", down)
    connection.dataReceived(b"QUIT\r\n")
    assert take(transport).endswith(b"-ERR [SYS/TEMP] Some deleted messages were not removed\r\n")
    assert transport.disconnecting
    assert recorder.of("command")[-1][:3] == ("pop3", "QUIT", "-ERR")

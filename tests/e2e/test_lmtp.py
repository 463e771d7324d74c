"""LMTP end to end (RFC 2033): Python's ``smtplib.LMTP`` and a raw socket
against a real ``imapd serve --lmtp``, the mail then read back over IMAP
byte for byte; an IDLE session sees a delivery at once."""

from __future__ import annotations

import imaplib
import re
import smtplib
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import LOOPBACK_ENDPOINT, RunningServer, run_cli, running_server
from tests.support.spool import big_message
from tests.support.waiting import wait_until

USERS = {"alice": "wonderland", "bob": "builder", "full": "quota"}
LMTP_LINE = re.compile(r"listening on LMTP (\[[^\]]+\]|[^\s:]+):(\d+)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    args = ["--lmtp", LOOPBACK_ENDPOINT]
    with running_server(tmp_path_factory.mktemp("e2e-lmtp"), USERS, args) as s:
        yield s


def lmtp_port(server: RunningServer) -> int:
    match = wait_until(lambda: LMTP_LINE.search(server.log()), "the LMTP listener")
    return int(match.group(2))


def lmtp(server: RunningServer) -> smtplib.LMTP:
    client = smtplib.LMTP(server.host, lmtp_port(server), timeout=30)
    client.ehlo_or_helo_if_needed = lambda: None  # type: ignore[method-assign]
    code, _ = client.docmd("LHLO", "e2e.test")
    assert code == 250
    return client


def imap(server: RunningServer, user: str = "alice") -> imaplib.IMAP4:
    client = imaplib.IMAP4(server.host, server.port)
    client.login(user, USERS[user])
    return client


def last_message(server: RunningServer, user: str, mailbox: str = "INBOX") -> bytes:
    client = imap(server, user)
    try:
        typ, data = client.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK", data
        count = data[0]
        assert isinstance(count, bytes)
        typ, fetched = client.fetch(count.decode(), "(BODY.PEEK[])")
        assert typ == "OK"
        item = fetched[0]
        assert isinstance(item, tuple)
        return item[1]
    finally:
        client.logout()


def stored_as_sent(stored: bytes, sender: str, rcpt: str, message: bytes) -> None:
    head = f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\nReceived: from e2e.test".encode()
    assert stored.startswith(head)
    assert stored.endswith(message) and len(stored) < len(message) + 300


def test_one_reply_per_recipient_and_the_mail_read_back_exactly(server: RunningServer) -> None:
    client = imap(server)
    client.create("lists")
    client.logout()
    message = (b"From: s@example.org\r\nSubject: mixed\r\n\r\n.leading dot\r\n..two\r\n"
               b"8-bit: \xc3\xa9t\xc3\xa9\r\n.\r\nend\r\n")
    smtp = lmtp(server)
    assert smtp.mail("s@example.org", ["BODY=8BITMIME"])[0] == 250
    assert smtp.rcpt("Alice+lists@example.org")[0] == 250
    assert smtp.rcpt("nobody@example.org") == (550, b"5.1.1 <nobody@example.org> User unknown")
    assert smtp.rcpt("bob@example.org")[0] == 250
    first = smtp.data(message)  # smtplib dot-stuffs the lines starting with "."
    second = smtp.getreply()
    assert (first[0], second[0]) == (250, 250)
    assert b"Alice+lists@example.org" in first[1] and b"bob@example.org" in second[1]
    smtp.quit()
    stored_as_sent(last_message(server, "alice", "lists"), "s@example.org",
                   "Alice+lists@example.org", message)
    stored_as_sent(last_message(server, "bob"), "s@example.org", "bob@example.org", message)


def test_pipelined_commands_are_answered_in_order(server: RunningServer) -> None:
    raw = RawClient(server.host, lmtp_port(server))
    assert raw.line().startswith(b"220 ")
    raw.send(b"LHLO p\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nRCPT TO:<x>\r\nDATA\r\n"
             b"Subject: p\r\n\r\n..\r\n.\r\nBOGUS\r\nNOOP\r\nQUIT\r\n")
    lines = [raw.line() for _ in range(14)]
    assert lines[6:] == [
        b"250 2.1.0 Sender OK\r\n", b"250 2.1.5 Recipient OK\r\n",
        b"550 5.1.1 <x> User unknown\r\n", b"354 Send message, end with <CRLF>.<CRLF>\r\n",
        b"250 2.0.0 <alice> Saved\r\n", b"500 5.5.1 Unknown command\r\n", b"250 2.0.0 OK\r\n",
        b"221 2.0.0 Bye\r\n"]
    raw.close()
    assert last_message(server, "alice").endswith(b"\r\nSubject: p\r\n\r\n.\r\n")


def test_an_overlong_line_is_refused_and_the_session_survives(server: RunningServer) -> None:
    raw = RawClient(server.host, lmtp_port(server))
    raw.line()
    raw.send(b"NOOP " + b"x" * 100_000 + b"\r\nNOOP\r\n")
    assert [raw.line(), raw.line()] == [b"500 5.5.2 Line too long\r\n", b"250 2.0.0 OK\r\n"]
    raw.close()


def test_a_20_mb_message(server: RunningServer) -> None:
    message = big_message(20 * 1024 * 1024)
    smtp = lmtp(server)
    smtp.mail("big@example.org", [f"SIZE={len(message)}"])
    smtp.rcpt("alice")
    assert smtp.data(message)[0] == 250
    smtp.quit()
    stored_as_sent(last_message(server, "alice"), "big@example.org", "alice", message)


def test_an_idle_session_sees_the_delivery_as_recent(server: RunningServer) -> None:
    idler = RawClient(server.host, server.port)
    idler.line()
    idler.send(b"a LOGIN bob builder\r\nb SELECT INBOX\r\n")
    selected = idler.until_tagged(b"b")
    exists = next(int(l.split()[1]) for l in selected if l.endswith(b" EXISTS\r\n"))
    idler.send(b"c IDLE\r\n")
    assert idler.line().startswith(b"+ ")
    smtp = lmtp(server)
    smtp.sendmail("s@example.org", ["bob"], b"Subject: idle\r\n\r\nhi\r\n")
    smtp.quit()
    assert idler.line() == b"* %d EXISTS\r\n" % (exists + 1)
    idler.send(b"DONE\r\n")
    idler.until_tagged(b"c")
    idler.send(b"d FETCH %d FLAGS\r\n" % (exists + 1))
    assert b"\\Recent" in idler.until_tagged(b"d")[0]
    idler.close()
    other = imap(server, "bob")
    typ, data = other.select("INBOX")
    assert other.response("RECENT")[1] == [b"0"]  # \Recent for exactly one session
    other.logout()



def over_quota_reply(server: RunningServer) -> tuple[int, bytes]:
    """The reply to a delivery to ``full``, who may store 10 octets."""
    run_cli("user", "quota", "full", "--storage", "10", "--data", str(server.data_dir))
    smtp = lmtp(server)
    smtp.mail("s@example.org")
    assert smtp.rcpt("full")[0] == 250
    smtp.putcmd("DATA")
    assert smtp.getreply()[0] == 354
    smtp.send(b"Subject: too big\r\n\r\nfor ten octets\r\n.\r\n")
    reply = smtp.getreply()
    smtp.quit()
    return reply


def test_over_quota_is_permanent_by_default(server: RunningServer) -> None:
    assert over_quota_reply(server) == (552, b"5.2.2 Mailbox full (over quota)")


def test_over_quota_is_temporary_when_configured(tmp_path: Path) -> None:
    args = ["--lmtp", LOOPBACK_ENDPOINT, "--quota-full-tempfail"]
    with running_server(tmp_path, {"full": "pw"}, args) as tempfail:
        assert over_quota_reply(tempfail) == (
            452, b"4.2.2 Mailbox full (over quota), try again later")


def test_bdat_chunks_pipelined_and_read_back_exactly(server: RunningServer) -> None:
    """CHUNKING (RFC 3030) on a real socket (smtplib has no BDAT): the
    stored message is the trace headers then exactly the chunk octets."""
    chunks = [b"Subject: bdat\r\n\r\n.\r\nDATA\r\n..x\r\n", b"bare\nlf and\r",
              b"\n8-bit \xc3\xa9\r\n" + b"z" * 70_000 + b"\r\n"]
    raw = RawClient(server.host, lmtp_port(server))
    assert raw.line().startswith(b"220 ")
    raw.send(b"LHLO e2e.test\r\n")
    assert b"250-CHUNKING\r\n" in b"".join(raw.line() for _ in range(6))
    raw.send(b"MAIL FROM:<c@example.org>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n"
             + b"".join(b"BDAT %d%s\r\n%s" % (len(c), b" LAST" if c is chunks[-1] else b"", c)
                        for c in chunks) + b"QUIT\r\n")
    assert [raw.line() for _ in range(8)] == [
        b"250 2.1.0 Sender OK\r\n", b"250 2.1.5 Recipient OK\r\n", b"250 2.1.5 Recipient OK\r\n",
        b"250 2.0.0 %d octets received\r\n" % len(chunks[0]),
        b"250 2.0.0 %d octets received\r\n" % len(chunks[1]),
        b"250 2.0.0 <alice> Saved\r\n", b"250 2.0.0 <bob> Saved\r\n", b"221 2.0.0 Bye\r\n"]
    raw.close()
    message = b"".join(chunks)
    stored_as_sent(last_message(server, "alice"), "c@example.org", "alice", message)
    stored_as_sent(last_message(server, "bob"), "c@example.org", "bob", message)

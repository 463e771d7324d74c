"""LMTP sessions (RFC 2033) as byte-exact transcripts over the memory
backend: per-recipient replies after DATA, dot-unstuffing, trace headers,
limits, and bad input that leaves the session usable."""

from __future__ import annotations

import datetime
from typing import Sequence

import pytest

from imapd.lmtp.session import LmtpSession, LmtpSettings
from imapd.mail.errors import MailError, OverQuota, StorageFull, Unavailable
from imapd.mail.records import AppendItem, AppendResult
from imapd.mail.service import MailService
from imapd.mail.backend import MailboxEntry, MailboxRef
from imapd.storage.memory import MemoryBackend
from tests.support.inline import run_inline as run

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)
USERS = {"alice", "bob", "carol", "dave"}
TRACE = (b"Return-Path: <s@example.org>\r\nDelivered-To: %s\r\n"
         b"Received: from mta (local)\r\n\tby mx.test (imapd) with LMTP\r\n"
         b"\tfor <%s>; Sun, 06 Dec 2026 12:00:00 +0000\r\n")


class Recording(MemoryBackend):
    """Stores like MemoryBackend, records (user, mailbox, bytes) and fails
    per user as ``errors`` says."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, MailError] = {}
        self.stored: list[tuple[str, str, bytes]] = []
        self.lookup_error: MailError | None = None

    async def lookup(self, user: str, name: str) -> MailboxEntry | None:
        if self.lookup_error is not None and name != "INBOX":  # only the detail folder
            raise self.lookup_error
        return await super().lookup(user, name)

    async def append(self, ref: MailboxRef, items: Sequence[AppendItem],
                     claim: bool = False) -> AppendResult:
        mailbox = self._mailbox(ref)
        if mailbox.user in self.errors:
            raise self.errors[mailbox.user]
        result = await super().append(ref, items, claim)
        self.stored += [(mailbox.user, mailbox.name, bytes(i.message)) for i in items]
        return result


async def exists(name: str) -> bool:
    return name in USERS


@pytest.fixture
def backend() -> Recording:
    return Recording()


def session(backend: Recording, **settings: object) -> LmtpSession:
    options = LmtpSettings(hostname="mx.test", **settings)  # type: ignore[arg-type]
    return LmtpSession(MailService(backend), exists, options, now=lambda: NOW)


def talk(lmtp: LmtpSession, client: bytes) -> bytes:
    """Feed every line of ``client``; the replies, concatenated."""
    out = b""
    for line in client.splitlines(keepends=True):
        out += b"".join(r.encode() for r in run(lmtp.feed(line)))
    return out


def trace(rcpt: bytes) -> bytes:
    return TRACE % (rcpt, rcpt)


def test_lhlo_lists_the_extensions(backend: Recording) -> None:
    lmtp = session(backend, max_message=1000)
    assert lmtp.greeting().encode() == b"220 mx.test LMTP ready\r\n"
    assert talk(lmtp, b"LHLO mta\r\n") == (
        b"250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250-CHUNKING\r\n250 SIZE 1000\r\n")


def test_one_reply_per_recipient_each_its_own_outcome(backend: Recording) -> None:
    backend.errors = {"bob": OverQuota("full"), "carol": StorageFull("disk"),
                      "dave": Unavailable("down")}
    lmtp = session(backend)
    out = talk(lmtp, b"LHLO mta\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<Alice@x.org>\r\n"
                     b"RCPT TO:<nobody@x.org>\r\nRCPT TO:<bob@x.org>\r\nRCPT TO:<carol@x.org>\r\n"
                     b"RCPT TO:<dave@x.org>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n")
    assert out.split(b"\r\n", 6)[6] == (
        b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
        b"550 5.1.1 <nobody@x.org> User unknown\r\n250 2.1.5 Recipient OK\r\n"
        b"250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
        b"354 Send message, end with <CRLF>.<CRLF>\r\n"
        b"250 2.0.0 <Alice@x.org> Saved\r\n552 5.2.2 Mailbox full (over quota)\r\n"
        b"452 4.3.1 Mail system full, try again later\r\n"
        b"451 4.3.0 Mail store unavailable, try again later\r\n")
    assert backend.stored == [
        ("alice", "INBOX", trace(b"Alice@x.org") + b"Subject: hi\r\n\r\nbody\r\n")]


@pytest.mark.parametrize("sent, stored", [
    (b"..\r\n", b".\r\n"),
    (b"...\r\n", b"..\r\n"),
    (b".x\r\n", b"x\r\n"),
    (b"a.\r\n.. \r\n", b"a.\r\n. \r\n"),
    (b"bare lf\n", b"bare lf\r\n"),
    (b"8-bit \xc3\xa9\r\n", b"8-bit \xc3\xa9\r\n"),
])
def test_data_is_dot_unstuffed_with_crlf(backend: Recording, sent: bytes, stored: bytes) -> None:
    lmtp = session(backend)
    talk(lmtp, b"LHLO mta\r\nMAIL FROM:<s@example.org> BODY=8BITMIME\r\nRCPT TO:<alice>\r\n"
               b"DATA\r\nX: y\r\n\r\n" + sent + b".\r\n")
    assert backend.stored == [("alice", "INBOX", trace(b"alice") + b"X: y\r\n\r\n" + stored)]


def test_detail_goes_to_an_existing_folder_else_inbox(backend: Recording) -> None:
    service = MailService(backend)
    run(service.create_mailbox("alice", "lists"))
    lmtp = session(backend)
    lmtp.mail = service
    talk(lmtp, b"LHLO mta\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice+lists@x>\r\n"
               b"RCPT TO:<ALICE+nope@x>\r\nDATA\r\nX: y\r\n.\r\n")
    assert [(u, m) for u, m, _ in backend.stored] == [("alice", "lists"), ("alice", "INBOX")]


def test_domains_are_configurable(backend: Recording) -> None:
    lmtp = session(backend, domains=("example.org",))
    out = talk(lmtp, b"LHLO mta\r\nMAIL FROM:<>\r\nRCPT TO:<alice@Example.ORG>\r\n"
                     b"RCPT TO:<alice@other.org>\r\n")
    assert out.endswith(b"250 2.1.5 Recipient OK\r\n550 5.1.1 <alice@other.org> User unknown\r\n")


def test_limits_size_and_recipients(backend: Recording) -> None:
    lmtp = session(backend, max_message=10, max_recipients=1)
    out = talk(lmtp, b"LHLO mta\r\nMAIL FROM:<s@example.org> SIZE=11\r\n"
                     b"MAIL FROM:<s@example.org> SIZE=10\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n"
                     b"DATA\r\n0123456789\r\n.\r\nNOOP\r\n")
    assert out.split(b"\r\n", 6)[6] == (
        b"552 5.3.4 Message too big\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
        b"452 4.5.3 Too many recipients\r\n354 Send message, end with <CRLF>.<CRLF>\r\n"
        b"552 5.3.4 Message too big\r\n250 2.0.0 OK\r\n")
    assert backend.stored == []


def test_bad_commands_and_sequence_leave_the_session_usable(backend: Recording) -> None:
    lmtp = session(backend)
    out = talk(lmtp, b"HELO x\r\nMAIL FROM:<a@b>\r\nLHLO mta\r\nRCPT TO:<alice>\r\nDATA\r\n"
                     b"MAIL TO:<a@b>\r\nMAIL FROM:<a@b> XFOO=1\r\nMAIL FROM:<a@b>\r\n"
                     b"DATA\r\nVRFY alice\r\nRSET\r\nQUIT\r\n")
    assert out.split(b"250 SIZE 67108864\r\n")[1] == (
        b"503 5.5.1 Need MAIL first\r\n503 5.5.1 Need MAIL first\r\n"
        b"501 5.5.4 Syntax: FROM:<address>\r\n555 5.5.4 Unsupported parameter XFOO\r\n"
        b"250 2.1.0 Sender OK\r\n503 5.5.1 No valid recipients\r\n"
        b"252 2.5.2 Cannot VRFY user, but will accept message\r\n250 2.0.0 OK\r\n221 2.0.0 Bye\r\n")
    assert out.startswith(b"500 5.5.1 Unknown command\r\n503 5.5.1 Send LHLO first\r\n250-")
    assert lmtp.closed


def test_a_large_message_is_spooled_and_stored_exactly(backend: Recording, tmp_path: object) -> None:
    lmtp = session(backend)
    body = (b"x" * 998 + b"\r\n") * 2000  # ~2 MB: past the in-memory threshold
    talk(lmtp, b"LHLO mta\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n"
               b"DATA\r\n" + body + b".\r\n")
    assert [m for _, _, m in backend.stored] == [trace(b"alice") + body, trace(b"bob") + body]


def test_a_store_failure_finding_the_detail_folder_is_temporary(backend: Recording) -> None:
    lmtp = session(backend)
    talk(lmtp, b"LHLO mta\r\n")
    backend.lookup_error = Unavailable("down")
    out = talk(lmtp, b"MAIL FROM:<>\r\nRCPT TO:<alice+lists>\r\nDATA\r\nX: y\r\n.\r\n")
    assert out.endswith(b"451 4.3.0 Mail store unavailable, try again later\r\n")
    assert backend.stored == []


@pytest.mark.parametrize("tempfail, reply", [
    (False, b"552 5.2.2 Mailbox full (over quota)\r\n"),
    (True, b"452 4.2.2 Mailbox full (over quota), try again later\r\n"),
])
def test_over_quota_is_permanent_unless_configured_temporary(
        backend: Recording, tempfail: bool, reply: bytes) -> None:
    backend.errors = {"bob": OverQuota("full")}
    lmtp = session(backend, quota_full_tempfail=tempfail)
    out = talk(lmtp, b"LHLO mta\r\nMAIL FROM:<>\r\nRCPT TO:<bob>\r\nRCPT TO:<alice>\r\n"
                     b"DATA\r\nX: y\r\n.\r\n")
    assert out.endswith(b"354 Send message, end with <CRLF>.<CRLF>\r\n" + reply
                        + b"250 2.0.0 <alice> Saved\r\n")


def converse(lmtp: LmtpSession, client: bytes) -> bytes:
    """Frame ``client`` as the connection does: lines, except the raw
    octets of a BDAT chunk (``octets_wanted``); the replies, concatenated."""
    out = b""
    while client:
        if lmtp.octets_wanted:
            data, client = client[:lmtp.octets_wanted], client[lmtp.octets_wanted:]
            replies = run(lmtp.feed_octets(data))
        else:
            end = client.index(b"\n") + 1
            line, client = client[:end], client[end:]
            replies = run(lmtp.feed(line))
        out += b"".join(r.encode() for r in replies)
    return out


def bdat(chunk: bytes, last: bool = False) -> bytes:
    return b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk


def test_bdat_chunks_are_stored_exactly_one_reply_per_recipient_after_last(
        backend: Recording) -> None:
    """RFC 3030 §2: chunk octets are neither dot-unstuffed nor re-framed;
    RFC 2033 §4.3: after BDAT LAST one reply per accepted recipient."""
    first = b"Subject: chunks\r\n\r\n.\r\nBDAT 5\r\n..dots\r"
    second = b"\nbare lf\nbare cr\r8-bit \xc3\xa9\r\n"
    lmtp = session(backend)
    out = converse(lmtp, b"LHLO mta\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice>\r\n"
                         b"RCPT TO:<nobody>\r\nRCPT TO:<bob>\r\n"
                         + bdat(first) + bdat(second) + bdat(b"", last=True) + b"NOOP\r\n")
    assert out.split(b"User unknown\r\n250 2.1.5 Recipient OK\r\n")[1] == (
        b"250 2.0.0 %d octets received\r\n" % len(first)
        + b"250 2.0.0 %d octets received\r\n" % len(second)
        + b"250 2.0.0 <alice> Saved\r\n250 2.0.0 <bob> Saved\r\n250 2.0.0 OK\r\n")
    assert backend.stored == [("alice", "INBOX", trace(b"alice") + first + second),
                              ("bob", "INBOX", trace(b"bob") + first + second)]


def test_bdat_out_of_sequence_is_read_then_refused(backend: Recording) -> None:
    """A refused chunk's octets are consumed, never taken for commands."""
    lmtp = session(backend)
    out = converse(lmtp, b"LHLO mta\r\n" + bdat(b"QUIT\r\n", last=True)
                   + b"MAIL FROM:<>\r\nRCPT TO:<nobody>\r\n" + bdat(b"QUIT\r\n")
                   + bdat(b"QUIT\r\n", last=True) + b"BDAT x\r\nBDAT 1 FIRST\r\n"
                   + b"MAIL FROM:<>\r\nRCPT TO:<alice>\r\n" + bdat(b"X: 1\r\n")
                   + b"DATA\r\nRCPT TO:<bob>\r\nRSET\r\n"
                   + b"MAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\nX: 2\r\n.\r\n")
    assert out.split(b"250 SIZE 67108864\r\n")[1] == (
        b"503 5.5.1 Need MAIL first\r\n"
        b"250 2.1.0 Sender OK\r\n550 5.1.1 <nobody> User unknown\r\n"
        b"503 5.5.1 No valid recipients\r\n503 5.5.1 No valid recipients\r\n"
        b"501 5.5.4 Syntax: BDAT size [LAST]\r\n501 5.5.4 Syntax: BDAT size [LAST]\r\n"
        b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 6 octets received\r\n"
        b"503 5.5.1 DATA after BDAT\r\n503 5.5.1 Bad sequence of commands\r\n"
        b"250 2.0.0 OK\r\n"
        b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
        b"354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 <alice> Saved\r\n")
    assert not lmtp.closed
    assert [m for _, _, m in backend.stored] == [trace(b"alice").replace(b"<s@example.org>", b"<>")
                                                 + b"X: 2\r\n"]


def test_bdat_past_the_size_limit(backend: Recording) -> None:
    """552 once the chunk that crosses SIZE is read (RFC 1870 §6.2); the
    chunks pipelined after it are read and refused alike (RFC 3030 §4.2),
    LAST with one reply per recipient."""
    lmtp = session(backend, max_message=10)
    rcpts = b"MAIL FROM:<>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n"
    out = converse(lmtp, b"LHLO mta\r\n" + rcpts + bdat(b"12345678") + bdat(b"9ab")
                   + bdat(b"c", last=True) + rcpts + bdat(b"0123456789a", last=True)
                   + rcpts + bdat(b"0123456789", last=True))
    big = b"552 5.3.4 Message too big\r\n"
    assert out.split(b"250 SIZE 10\r\n")[1] == (
        b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
        b"250 2.0.0 8 octets received\r\n" + big + big * 2
        + b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
        + big * 2
        + b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
        b"250 2.0.0 <alice> Saved\r\n250 2.0.0 <bob> Saved\r\n")
    assert [m[-10:] for _, _, m in backend.stored] == [b"0123456789"] * 2

"""APPEND (RFC 3501 §6.3.11) as byte-exact transcripts, checked against
what the store then holds (exact bytes, flags, internal date, analysis)."""

from __future__ import annotations

import datetime
from pathlib import Path

from imapd.config import Limits
from imapd.message import analyze
from tests.commands.harness import Client, MailServer, message

RFC_MESSAGE_LINES = [
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)",
    "From: Fred Foobar <foobar@Blurdybloop.COM>",
    "Subject: afternoon meeting",
    "To: mooch@owatagu.siam.edu",
    "Message-Id: <B27397-0100000@Blurdybloop.COM>",
    "MIME-Version: 1.0",
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII",
    "",
    "Hello Joe, do you think we can meet at 3:30 tomorrow?",
]
RFC_MESSAGE = "".join(line + "\r\n" for line in RFC_MESSAGE_LINES).encode()


def client_lines(raw: bytes) -> str:
    """A CRLF-terminated message as transcript ``C:`` lines."""
    assert raw.endswith(b"\r\n")
    return "\n".join(f"C: {line}" for line in raw.decode()[:-2].split("\r\n"))


def test_rfc3501_section_6_3_11_example(server: MailServer, client: Client) -> None:
    assert len(RFC_MESSAGE) == 310
    server.create("saved-messages")
    body = client_lines(RFC_MESSAGE)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    client.transcript(
        f"""
        C: A003 APPEND saved-messages (\\Seen) {{310}}
        S: + Ready for literal data
        {body}
        C:
        S: A003 OK APPEND completed
        """
    )
    [(record, data)] = server.read_messages("saved-messages")
    assert data == RFC_MESSAGE
    assert (record.uid, record.flags, record.size) == (1, ("\\Seen",), 310)
    assert record.meta == analyze(RFC_MESSAGE).to_bytes()
    # No date-time given: the internal date is now (RFC 3501 §6.3.11).
    after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    assert before <= record.internal_date <= after


def test_append_with_date_time_and_keywords(server: MailServer, client: Client) -> None:
    raw = message(1)
    client.transcript(
        f"""
        C: a APPEND INBOX (\\Flagged $Label1 \\seen) " 5-Jan-2024 10:11:12 +0130" {{{len(raw)}+}}
        {client_lines(raw)}
        C:
        S: a OK APPEND completed
        """
    )
    [(record, data)] = server.read_messages("INBOX")
    assert data == raw
    assert record.flags == ("\\Flagged", "\\Seen", "$Label1")
    zone = datetime.timezone(datetime.timedelta(hours=1, minutes=30))
    assert record.internal_date == datetime.datetime(2024, 1, 5, 10, 11, 12, tzinfo=zone)
    assert record.internal_date.utcoffset() == datetime.timedelta(hours=1, minutes=30)


def test_append_keeps_8bit_nul_and_bare_lf_bytes_exactly(server: MailServer, client: Client) -> None:
    raw = b"Subject: caf\xc3\xa9\r\n\r\nline\nnul\x00byte\r\n\xff\xfe"
    out = client.exchange(b"a APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(raw), raw))
    assert out == b"a OK APPEND completed\r\n"
    [(record, data)] = server.read_messages("INBOX")
    assert (data, record.size) == (raw, len(raw))
    # NUL is not allowed in a plain literal (RFC 3501 §9 CHAR8), only in
    # literal8 (RFC 3516); 8-bit and bare LF are.
    out = client.exchange(b"b APPEND INBOX {%d+}\r\n%s\r\n" % (len(raw), raw))
    assert out == b"b BAD NUL octet in literal for message\r\n"
    raw8 = raw.replace(b"\x00", b"")
    out = client.exchange(b"c APPEND INBOX {%d+}\r\n%s\r\n" % (len(raw8), raw8))
    assert out == b"c OK APPEND completed\r\n"
    assert [d for _, d in server.read_messages("INBOX")] == [raw, raw8]


def test_append_to_missing_mailbox_is_trycreate(server: MailServer, client: Client) -> None:
    server.create("Parent/Child")
    client.ok("x DELETE Parent")  # now a \Noselect placeholder
    client.transcript(
        """
        C: a APPEND Nowhere {5+}
        C: hello
        S: a NO [TRYCREATE] Mailbox does not exist: Nowhere
        C: b APPEND Parent {5+}
        C: hello
        S: b NO [TRYCREATE] Mailbox does not exist: Parent
        C: c CREATE Nowhere
        S: c OK CREATE completed
        C: d APPEND Nowhere {5+}
        C: hello
        S: d OK APPEND completed
        """
    )
    assert [d for _, d in server.read_messages("Nowhere")] == [b"hello"]


def test_append_flag_and_name_errors_store_nothing(server: MailServer, client: Client) -> None:
    client.transcript(
        """
        C: a APPEND INBOX (\\Recent) {5+}
        C: hello
        S: a BAD \\Recent cannot be stored
        C: b APPEND INBOX (\\Bogus) {5+}
        C: hello
        S: b BAD Unknown system flag \\Bogus
        C: c APPEND "bad%name" {5+}
        C: hello
        S: c NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        """
    )
    assert server.status("INBOX").messages == 0
    assert server.status("INBOX").uidnext == 1


def test_append_synchronizing_literal_waits_for_continuation(server: MailServer, client: Client) -> None:
    assert client.exchange(b"a APPEND INBOX {7}\r\n") == b"+ Ready for literal data\r\n"
    assert client.exchange(b"hel\r\n") == b""
    assert client.exchange(b"lo") == b""
    assert client.exchange(b"\r\n") == b"a OK APPEND completed\r\n"
    assert [d for _, d in server.read_messages("INBOX")] == [b"hel\r\nlo"]


def test_append_to_selected_mailbox_announces_exists_and_recent(
    server: MailServer, client: Client
) -> None:
    server.append("INBOX", message(1))
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: a APPEND INBOX {5+}
        C: hello
        S: * 2 EXISTS
        S: * 2 RECENT
        S: a OK APPEND completed
        """
    )


def test_append_to_examined_mailbox_is_allowed(server: MailServer, client: Client) -> None:
    """EXAMINE makes the session's view read-only, not the mailbox:
    APPEND still works and the message is announced (and, as no read-write
    session claimed it, counted as recent)."""
    client.ok("s EXAMINE INBOX")
    client.transcript(
        """
        C: a APPEND INBOX {5+}
        C: hello
        S: * 1 EXISTS
        S: * 1 RECENT
        S: a OK APPEND completed
        """
    )


def test_append_to_other_mailbox_while_selected_says_nothing_extra(
    server: MailServer, client: Client
) -> None:
    server.create("Sent")
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: a APPEND Sent (\\Seen) {5+}
        C: hello
        S: a OK APPEND completed
        """
    )
    assert server.status("Sent").messages == 1


def test_append_too_large_is_refused_by_the_framer(tmp_path: Path) -> None:
    server = MailServer(tmp_path, limits=Limits(max_literal=100))
    try:
        client = server.connect("alice")
        out = client.exchange(b"a APPEND INBOX {101}\r\n")
        assert out == b"a NO [TOOBIG] Literal too big\r\n"
        assert server.status("INBOX").messages == 0
    finally:
        server.close()


def test_append_needs_authentication(server: MailServer) -> None:
    anonymous = server.connect(None)
    assert anonymous.exchange(b"a APPEND INBOX {5+}\r\nhello\r\n") == (
        b"a BAD Command not allowed in this state\r\n")
    assert server.status("INBOX").messages == 0

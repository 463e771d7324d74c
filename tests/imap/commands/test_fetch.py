"""FETCH and UID FETCH transcripts (RFC 3501 §6.4.5, §6.4.8, §7.4.2), byte
for byte through the in-process server with a real SQLite store.

Expected bytes are written out by hand from the messages below; sizes that
would be tedious to count are ``len()`` of the literal message text (not
anything the server computed).
"""

from __future__ import annotations

import datetime

import pytest

from tests.imap.commands.harness import Client, MailServer

PDT = datetime.timezone(datetime.timedelta(hours=-7))
CET = datetime.timezone(datetime.timedelta(hours=1))
DATE1 = datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=PDT)
DATE2 = datetime.datetime(2024, 3, 5, 9, 4, 7, tzinfo=CET)

HEADER1 = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    b"Subject: afternoon meeting\r\n"
    b"To: mooch@owatagu.siam.edu.example\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
    b"\r\n"
)
BODY1 = b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
MESSAGE1 = HEADER1 + BODY1
MESSAGE2 = b"From: a@example.com\r\nSubject: two\r\n\r\nsecond\r\n"
MULTIPART = (
    b"From: c@example.com\r\n"
    b"Subject: parts\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XX\r\n"
    b"\r\n"
    b"part one\r\n"
    b"--XX\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>two</p>\r\n"
    b"--XX--\r\n"
)


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    """INBOX with MESSAGE1 (UID 1), MESSAGE2 (UID 2, \\Seen), MULTIPART
    (UID 3, $Work), selected by ``client``; none is \\Recent for it because
    another session claimed them first (RFC 3501 §2.3.2)."""
    server.append("INBOX", MESSAGE1, internal_date=DATE1)
    server.append("INBOX", MESSAGE2, ["\\Seen"], DATE2)
    server.append("INBOX", MULTIPART, ["$Work"], DATE2)
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.ok("c CLOSE")
    client.ok("s SELECT INBOX")
    return client


def literal(data: bytes) -> str:
    return "{%d}" % len(data)


def test_simple_items_in_requested_order(mailbox: Client) -> None:
    mailbox.transcript(f"""
        C: a FETCH 1:2 (UID RFC822.SIZE FLAGS INTERNALDATE)
        S: * 1 FETCH (UID 1 RFC822.SIZE {len(MESSAGE1)} FLAGS () INTERNALDATE "17-Jul-1996 02:44:25 -0700")
        S: * 2 FETCH (UID 2 RFC822.SIZE {len(MESSAGE2)} FLAGS (\\Seen) INTERNALDATE "05-Mar-2024 09:04:07 +0100")
        S: a OK FETCH completed
    """)


def test_rfc3501_section_6_4_5_example(mailbox: Client) -> None:
    """``A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])`` from
    RFC 3501 §6.4.5 (with a set that exists here); not PEEK, so \\Seen is
    set and the FLAGS item shows it."""
    mailbox.transcript("""
        C: A654 FETCH 1:3 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])
        S: * 1 FETCH (FLAGS (\\Seen) BODY[HEADER.FIELDS (DATE FROM)] {88}
        S: Date: Mon, 7 Feb 1994 21:52:25 -0800
        S: From: Fred Foobar <foobar@Blurdybloop.example>
        S:
        S: )
        S: * 2 FETCH (FLAGS (\\Seen) BODY[HEADER.FIELDS (DATE FROM)] {23}
        S: From: a@example.com
        S:
        S: )
        S: * 3 FETCH (FLAGS (\\Seen $Work) BODY[HEADER.FIELDS (DATE FROM)] {23}
        S: From: c@example.com
        S:
        S: )
        S: A654 OK FETCH completed
    """)


def test_rfc822_items(mailbox: Client) -> None:
    """RFC822.HEADER is BODY.PEEK[HEADER]: no \\Seen. RFC822.TEXT is
    BODY[TEXT]: \\Seen is set and the new FLAGS reported unasked."""
    mailbox.transcript(f"""
        C: a FETCH 1 RFC822.HEADER
        S: * 1 FETCH (RFC822.HEADER {literal(HEADER1)}
        S: Date: Mon, 7 Feb 1994 21:52:25 -0800
        S: From: Fred Foobar <foobar@Blurdybloop.example>
        S: Subject: afternoon meeting
        S: To: mooch@owatagu.siam.edu.example
        S: Message-Id: <B27397-0100000@Blurdybloop.example>
        S:
        S: )
        S: a OK FETCH completed
        C: b FETCH 1 RFC822.TEXT
        S: * 1 FETCH (RFC822.TEXT {literal(BODY1)}
        S: Hello Joe, do you think we can meet at 3:30 tomorrow?
        S:  FLAGS (\\Seen))
        S: b OK FETCH completed
        C: c FETCH 2 RFC822
        S: * 2 FETCH (RFC822 {literal(MESSAGE2)}
        S: From: a@example.com
        S: Subject: two
        S:
        S: second
        S: )
        S: c OK FETCH completed
    """)


def test_body_without_peek_sets_seen_once(mailbox: Client) -> None:
    mailbox.transcript(f"""
        C: a FETCH 1 BODY[TEXT]
        S: * 1 FETCH (BODY[TEXT] {literal(BODY1)}
        S: Hello Joe, do you think we can meet at 3:30 tomorrow?
        S:  FLAGS (\\Seen))
        S: a OK FETCH completed
        C: b FETCH 1 BODY[TEXT]<0.5>
        S: * 1 FETCH (BODY[TEXT]<0> {{5}}
        S: Hello)
        S: b OK FETCH completed
    """)


def test_peek_and_partial(mailbox: Client) -> None:
    """Partial fetches echo only the origin (RFC 3501 §6.4.5); an origin past
    the end gives the empty string; PEEK leaves \\Seen alone."""
    mailbox.transcript("""
        C: a FETCH 1 (BODY.PEEK[TEXT]<6.3> BODY.PEEK[]<0.4> BODY.PEEK[TEXT]<1000.5>)
        S: * 1 FETCH (BODY[TEXT]<6> {3}
        S: Joe BODY[]<0> {4}
        S: Date BODY[TEXT]<1000> "")
        S: a OK FETCH completed
        C: b FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS ())
        S: b OK FETCH completed
    """)


def test_header_fields_not_and_names_as_sent(mailbox: Client) -> None:
    """Field names are echoed as the client sent them (upper-cased),
    duplicates and unknown names included; a partial applies after the
    subsetting (RFC 3501 §6.4.5)."""
    mailbox.transcript("""
        C: a FETCH 2 (BODY.PEEK[HEADER.FIELDS.NOT (from x-none)] BODY.PEEK[HEADER.FIELDS (subject Subject)]<2.5>)
        S: * 2 FETCH (BODY[HEADER.FIELDS.NOT (FROM X-NONE)] {16}
        S: Subject: two
        S:
        S:  BODY[HEADER.FIELDS (SUBJECT SUBJECT)]<2> {5}
        S: bject)
        S: a OK FETCH completed
    """)


def test_multipart_sections_and_missing_ones(mailbox: Client) -> None:
    """Numeric parts, MIME headers, and sections the message does not have
    (answered with the empty string, as Dovecot does)."""
    mailbox.transcript("""
        C: a FETCH 3 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[2] BODY.PEEK[3] BODY.PEEK[1.HEADER])
        S: * 3 FETCH (BODY[1] {8}
        S: part one BODY[2.MIME] {27}
        S: Content-Type: text/html
        S:
        S:  BODY[2] {10}
        S: <p>two</p> BODY[3] "" BODY[1.HEADER] "")
        S: a OK FETCH completed
    """)


def test_body_and_bodystructure(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a FETCH 3 (BODY BODYSTRUCTURE)
        S: * 3 FETCH (BODY (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 8 1)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1) "MIXED") BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 8 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "XX") NIL NIL NIL))
        S: a OK FETCH completed
    """)


def test_envelope(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a FETCH 1 ENVELOPE
        S: * 1 FETCH (ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "afternoon meeting" (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) ((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL "<B27397-0100000@Blurdybloop.example>"))
        S: a OK FETCH completed
    """)


def test_macros_expand_in_rfc_order(mailbox: Client) -> None:
    mailbox.transcript(f"""
        C: a FETCH 2 FAST
        S: * 2 FETCH (FLAGS (\\Seen) INTERNALDATE "05-Mar-2024 09:04:07 +0100" RFC822.SIZE {len(MESSAGE2)})
        S: a OK FETCH completed
        C: b FETCH 2 ALL
        S: * 2 FETCH (FLAGS (\\Seen) INTERNALDATE "05-Mar-2024 09:04:07 +0100" RFC822.SIZE {len(MESSAGE2)} ENVELOPE (NIL "two" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) NIL NIL NIL NIL NIL))
        S: b OK FETCH completed
        C: c FETCH 2 FULL
        S: * 2 FETCH (FLAGS (\\Seen) INTERNALDATE "05-Mar-2024 09:04:07 +0100" RFC822.SIZE {len(MESSAGE2)} ENVELOPE (NIL "two" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) NIL NIL NIL NIL NIL) BODY ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 8 1))
        S: c OK FETCH completed
    """)


def test_duplicate_items_answered_once(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a FETCH 2 (UID FLAGS UID BODY.PEEK[HEADER.FIELDS (FROM)] BODY.PEEK[HEADER.FIELDS (FROM)])
        S: * 2 FETCH (UID 2 FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM)] {23}
        S: From: a@example.com
        S:
        S: )
        S: a OK FETCH completed
    """)


def test_uid_fetch_rfc3501_section_6_4_8(mailbox: Client) -> None:
    """UID FETCH always includes UID; unasked, it comes last as in the RFC's
    ``* 23 FETCH (FLAGS (\\Seen) UID 4827313)``. UIDs that do not exist are
    ignored; ``n:*`` with n above every UID still names the last message."""
    mailbox.transcript(f"""
        C: A999 UID FETCH 2:4828442 FLAGS
        S: * 2 FETCH (FLAGS (\\Seen) UID 2)
        S: * 3 FETCH (FLAGS ($Work) UID 3)
        S: A999 OK UID FETCH completed
        C: b UID FETCH 9999:* (UID FLAGS)
        S: * 3 FETCH (UID 3 FLAGS ($Work))
        S: b OK UID FETCH completed
        C: c UID FETCH 50:60 FLAGS
        S: c OK UID FETCH completed
        C: d UID FETCH 3,1 RFC822.SIZE
        S: * 1 FETCH (RFC822.SIZE {len(MESSAGE1)} UID 1)
        S: * 3 FETCH (RFC822.SIZE {len(MULTIPART)} UID 3)
        S: d OK UID FETCH completed
    """)


def test_sequence_numbers_out_of_range_are_bad(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a FETCH 4 FLAGS
        S: a BAD Invalid message sequence number 4
        C: b FETCH 2:5 FLAGS
        S: b BAD Invalid message sequence number 5
        C: c FETCH 3:* UID
        S: * 3 FETCH (UID 3)
        S: c OK FETCH completed
        C: d FETCH *:1 UID
        S: * 1 FETCH (UID 1)
        S: * 2 FETCH (UID 2)
        S: * 3 FETCH (UID 3)
        S: d OK FETCH completed
    """)


def test_fetch_in_examined_mailbox_never_sets_seen(server: MailServer, client: Client) -> None:
    server.append("INBOX", MESSAGE2)
    client.ok("e EXAMINE INBOX")
    client.transcript(f"""
        C: a FETCH 1 BODY[TEXT]
        S: * 1 FETCH (BODY[TEXT] {{8}}
        S: second
        S: )
        S: a OK FETCH completed
        C: b FETCH 1 (FLAGS RFC822)
        S: * 1 FETCH (FLAGS (\\Recent) RFC822 {literal(MESSAGE2)}
        S: From: a@example.com
        S: Subject: two
        S:
        S: second
        S: )
        S: b OK FETCH completed
    """)
    assert server.status("INBOX").unseen == 1


def test_fetch_not_allowed_outside_selected_state(client: Client) -> None:
    client.transcript("""
        C: a FETCH 1 FLAGS
        S: a BAD Command not allowed in this state
    """)

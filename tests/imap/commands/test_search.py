"""SEARCH and UID SEARCH transcripts: every key of RFC 3501 §6.4.4, sets,
parentheses, OR / NOT, CHARSET, decoded text (RFC 2047 headers,
quoted-printable and base64 bodies), dates in their own time zone."""

from __future__ import annotations

import base64
import datetime
from typing import Iterator

import pytest

from tests.imap.commands.harness import Client, MailServer


def zone(hours: int) -> datetime.timezone:
    return datetime.timezone(datetime.timedelta(hours=hours))


M1 = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    b"To: mooch@owatagu.example\r\n"
    b"Cc: Carol <carol@example.net>\r\n"
    b"Bcc: hidden@example.net\r\n"
    b"Subject: afternoon meeting\r\n"
    b"X-Priority: High\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)
M2 = (
    b"Date: Tue, 8 Feb 1994 01:00:00 +0900\r\n"
    b"From: =?UTF-8?Q?Ren=C3=A9e_Smith?= <renee@example.org>\r\n"
    b"To: Joe <mooch@owatagu.example>\r\n"
    b"Subject: =?ISO-8859-1?Q?caf=E9?= break\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"A na=C3=AFve question about the caf=C3=A9.\r\n"
)
M3 = (
    b"Date: Wed, 2 Mar 1994 12:00:00 +0100\r\n"
    b"From: smith@example.com\r\n"
    b"Subject: report\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b1\r\n"
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes(b"The QUARTERLY numbers are attached.\r\n").replace(b"\n", b"\r\n")
    + b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes(b"binaryneedle").replace(b"\n", b"\r\n")
    + b"--b1--\r\n"
)
M4 = b"Subject: draft\r\n\r\nunfinished\r\n"
MESSAGES = [
    (M1, ["\\Flagged"], datetime.datetime(1994, 2, 1, 23, 30, tzinfo=zone(-8))),
    (M2, ["\\Answered", "\\Seen", "\\Flagged"], datetime.datetime(1994, 2, 5, 10, 0, tzinfo=zone(0))),
    (M3, ["$Work"], datetime.datetime(1994, 3, 1, 12, 0, tzinfo=zone(1))),
    (M4, ["\\Draft"], datetime.datetime(1994, 3, 2, 0, 0, tzinfo=zone(0))),
]


def fill(server: MailServer, client: Client) -> Client:
    """M1..M4 as messages 1..4 with UIDs 2..5 (UID 1 was expunged), none
    \\Recent for ``client``; M3 also has \\Deleted."""
    server.append("INBOX", b"Subject: gone\r\n\r\ngone\r\n", ["\\Deleted"])
    for message, flags, date in MESSAGES:
        server.append("INBOX", message, flags, date)
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.ok("c EXPUNGE")
    claimer.ok("c STORE 3 +FLAGS.SILENT (\\Deleted)")  # after the EXPUNGE
    claimer.ok("c LOGOUT")
    client.ok("s SELECT INBOX")
    return client


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    return fill(server, client)


@pytest.fixture(scope="module")
def shared_mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One filled mailbox for the read-only key table (SEARCH changes nothing)."""
    server = MailServer(tmp_path_factory.mktemp("search"))
    yield fill(server, server.connect("alice"))
    server.close()


QUERIES = [
    ("ALL", "1 2 3 4"),
    ("FLAGGED", "1 2"), ("UNFLAGGED", "3 4"),
    ("ANSWERED", "2"), ("UNANSWERED", "1 3 4"),
    ("DELETED", "3"), ("UNDELETED", "1 2 4"),
    ("DRAFT", "4"), ("UNDRAFT", "1 2 3"),
    ("SEEN", "2"), ("UNSEEN", "1 3 4"),
    ("KEYWORD $work", "3"), ("UNKEYWORD $WORK", "1 2 4"), ("KEYWORD Other", ""),
    ("RECENT", ""), ("NEW", ""), ("OLD", "1 2 3 4"),
    # The internal date's own calendar day (M1 is 2-Feb in UTC, 1-Feb at -0800).
    ("BEFORE 2-Feb-1994", "1"), ("ON 1-Feb-1994", "1"), ("SINCE 2-Feb-1994", "2 3 4"),
    ("BEFORE 1-Mar-1994", "1 2"), ("SINCE 1-Mar-1994", "3 4"), ("ON 2-Mar-1994", "4"),
    # The Date header's day as written; M4 has no Date header.
    ("SENTBEFORE 8-Feb-1994", "1"), ("SENTON 8-Feb-1994", "2"),
    ("SENTSINCE 8-Feb-1994", "2 3"), ("NOT SENTON 8-Feb-1994", "1 3 4"),
    # Addresses: decoded display names and plain addresses.
    ("FROM smith", "2 3"), ("FROM example.com", "3"), ("FROM FOOBAR@blurdybloop", "1"),
    ('FROM "Fred Foobar"', "1"), ("TO mooch", "1 2"), ("CC carol", "1"),
    ("BCC hidden", "1"), ("BCC mooch", ""),
    ("SUBJECT MEETING", "1"), ('SUBJECT "caf\u00e9"', "2"), ('SUBJECT "\u00e9 br"', "2"),
    ("HEADER X-Priority high", "1"), ('HEADER x-priority ""', "1"),
    ('HEADER Subject ""', "1 2 3 4"), ('HEADER Date ""', "1 2 3"),
    # Bodies: quoted-printable and base64 decoded; only text parts.
    ('BODY "na\u00efve"', "2"), ("BODY quarterly", "3"), ("BODY binaryneedle", ""),
    ("BODY meeting", ""), ("TEXT meeting", "1"), ("BODY joe", "1"), ("TEXT joe", "1 2"),
    ('TEXT "REN\u00c9E"', "2"), ('TEXT ""', "1 2 3 4"),
    # Sets.
    ("2:3", "2 3"), ("*", "4"), ("1,4", "1 4"), ("UID 3:4", "2 3"), ("UID 4:*", "3 4"),
    ("UID 9999:*", "4"), ("UID 1", ""),
    # Combinations.
    ("OR FLAGGED DRAFT", "1 2 4"), ("NOT FLAGGED", "3 4"), ("(FLAGGED SEEN)", "2"),
    ("OR (FLAGGED SEEN) DRAFT", "2 4"), ("FLAGGED NOT FROM smith", "1"),
    ("NOT (OR DELETED OR DRAFT SEEN)", "1"), ("NOT (DELETED OR DRAFT KEYWORD $Work)", "1 2 4"), ("OR TEXT joe DELETED", "1 2 3"),
    ("NOT NOT TEXT meeting", "1"), ("OR BODY nothing-here SUBJECT report", "3"),
]


@pytest.mark.parametrize(("criteria", "expected"), QUERIES, ids=[q for q, _ in QUERIES])
def test_search_key(shared_mailbox: Client, criteria: str, expected: str) -> None:
    result = f"* SEARCH {expected}" if expected else "* SEARCH"
    shared_mailbox.transcript(f"""
        C: a SEARCH {criteria}
        S: {result}
        S: a OK SEARCH completed
    """)


def test_uid_search_returns_uids(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a UID SEARCH FLAGGED
        S: * SEARCH 2 3
        S: a OK UID SEARCH completed
        C: b UID SEARCH 3:4 UID 5
        S: * SEARCH 5
        S: b OK UID SEARCH completed
        C: c UID SEARCH TEXT nowhere
        S: * SEARCH
        S: c OK UID SEARCH completed
    """)


def test_larger_and_smaller_use_rfc822_size(mailbox: Client) -> None:
    sizes = [len(message) for message, _, _ in MESSAGES]
    pivot = sizes[1]
    larger = " ".join(str(i) for i, s in enumerate(sizes, 1) if s > pivot)
    smaller = " ".join(str(i) for i, s in enumerate(sizes, 1) if s < pivot)
    mailbox.transcript(f"""
        C: a SEARCH LARGER {pivot}
        S: * SEARCH {larger}
        S: a OK SEARCH completed
        C: b SEARCH SMALLER {pivot}
        S: * SEARCH {smaller}
        S: b OK SEARCH completed
        C: c SEARCH NOT LARGER {pivot} NOT SMALLER {pivot}
        S: * SEARCH 2
        S: c OK SEARCH completed
    """)
    assert larger and smaller


def test_rfc3501_section_6_4_4_examples(mailbox: Client) -> None:
    mailbox.transcript("""
        C: A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
        S: * SEARCH 1
        S: A282 OK SEARCH completed
        C: A283 SEARCH TEXT "string not in mailbox"
        S: * SEARCH
        S: A283 OK SEARCH completed
        C: A284 SEARCH CHARSET UTF-8 TEXT {5}
        S: + Ready for literal data
        C: café
        S: * SEARCH 2
        S: A284 OK SEARCH completed
    """)


def test_charsets(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a SEARCH CHARSET US-ASCII SUBJECT report
        S: * SEARCH 3
        S: a OK SEARCH completed
        C: b SEARCH CHARSET utf-8 SUBJECT "café"
        S: * SEARCH 2
        S: b OK SEARCH completed
        C: c SEARCH CHARSET KOI8-R SUBJECT x
        S: c NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R
        C: d UID SEARCH CHARSET ISO-8859-1 ALL
        S: d NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset ISO-8859-1
    """)


def test_recent_new_old(server: MailServer, mailbox: Client) -> None:
    """\\Recent is the session's (RFC 3501 §2.3.2): a message delivered while
    selected is recent here; NEW is RECENT UNSEEN."""
    server.append("INBOX", b"Subject: fresh\r\n\r\nnew\r\n")
    server.append("INBOX", b"Subject: fresh\r\n\r\nseen\r\n", ["\\Seen"])
    mailbox.transcript("""
        C: a NOOP
        S: * 6 EXISTS
        S: * 2 RECENT
        S: a OK NOOP completed
        C: b SEARCH RECENT
        S: * SEARCH 5 6
        S: b OK SEARCH completed
        C: c SEARCH NEW
        S: * SEARCH 5
        S: c OK SEARCH completed
        C: d SEARCH OLD UNSEEN
        S: * SEARCH 1 3 4
        S: d OK SEARCH completed
    """)


def test_bad_sequence_and_state(mailbox: Client, server: MailServer) -> None:
    mailbox.transcript("""
        C: a SEARCH $
        S: * SEARCH
        S: a OK SEARCH completed
    """)
    other = server.connect("alice")
    other.transcript("""
        C: b SEARCH ALL
        S: b BAD Command not allowed in this state
    """)

"""COPY and UID COPY transcripts (RFC 3501 §6.4.7, §6.4.8)."""

from __future__ import annotations

import datetime

import pytest

from tests.imap.commands.harness import Client, MailServer

ZONE = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
DATES = [datetime.datetime(2001, 1, n, 8, 0, 0, tzinfo=ZONE) for n in (1, 2, 3, 4)]
FLAGS = [["\\Seen"], ["\\Answered", "\\Flagged"], [], ["\\Draft", "$Work"]]


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    """INBOX with four messages (UIDs 1-4), MEETING with one (UID 1), and
    INBOX selected by ``client`` with nothing \\Recent."""
    for n, (flags, date) in enumerate(zip(FLAGS, DATES), start=1):
        server.append("INBOX", b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n), flags, date)
    server.create("MEETING")
    server.append("MEETING", b"Subject: old\r\n\r\nold\r\n", (), DATES[0])
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.ok("c LOGOUT")
    client.ok("s SELECT INBOX")
    return client


def test_rfc3501_section_6_4_7_example(server: MailServer, mailbox: Client) -> None:
    """With UIDPLUS's COPYUID (RFC 4315 §3): source UIDs 2:4 became 2:4."""
    mailbox.transcript("""
        C: A003 COPY 2:4 MEETING
        S: A003 OK [COPYUID ${uidvalidity} 2:4 2:4] COPY completed
    """, uidvalidity=server.uidvalidity("MEETING"))
    reader = server.connect("alice")
    reader.ok("r EXAMINE MEETING")
    reader.transcript("""
        C: r1 FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])
        S: * 1 FETCH (UID 1 FLAGS (\\Recent) INTERNALDATE "01-Jan-2001 08:00:00 +0530" BODY[HEADER.FIELDS (SUBJECT)] {16}
        S: Subject: old
        S:
        S: )
        S: * 2 FETCH (UID 2 FLAGS (\\Answered \\Flagged \\Recent) INTERNALDATE "02-Jan-2001 08:00:00 +0530" BODY[HEADER.FIELDS (SUBJECT)] {14}
        S: Subject: 2
        S:
        S: )
        S: * 3 FETCH (UID 3 FLAGS (\\Recent) INTERNALDATE "03-Jan-2001 08:00:00 +0530" BODY[HEADER.FIELDS (SUBJECT)] {14}
        S: Subject: 3
        S:
        S: )
        S: * 4 FETCH (UID 4 FLAGS (\\Draft $Work \\Recent) INTERNALDATE "04-Jan-2001 08:00:00 +0530" BODY[HEADER.FIELDS (SUBJECT)] {14}
        S: Subject: 4
        S:
        S: )
        S: r1 OK FETCH completed
    """)


def test_copy_to_the_selected_mailbox_announces_exists(server: MailServer, mailbox: Client) -> None:
    mailbox.transcript("""
        C: a COPY 1,3 INBOX
        S: * 6 EXISTS
        S: * 2 RECENT
        S: a OK [COPYUID ${uidvalidity} 1,3 5:6] COPY completed
        C: b FETCH 5:6 (UID FLAGS BODY.PEEK[TEXT])
        S: * 5 FETCH (UID 5 FLAGS (\\Seen \\Recent) BODY[TEXT] {8}
        S: body 1
        S: )
        S: * 6 FETCH (UID 6 FLAGS (\\Recent) BODY[TEXT] {8}
        S: body 3
        S: )
        S: b OK FETCH completed
    """, uidvalidity=server.uidvalidity("INBOX"))


def test_uid_copy(server: MailServer, mailbox: Client) -> None:
    """Nothing copied (no such UIDs): OK without COPYUID."""
    mailbox.transcript("""
        C: a UID COPY 4:* MEETING
        S: a OK [COPYUID ${uidvalidity} 4 2] UID COPY completed
        C: b UID COPY 50:60 MEETING
        S: b OK UID COPY completed
    """, uidvalidity=server.uidvalidity("MEETING"))
    assert server.status("MEETING").messages == 2


def test_missing_target_is_trycreate_and_copies_nothing(server: MailServer, mailbox: Client) -> None:
    mailbox.transcript("""
        C: a COPY 1:4 Nowhere
        S: a NO [TRYCREATE] Mailbox does not exist: Nowhere
        C: b UID COPY 70:80 Nowhere
        S: b NO [TRYCREATE] Mailbox does not exist: Nowhere
    """)
    assert server.mailbox_names() == ["INBOX", "MEETING"]


def test_sequence_numbers_out_of_range_are_bad(server: MailServer, mailbox: Client) -> None:
    mailbox.transcript("""
        C: a COPY 3:5 MEETING
        S: a BAD Invalid message sequence number 5
    """)
    assert server.status("MEETING").messages == 1


def test_copy_from_an_examined_mailbox(server: MailServer, client: Client) -> None:
    server.append("INBOX", b"Subject: x\r\n\r\nx\r\n", ["\\Flagged"])
    server.create("Archive")
    client.ok("e EXAMINE INBOX")
    client.transcript("""
        C: a COPY 1 Archive
        S: a OK [COPYUID ${uidvalidity} 1 1] COPY completed
    """, uidvalidity=server.uidvalidity("Archive"))
    status = server.status("Archive")
    assert (status.messages, status.uidnext) == (1, 2)


def test_other_session_sees_the_copies_at_its_next_command(
    server: MailServer, mailbox: Client
) -> None:
    target = server.connect("alice")
    target.ok("t SELECT MEETING")
    mailbox.ok("a COPY 1:2 MEETING")
    target.transcript("""
        C: t1 NOOP
        S: * 3 EXISTS
        S: * 3 RECENT
        S: t1 OK NOOP completed
        C: t2 FETCH 2:3 (UID FLAGS)
        S: * 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))
        S: * 3 FETCH (UID 3 FLAGS (\\Answered \\Flagged \\Recent))
        S: t2 OK FETCH completed
    """)


def test_copy_not_allowed_outside_selected_state(client: Client) -> None:
    client.transcript("""
        C: a COPY 1 INBOX
        S: a BAD Command not allowed in this state
    """)

"""STORE and UID STORE transcripts (RFC 3501 §6.4.6, §6.4.8)."""

from __future__ import annotations

import pytest

from tests.imap.commands.harness import Client, MailServer


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    """Four messages: 1 and 2 \\Seen, 4 \\Seen; none \\Recent for ``client``."""
    for n, flags in enumerate([["\\Seen"], ["\\Seen"], [], ["\\Seen"]], start=1):
        server.append("INBOX", b"Subject: %d\r\n\r\nx\r\n" % n, flags)
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.ok("c CLOSE")
    client.ok("s SELECT INBOX")
    return client


def test_rfc3501_section_6_4_6_example(mailbox: Client) -> None:
    mailbox.transcript("""
        C: A003 STORE 2:4 +FLAGS (\\Deleted)
        S: * 2 FETCH (FLAGS (\\Deleted \\Seen))
        S: * 3 FETCH (FLAGS (\\Deleted))
        S: * 4 FETCH (FLAGS (\\Deleted \\Seen))
        S: A003 OK STORE completed
    """)


def test_replace_add_remove_and_keywords(mailbox: Client) -> None:
    """Each keyword new to the mailbox is announced with FLAGS and
    PERMANENTFLAGS before the FETCH that first shows it (RFC 3501 §7.2.6);
    keywords stay in the list once announced (``-FLAGS`` does not shrink it)."""
    mailbox.transcript("""
        C: a STORE 1 FLAGS (\\Flagged $Work)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted
        S: * 1 FETCH (FLAGS (\\Flagged $Work))
        S: a OK STORE completed
        C: b STORE 1 +FLAGS (\\answered $WORK Later)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work Later)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work Later \\*)] Flags permitted
        S: * 1 FETCH (FLAGS (\\Answered \\Flagged $Work Later))
        S: b OK STORE completed
        C: c STORE 1 -FLAGS ($work \\Flagged Unknown)
        S: * 1 FETCH (FLAGS (\\Answered Later))
        S: c OK STORE completed
        C: d STORE 1:2 FLAGS ()
        S: * 1 FETCH (FLAGS ())
        S: * 2 FETCH (FLAGS ())
        S: d OK STORE completed
    """)


def test_unchanged_messages_are_reported_too(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a STORE 1:2 +FLAGS \\Seen
        S: * 1 FETCH (FLAGS (\\Seen))
        S: * 2 FETCH (FLAGS (\\Seen))
        S: a OK STORE completed
    """)


def test_silent_sends_nothing_but_stores(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a STORE 3 +FLAGS.SILENT (\\Draft)
        S: a OK STORE completed
        C: b STORE 3 -FLAGS.SILENT (\\Seen)
        S: b OK STORE completed
        C: c STORE 2 FLAGS.SILENT (\\Answered)
        S: c OK STORE completed
        C: d FETCH 2:3 FLAGS
        S: * 2 FETCH (FLAGS (\\Answered))
        S: * 3 FETCH (FLAGS (\\Draft))
        S: d OK FETCH completed
    """)


def test_uid_store(mailbox: Client) -> None:
    """UID STORE answers with UID (after FLAGS, as in RFC 3501 §6.4.8's
    example); UIDs that do not exist are ignored without error."""
    mailbox.transcript("""
        C: a UID STORE 3:9 +FLAGS (\\Flagged)
        S: * 3 FETCH (FLAGS (\\Flagged) UID 3)
        S: * 4 FETCH (FLAGS (\\Flagged \\Seen) UID 4)
        S: a OK UID STORE completed
        C: b UID STORE 20:30 +FLAGS (\\Flagged)
        S: b OK UID STORE completed
        C: c UID STORE 9999:* -FLAGS.SILENT (\\Flagged)
        S: c OK UID STORE completed
        C: d FETCH 4 FLAGS
        S: * 4 FETCH (FLAGS (\\Seen))
        S: d OK FETCH completed
    """)


def test_recent_and_unknown_system_flags_are_bad(mailbox: Client) -> None:
    """\\Recent is not settable (RFC 3501 §2.3.2, not in PERMANENTFLAGS)."""
    mailbox.transcript("""
        C: a STORE 1 +FLAGS (\\Recent)
        S: a BAD \\Recent cannot be stored
        C: b STORE 1 FLAGS (\\Seen \\Bogus)
        S: b BAD Unknown system flag \\Bogus
        C: c UID STORE 99 FLAGS (\\Recent)
        S: c BAD \\Recent cannot be stored
        C: d FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\\Seen))
        S: d OK FETCH completed
    """)


def test_sequence_numbers_out_of_range_are_bad(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a STORE 5 +FLAGS (\\Seen)
        S: a BAD Invalid message sequence number 5
    """)


def test_read_only_mailbox_refuses(server: MailServer, client: Client) -> None:
    server.append("INBOX", b"Subject: x\r\n\r\nx\r\n")
    client.ok("e EXAMINE INBOX")
    client.transcript("""
        C: a STORE 1 +FLAGS (\\Seen)
        S: a NO [READ-ONLY] Mailbox is read-only
        C: b UID STORE 1 -FLAGS.SILENT (\\Seen)
        S: b NO [READ-ONLY] Mailbox is read-only
    """)
    assert server.status("INBOX").unseen == 1


def test_store_not_allowed_outside_selected_state(client: Client) -> None:
    client.transcript("""
        C: a STORE 1 +FLAGS (\\Seen)
        S: a BAD Command not allowed in this state
    """)


def test_other_session_sees_changes_at_its_next_command(
    server: MailServer, mailbox: Client
) -> None:
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    mailbox.ok("a STORE 3 +FLAGS (\\Flagged)")
    mailbox.ok("b STORE 1 -FLAGS.SILENT (\\Seen)")
    other.transcript("""
        C: o1 NOOP
        S: * 1 FETCH (FLAGS ())
        S: * 3 FETCH (FLAGS (\\Flagged))
        S: o1 OK NOOP completed
        C: o2 NOOP
        S: o2 OK NOOP completed
    """)


def test_no_expunge_during_store(server: MailServer, mailbox: Client) -> None:
    """While another session's EXPUNGE is pending, STORE holds it back
    (RFC 3501 §7.4.1) and the expunged message gets no FETCH."""
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    other.ok("o1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("o2 EXPUNGE")
    mailbox.transcript("""
        C: a STORE 1:3 +FLAGS (\\Answered)
        S: * 1 FETCH (FLAGS (\\Answered \\Seen))
        S: * 3 FETCH (FLAGS (\\Answered))
        S: a OK STORE completed
        C: b NOOP
        S: * 2 EXPUNGE
        S: b OK NOOP completed
    """)

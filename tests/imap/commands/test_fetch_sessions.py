"""FETCH with two sessions on one mailbox: the implicit \\Seen reaches the
other session as an untagged FETCH at its next command, and no EXPUNGE is
sent during FETCH (RFC 3501 §7.4.1); a message expunged meanwhile is
left out (RFC 2180 §4.1.2) and its EXPUNGE comes with the next NOOP."""

from __future__ import annotations

import pytest

from tests.imap.commands.harness import Client, MailServer


@pytest.fixture
def pair(server: MailServer) -> tuple[Client, Client]:
    for n in range(1, 4):
        server.append("INBOX", b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n))
    first = server.connect("alice")
    first.ok("a SELECT INBOX")   # claims \Recent
    second = server.connect("alice")
    second.ok("b SELECT INBOX")
    return first, second


def test_implicit_seen_reaches_the_other_session(pair: tuple[Client, Client]) -> None:
    first, second = pair
    first.transcript("""
        C: a1 FETCH 2 BODY[TEXT]
        S: * 2 FETCH (BODY[TEXT] {8}
        S: body 2
        S:  FLAGS (\\Seen \\Recent))
        S: a1 OK FETCH completed
    """)
    second.transcript("""
        C: b1 NOOP
        S: * 2 FETCH (FLAGS (\\Seen))
        S: b1 OK NOOP completed
        C: b2 FETCH 2 BODY[TEXT]
        S: * 2 FETCH (BODY[TEXT] {8}
        S: body 2
        S: )
        S: b2 OK FETCH completed
    """)
    # Nothing changed for the first session: no FETCH for its own change.
    first.transcript("""
        C: a2 NOOP
        S: a2 OK NOOP completed
    """)


def test_no_expunge_during_fetch(pair: tuple[Client, Client]) -> None:
    first, second = pair
    first.ok("a1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    # Message 2 was \Recent in the first session: its RECENT count falls
    # from 3 to 2 and must be re-sent (RFC 3501 §7.3.2); the second session
    # held none, so its count (0) is unchanged and not repeated below.
    first.transcript("""
        C: a2 EXPUNGE
        S: * 2 EXPUNGE
        S: * 2 RECENT
        S: a2 OK EXPUNGE completed
    """)
    second.transcript("""
        C: b1 FETCH 1:3 (UID FLAGS)
        S: * 1 FETCH (UID 1 FLAGS ())
        S: * 3 FETCH (UID 3 FLAGS ())
        S: b1 OK FETCH completed
        C: b2 UID FETCH 1:* FLAGS
        S: * 1 FETCH (FLAGS () UID 1)
        S: * 3 FETCH (FLAGS () UID 3)
        S: b2 OK UID FETCH completed
        C: b3 NOOP
        S: * 2 EXPUNGE
        S: b3 OK NOOP completed
        C: b4 FETCH 1:2 UID
        S: * 1 FETCH (UID 1)
        S: * 2 FETCH (UID 3)
        S: b4 OK FETCH completed
    """)


def test_flag_changes_of_others_carry_uid_after_a_uid_command(
    pair: tuple[Client, Client]
) -> None:
    first, second = pair
    second.ok("b1 UID FETCH 1 UID")
    first.ok("a1 STORE 3 +FLAGS.SILENT (\\Flagged)")
    second.transcript("""
        C: b2 NOOP
        S: * 3 FETCH (FLAGS (\\Flagged) UID 3)
        S: b2 OK NOOP completed
    """)

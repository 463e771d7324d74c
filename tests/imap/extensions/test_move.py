"""MOVE and UID MOVE (RFC 6851) as byte-exact transcripts: the RFC's two
examples re-enacted (EXPUNGE, and VANISHED under QRESYNC), atomicity as
other sessions see it, and the error cases."""

from __future__ import annotations

import datetime

from tests.imap.commands.harness import Client, MailServer, message

ZONE = datetime.timezone(datetime.timedelta(hours=-7))


def source(server: MailServer, client: Client, qresync: bool = False) -> Client:
    """INBOX with UIDs 1-8 (3 is \\Flagged, 4 has a keyword, each its own
    internal date), ``foo`` with UIDs 1-3; INBOX selected by ``client`` with
    nothing \\Recent."""
    for n in range(1, 9):
        flags = {3: ["\\Flagged"], 4: ["$Work", "\\Seen"]}.get(n, [])
        server.append("INBOX", message(n), flags, datetime.datetime(2020, 1, n, 9, 0, tzinfo=ZONE))
    server.create("foo")
    server.append_many("foo", [message(n) for n in (91, 92, 93)])
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.disconnect()
    if qresync:
        client.ok("e ENABLE QRESYNC")
    client.ok("s SELECT INBOX")
    return client


def test_rfc6851_section_4_1_uid_move_example(server: MailServer, client: Client) -> None:
    """COPYUID first (untagged, the RFC's ``* OK [COPYUID 432432 42:69
    1202:1229]``), then the expunges, then the tagged OK."""
    source(server, client)
    client.transcript(
        """
        C: a UID MOVE 3:5 foo
        S: * OK [COPYUID ${foo} 3:5 4:6] Moved UIDs
        S: * 5 EXPUNGE
        S: * 4 EXPUNGE
        S: * 3 EXPUNGE
        S: a OK UID MOVE completed
        """,
        foo=server.uidvalidity("foo"),
    )
    moved = server.read_messages("foo")[3:]
    assert [(r.uid, r.flags, r.internal_date.day, d) for r, d in moved] == [
        (4, ("\\Flagged",), 3, message(3)), (5, ("\\Seen", "$Work"), 4, message(4)),
        (6, (), 5, message(5))]
    assert [r.uid for r, _ in server.read_messages("INBOX")] == [1, 2, 6, 7, 8]


def test_rfc6851_section_4_2_uid_move_with_qresync_example(server: MailServer, client: Client) -> None:
    """Under QRESYNC the expunges are one ``* VANISHED uid-set`` (RFC 6851
    §4.2, RFC 7162 §3.2.10) and the tagged OK carries HIGHESTMODSEQ."""
    source(server, client, qresync=True)
    client.transcript(
        """
        C: a UID MOVE 3:5 foo
        S: * OK [COPYUID ${foo} 3:5 4:6] Moved UIDs
        S: * VANISHED 3:5
        S: a OK [HIGHESTMODSEQ ${modseq}] UID MOVE completed
        """,
        foo=server.uidvalidity("foo"), modseq=server.status("INBOX").highestmodseq + 1,
    )
    assert [r.uid for r, _ in server.read_messages("INBOX")] == [1, 2, 6, 7, 8]


def test_move_by_sequence_numbers_and_into_the_selected_mailbox(
    server: MailServer, client: Client
) -> None:
    """MOVE 2,7 numbers messages as the client sees them; moving into the
    selected mailbox gives new UIDs: the copies arrive as EXISTS after the
    expunges (the conformance script's order)."""
    source(server, client)
    client.transcript(
        """
        C: a MOVE 2,7 foo
        S: * OK [COPYUID ${foo} 2,7 4:5] Moved UIDs
        S: * 7 EXPUNGE
        S: * 2 EXPUNGE
        S: a OK MOVE completed
        C: b MOVE 1 INBOX
        S: * OK [COPYUID ${inbox} 1 9] Moved UIDs
        S: * 1 EXPUNGE
        S: * 6 EXISTS
        S: * 1 RECENT
        S: b OK MOVE completed
        C: c UID FETCH 1:* (FLAGS)
        S: * 1 FETCH (FLAGS (\\Flagged) UID 3)
        S: * 2 FETCH (FLAGS (\\Seen $Work) UID 4)
        S: * 3 FETCH (FLAGS () UID 5)
        S: * 4 FETCH (FLAGS () UID 6)
        S: * 5 FETCH (FLAGS () UID 8)
        S: * 6 FETCH (FLAGS (\\Recent) UID 9)
        S: c OK UID FETCH completed
        """,
        foo=server.uidvalidity("foo"), inbox=server.uidvalidity("INBOX"),
    )


def test_other_sessions_see_the_move_atomically(server: MailServer, client: Client) -> None:
    """A session on the source hears the expunges at its next command (not
    during FETCH); a session on the target hears EXISTS (and, as the only
    read-write session there, owns the moved messages as \\Recent along
    with the three it found at SELECT); a STATUS taken
    after the OK sees the messages in the target and not the source."""
    source(server, client)
    watcher = server.connect("alice")
    watcher.ok("w SELECT INBOX")
    target = server.connect("alice")
    target.ok("t SELECT foo")
    client.ok("m UID MOVE 1:2 foo")
    assert (server.status("INBOX").messages, server.status("foo").messages) == (6, 5)
    watcher.transcript("""
        C: f FETCH 1:2 (UID)
        S: f OK FETCH completed
        C: n NOOP
        S: * 2 EXPUNGE
        S: * 1 EXPUNGE
        S: n OK NOOP completed
    """)
    target.transcript("""
        C: n NOOP
        S: * 5 EXISTS
        S: * 5 RECENT
        S: n OK NOOP completed
    """)


def test_move_errors_move_nothing(server: MailServer, client: Client) -> None:
    source(server, client)
    client.transcript("""
        C: a MOVE 1:3 Nowhere
        S: a NO [TRYCREATE] Mailbox does not exist: Nowhere
        C: b UID MOVE 50:60 Nowhere
        S: b NO [TRYCREATE] Mailbox does not exist: Nowhere
        C: c MOVE 7:9 foo
        S: c BAD Invalid message sequence number 9
        C: d UID MOVE 50:60 foo
        S: d OK UID MOVE completed
    """)
    assert server.status("INBOX").messages == 8
    assert server.status("foo").messages == 3
    examiner = server.connect("alice")
    examiner.ok("e EXAMINE INBOX")
    examiner.transcript("""
        C: a MOVE 1 foo
        S: a NO [READ-ONLY] Mailbox is read-only
    """)
    assert server.status("foo").messages == 3


def test_move_the_saved_search_result(server: MailServer, client: Client) -> None:
    """SEARCHRES ``$`` works as MOVE's set (RFC 5182 §2.2)."""
    source(server, client)
    client.transcript(
        """
        C: s SEARCH RETURN (SAVE) KEYWORD $Work
        S: s OK SEARCH completed
        C: a MOVE $ foo
        S: * OK [COPYUID ${foo} 4 4] Moved UIDs
        S: * 4 EXPUNGE
        S: a OK MOVE completed
        C: b MOVE $ foo
        S: b OK MOVE completed
        """,
        foo=server.uidvalidity("foo"),
    )

"""RECENT is re-sent when expunges lower it (RFC 3501 §7.3.2): byte-exact
two-session transcripts.

RECENT "occurs ... if the size of the mailbox changes" and "MUST be
recorded by the client"; a client cannot work out the new count itself
after EXPUNGE (it does not track which messages are \\Recent to it unless
it fetched their flags). So after expunges the server sends the new count
whenever it differs from the one the client was last told; when it does
not (no expunged message was recent to this session) nothing is repeated,
as in RFC 3501 §6.4.3's EXPUNGE example. With EXISTS it is always sent.
The count a client believes never exceeds EXISTS.
"""

from __future__ import annotations

from imapd.mail.flags import FlagOp
from imapd.mail.service import MailService
from tests.imap.commands.harness import Client, MailServer, message, run


def selected(server: MailServer, mailbox: str = "INBOX") -> Client:
    client = server.connect("alice")
    client.ok(f"s SELECT {mailbox}")
    return client


def test_another_session_appends_two_and_expunges_both(server: MailServer) -> None:
    """The issue's transcript: A was told of two recent messages; B
    expunges both; A's NOOP must end with ``* 0 RECENT``."""
    a = selected(server)
    b = selected(server)
    uv = server.uidvalidity("INBOX")
    b.transcript(f"""
        C: b1 APPEND INBOX {{5+}}
        C: first
        S: * 1 EXISTS
        S: * 0 RECENT
        S: b1 OK [APPENDUID {uv} 1] APPEND completed
        C: b2 APPEND INBOX {{6+}}
        C: second
        S: * 2 EXISTS
        S: * 0 RECENT
        S: b2 OK [APPENDUID {uv} 2] APPEND completed
    """)
    a.transcript("""
        C: a1 NOOP
        S: * 2 EXISTS
        S: * 2 RECENT
        S: a1 OK NOOP completed
    """)
    b.transcript("""
        C: b3 STORE 1:2 +FLAGS.SILENT (\\Deleted)
        S: b3 OK STORE completed
        C: b4 EXPUNGE
        S: * 2 EXPUNGE
        S: * 1 EXPUNGE
        S: b4 OK EXPUNGE completed
    """)
    a.transcript("""
        C: a2 NOOP
        S: * 2 EXPUNGE
        S: * 1 EXPUNGE
        S: * 0 RECENT
        S: a2 OK NOOP completed
    """)


def test_added_and_expunged_before_being_announced_changes_nothing(server: MailServer) -> None:
    """The messages never reached A's client: no EXISTS, no EXPUNGE, and
    its RECENT (0) still holds, so nothing at all is sent."""
    a = selected(server)
    b = selected(server)
    b.ok("b1 APPEND INBOX (\\Deleted) {5+}\r\nfirst")
    b.ok("b2 APPEND INBOX (\\Deleted) {6+}\r\nsecond")
    b.ok("b3 EXPUNGE")
    a.transcript("""
        C: a1 NOOP
        S: a1 OK NOOP completed
    """)


def test_unannounced_additions_do_not_count_before_their_exists(server: MailServer) -> None:
    """One told message expunged, one new one arrived, in the same drain:
    EXPUNGE, then EXISTS with RECENT once (the new count, not a stale one)."""
    a = selected(server)
    b = selected(server)
    b.ok("b1 APPEND INBOX (\\Deleted) {5+}\r\nfirst")
    a.transcript("""
        C: a1 NOOP
        S: * 1 EXISTS
        S: * 1 RECENT
        S: a1 OK NOOP completed
    """)
    b.ok("b2 APPEND INBOX {6+}\r\nsecond")
    b.ok("b3 EXPUNGE")
    a.transcript("""
        C: a2 NOOP
        S: * 1 EXPUNGE
        S: * 1 EXISTS
        S: * 1 RECENT
        S: a2 OK NOOP completed
    """)


def test_expunging_messages_not_recent_here_sends_no_recent(server: MailServer) -> None:
    server.append_many("INBOX", [message(1), message(2)], [["\\Deleted"], []])
    first = selected(server)  # holds both as \Recent
    second = selected(server)  # holds none
    second.transcript("""
        C: b1 EXPUNGE
        S: * 1 EXPUNGE
        S: b1 OK EXPUNGE completed
    """)
    first.transcript("""
        C: a1 NOOP
        S: * 1 EXPUNGE
        S: * 1 RECENT
        S: a1 OK NOOP completed
    """)


def test_held_back_expunges_keep_the_count_until_announced(server: MailServer) -> None:
    """During FETCH and STORE expunges wait (RFC 3501 §7.4.1), and so does
    the lower RECENT: the client still numbers the message and counts it."""
    server.append_many("INBOX", [message(1), message(2)], [[], ["\\Deleted"]])
    a = selected(server)
    b = selected(server)
    b.ok("b1 EXPUNGE")
    a.transcript("""
        C: a1 FETCH 1:2 (FLAGS)
        S: * 1 FETCH (FLAGS (\\Recent))
        S: a1 OK FETCH completed
        C: a2 STORE 1 +FLAGS (\\Seen)
        S: * 1 FETCH (FLAGS (\\Seen \\Recent))
        S: a2 OK STORE completed
        C: a3 NOOP
        S: * 2 EXPUNGE
        S: * 1 RECENT
        S: a3 OK NOOP completed
    """)


def test_own_uid_expunge_and_move_resend_recent(server: MailServer) -> None:
    server.create("Archive")
    server.append_many("INBOX", [message(n) for n in (1, 2, 3)],
                       [["\\Deleted"], [], []])
    a = selected(server)
    uv = server.uidvalidity("Archive")
    a.transcript(f"""
        C: a1 UID EXPUNGE 1:3
        S: * 1 EXPUNGE
        S: * 2 RECENT
        S: a1 OK UID EXPUNGE completed
        C: a2 MOVE 2 Archive
        S: * OK [COPYUID {uv} 3 1] Moved UIDs
        S: * 2 EXPUNGE
        S: * 1 RECENT
        S: a2 OK MOVE completed
    """)


def test_vanished_resends_recent_too(server: MailServer) -> None:
    """QRESYNC reports expunges as VANISHED (RFC 7162 §3.2.10): the size
    changes all the same, so the lower count follows."""
    server.append_many("INBOX", [message(1), message(2)], [["\\Deleted"], []])
    a = server.connect("alice")
    a.ok("e ENABLE QRESYNC")
    a.ok("s SELECT INBOX")
    b = selected(server)
    b.ok("b1 EXPUNGE")
    a.transcript(f"""
        C: a1 NOOP
        S: * VANISHED 1
        S: * 1 RECENT
        S: a1 OK NOOP completed
    """)
    assert server.uidvalidity("INBOX")


def test_another_process_expunges(server: MailServer, other_process: MailService) -> None:
    """Expunges made by another process ring this one's watches; the lower
    count is re-sent at the next command (or IDLE push)."""
    server.append_many("INBOX", [message(1), message(2), message(3)],
                       [["\\Deleted"], [], ["\\Deleted"]])
    a = selected(server)
    selection = run(other_process.open("alice", "INBOX", False))
    assert a.exchange(b"i IDLE\r\n") == b"+ idling\r\n"
    run(selection.expunge())
    server.clock.advance(0)  # the idler's push
    a.transcript("""
        S: * 3 EXPUNGE
        S: * 1 EXPUNGE
        S: * 1 RECENT
        C: DONE
        S: i OK IDLE terminated
    """)
    run(selection.store_flags([2], FlagOp.ADD, ("\\Deleted",)))
    run(selection.expunge())
    server.poll()
    a.transcript("""
        C: a1 NOOP
        S: * 1 EXPUNGE
        S: * 0 RECENT
        S: a1 OK NOOP completed
    """)
    selection.close()


def test_selected_mailbox_deleted_by_another_session(server: MailServer) -> None:
    server.create("Doomed")
    server.append_many("Doomed", [message(1), message(2)])
    watcher = selected(server, "Doomed")
    server.connect("alice").ok("d DELETE Doomed")
    watcher.transcript("""
        C: n NOOP
        S: * 2 EXPUNGE
        S: * 1 EXPUNGE
        S: * 0 RECENT
        S: n OK NOOP completed
    """)

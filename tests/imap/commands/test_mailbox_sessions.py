"""Several sessions on one mailbox (RFC 3501 §5.2, §7.3, §7.4): what one
session does reaches every other selected session as untagged EXISTS,
RECENT, FETCH (FLAGS) or EXPUNGE at its next command, never EXPUNGE during
FETCH/STORE/SEARCH (§7.4.1), and \\Recent belongs to exactly one session
(§2.3.2). Sessions of one in-process server, and a second store instance
on the same data directory (another server process) through polling."""

from __future__ import annotations

from imapd.mail.records import AppendItem
from imapd.imap.session.state import State
from tests.imap.commands.harness import Client, MailServer, message, run

APPEND_HELLO = b"x APPEND INBOX {5+}\r\nhello\r\n"


def selected(server: MailServer, mailbox: str = "INBOX", command: str = "SELECT") -> Client:
    client = server.connect("alice")
    client.ok(f"s {command} {mailbox}")
    return client


def test_append_reaches_other_sessions_and_is_recent_in_exactly_one(server: MailServer) -> None:
    first = selected(server)
    second = selected(server)
    examiner = selected(server, command="EXAMINE")
    appender = server.connect("alice")
    assert appender.exchange(APPEND_HELLO) == (
        b"x OK [APPENDUID %d 1] APPEND completed\r\n" % server.uidvalidity("INBOX"))
    first.transcript(
        """
        C: a NOOP
        S: * 1 EXISTS
        S: * 1 RECENT
        S: a OK NOOP completed
        C: b NOOP
        S: b OK NOOP completed
        """
    )
    second.transcript(
        """
        C: a NOOP
        S: * 1 EXISTS
        S: * 0 RECENT
        S: a OK NOOP completed
        """
    )
    # A read-only session claims nothing; the message is claimed already.
    examiner.transcript(
        """
        C: a CHECK
        S: * 1 EXISTS
        S: * 0 RECENT
        S: a OK CHECK completed
        """
    )


def test_append_by_a_selected_session(server: MailServer) -> None:
    other = selected(server)
    own = selected(server)
    own.transcript(
        """
        C: x APPEND INBOX {5+}
        C: hello
        S: * 1 EXISTS
        S: * 0 RECENT
        S: x OK [APPENDUID ${uidvalidity} 1] APPEND completed
        """,
        uidvalidity=server.uidvalidity("INBOX"),
    )
    assert other.lines("n NOOP") == [b"* 1 EXISTS", b"* 1 RECENT", b"n OK NOOP completed"]


def test_expunge_reaches_others_but_not_during_fetch_store_search(server: MailServer) -> None:
    server.append_many("INBOX", [message(n) for n in range(1, 5)],
                       [[], ["\\Deleted"], [], ["\\Deleted"]])
    expunger = selected(server)
    watcher = selected(server)
    expunger.transcript(
        """
        C: e EXPUNGE
        S: * 4 EXPUNGE
        S: * 2 EXPUNGE
        S: * 2 RECENT
        S: e OK EXPUNGE completed
        """
    )
    # (The expunger selected first and so held all four as \Recent: two
    # of them went, and the lower count must be told, RFC 3501 §7.3.2.)
    # The watcher still numbers 4 messages until it is told.
    for command in ("f FETCH 4 (FLAGS)", "t STORE 3 +FLAGS.SILENT (\\Flagged)", "q SEARCH ALL"):
        out = watcher.lines(command)
        assert not [line for line in out if line.endswith(b"EXPUNGE")], out
        assert out[-1].split(b" ")[1] == b"OK", out
    watcher.transcript(
        """
        C: n NOOP
        S: * 4 EXPUNGE
        S: * 2 EXPUNGE
        S: n OK NOOP completed
        C: m NOOP
        S: m OK NOOP completed
        """
    )


def test_flag_changes_reach_other_sessions(server: MailServer) -> None:
    server.append_many("INBOX", [message(1), message(2)])
    changer = selected(server)
    watcher = selected(server)
    # $Important is a new keyword: both sessions get the grown FLAGS list
    # (RFC 3501 §7.2.6), the changer although .SILENT sends it no FETCH,
    # the watcher before the FETCH that shows it.
    changer.transcript(
        """
        C: c STORE 2 +FLAGS.SILENT (\\Seen $Important)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted
        S: c OK STORE completed
        """
    )
    watcher.transcript(
        """
        C: n NOOP
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted
        S: * 2 FETCH (FLAGS (\\Seen $Important))
        S: n OK NOOP completed
        """
    )
    # The recent messages belong to the session that selected first.
    assert changer.lines("d STORE 1 FLAGS.SILENT (\\Answered)") == [b"d OK STORE completed"]
    assert watcher.lines("m NOOP") == [
        b"* 1 FETCH (FLAGS (\\Answered))", b"m OK NOOP completed"]


def test_close_by_one_session_expunges_for_the_others(server: MailServer) -> None:
    server.append_many("INBOX", [message(1), message(2)], [["\\Deleted"], []])
    closer = selected(server)
    watcher = selected(server)
    assert closer.lines("c CLOSE") == [b"c OK CLOSE completed"]
    assert watcher.lines("n NOOP") == [b"* 1 EXPUNGE", b"n OK NOOP completed"]


def test_selected_mailbox_deleted_by_another_session(server: MailServer) -> None:
    server.create("Doomed")
    server.append_many("Doomed", [message(1), message(2)])
    watcher = selected(server, "Doomed")  # both messages \Recent here
    deleter = server.connect("alice")
    deleter.ok("d DELETE Doomed")
    watcher.transcript(
        """
        C: n NOOP
        S: * 2 EXPUNGE
        S: * 1 EXPUNGE
        S: * 0 RECENT
        S: n OK NOOP completed
        C: c CLOSE
        S: c OK CLOSE completed
        """
    )
    assert watcher.session.state is State.AUTHENTICATED


def test_selected_mailbox_renamed_by_another_session(server: MailServer) -> None:
    server.create("Old")
    server.append("Old", message(1))
    watcher = selected(server, "Old")
    renamer = server.connect("alice")
    renamer.ok("r RENAME Old New")
    assert renamer.lines("x APPEND New {5+}\r\nhello") == [
        b"x OK [APPENDUID %d 2] APPEND completed" % server.uidvalidity("New")]
    # The watcher keeps working on the renamed mailbox (RFC 2180 §3.4) and,
    # as its only read-write session, owns the new message as \Recent.
    watcher.transcript(
        """
        C: n NOOP
        S: * 2 EXISTS
        S: * 2 RECENT
        S: n OK NOOP completed
        """
    )
    assert watcher.session.selected is not None
    assert watcher.session.selected.name == "New"  # type: ignore[attr-defined]


def test_changes_from_another_process_arrive_at_the_next_command(server: MailServer) -> None:
    """Another process's commit rings this process's watches (its backend's
    feed; in inline mode at once, threaded via the poller): no factory
    timer, the session catches up before its next drain."""
    watcher = selected(server)
    other_process = server.other_process()
    try:
        run(other_process.deliver("alice", "INBOX", [AppendItem(message(1), ("\\Seen",))]))
    finally:
        run(other_process.close())
    watcher.transcript(
        """
        C: b NOOP
        S: * 1 EXISTS
        S: * 1 RECENT
        S: b OK NOOP completed
        """
    )


def test_session_gone_releases_its_view(server: MailServer) -> None:
    leaver = selected(server)
    inbox = run(server.mail.target_entry("alice", "INBOX"))
    assert server.backend.sqlite_feed.subscriber_count(inbox.id) == 1
    leaver.disconnect()
    assert server.mail.watches(inbox.id) == []
    assert server.backend.sqlite_feed.subscriber_count(inbox.id) == 0
    # New mail now is recent for the next session that selects.
    server.append("INBOX", message(1))
    assert b"* 1 RECENT" in server.connect().ok("t SELECT INBOX")


def test_unsolicited_fetch_carries_uid_after_a_uid_command(server: MailServer) -> None:
    """RFC 3501 §6.4.8 / issue 3: once a session has used UID commands, the
    flag changes it hears about from others name the UID too."""
    server.append_many("INBOX", [message(1), message(2)])
    watcher = selected(server)
    changer = selected(server)
    assert watcher.ok("u UID SEARCH ALL")[0] == b"* SEARCH 1 2"
    changer.ok("c STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert watcher.lines("n NOOP") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)", b"n OK NOOP completed"]

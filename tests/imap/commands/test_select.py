"""SELECT, EXAMINE, CHECK, CLOSE, EXPUNGE as byte-exact transcripts
(RFC 3501 §6.3.1, §6.3.2, §6.4.1–§6.4.3), including the RFC's examples
re-enacted on a real store (its UIDVALIDITY/UIDNEXT values and free texts
are the server's own)."""

from __future__ import annotations

from imapd.imap.session.state import State
from tests.imap.commands.harness import Client, MailServer, message

SYSTEM = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
FLAGS = f"* FLAGS ({SYSTEM})"
PERMANENT_RW = f"* OK [PERMANENTFLAGS ({SYSTEM} \\*)] Flags permitted"
PERMANENT_RO = "* OK [PERMANENTFLAGS ()] No permanent flags permitted"


def claim_recent(server: MailServer, mailbox: str) -> None:
    """Another session selects ``mailbox`` and leaves: its messages are no
    longer \\Recent for anyone (RFC 3501 §2.3.2)."""
    other = server.connect("alice")
    other.ok(f"c SELECT {mailbox}")
    other.disconnect()


def test_rfc3501_section_6_3_1_select_example(server: MailServer, client: Client) -> None:
    # 172 messages, the last one recent, the first 11 seen.
    seen = [["\\Seen"] if n <= 11 else [] for n in range(1, 172)]
    server.append_many("INBOX", [message(n) for n in range(1, 172)], seen)
    claim_recent(server, "INBOX")
    server.append("INBOX", message(172))
    client.transcript(
        f"""
        C: A142 SELECT INBOX
        S: {FLAGS}
        S: * 172 EXISTS
        S: * 1 RECENT
        S: * OK [UNSEEN 12] First unseen message
        S: {PERMANENT_RW}
        S: * OK [UIDVALIDITY ${{uidvalidity}}] UIDs valid
        S: * OK [UIDNEXT 173] Predicted next UID
        S: * OK [HIGHESTMODSEQ ${{highestmodseq}}] Highest
        S: A142 OK [READ-WRITE] SELECT completed
        """,
        uidvalidity=server.uidvalidity("INBOX"),
        highestmodseq=server.status("INBOX").highestmodseq,
    )
    assert client.session.state is State.SELECTED


def test_rfc3501_section_6_3_2_examine_example(server: MailServer, client: Client) -> None:
    server.create("blurdybloop")
    seen = [["\\Seen"] if n <= 7 else [] for n in range(1, 16)]
    server.append_many("blurdybloop", [message(n) for n in range(1, 16)], seen)
    claim_recent(server, "blurdybloop")
    server.append_many("blurdybloop", [message(16), message(17)])
    expected = f"""
        C: A932 EXAMINE blurdybloop
        S: {FLAGS}
        S: * 17 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 8] First unseen message
        S: {PERMANENT_RO}
        S: * OK [UIDVALIDITY ${{uidvalidity}}] UIDs valid
        S: * OK [UIDNEXT 18] Predicted next UID
        S: * OK [HIGHESTMODSEQ ${{highestmodseq}}] Highest
        S: A932 OK [READ-ONLY] EXAMINE completed
        """
    uidvalidity = server.uidvalidity("blurdybloop")
    highestmodseq = server.status("blurdybloop").highestmodseq
    client.transcript(expected, uidvalidity=uidvalidity, highestmodseq=highestmodseq)
    # EXAMINE MUST NOT cause messages to lose \Recent: a second EXAMINE
    # and then a SELECT elsewhere still see both.
    client.transcript(expected, uidvalidity=uidvalidity, highestmodseq=highestmodseq)
    other = server.connect("alice")
    assert b"* 2 RECENT" in other.lines("s SELECT blurdybloop")


def test_select_empty_mailbox_has_no_unseen_code(server: MailServer, client: Client) -> None:
    client.transcript(
        f"""
        C: a SELECT INBOX
        S: {FLAGS}
        S: * 0 EXISTS
        S: * 0 RECENT
        S: {PERMANENT_RW}
        S: * OK [UIDVALIDITY ${{uidvalidity}}] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [HIGHESTMODSEQ 1] Highest
        S: a OK [READ-WRITE] SELECT completed
        """,
        uidvalidity=server.uidvalidity("INBOX"),
    )


def test_select_lists_keywords_in_flags_and_permanentflags(server: MailServer, client: Client) -> None:
    server.append("INBOX", message(1), ["\\Seen", "$Forwarded"])
    server.append("INBOX", message(2), ["Work"])
    out = client.ok("a SELECT INBOX")
    assert out[0] == f"* FLAGS ({SYSTEM} $Forwarded Work)".encode()
    assert f"* OK [PERMANENTFLAGS ({SYSTEM} $Forwarded Work \\*)] Flags permitted".encode() in out
    assert b"* OK [UNSEEN 2] First unseen message" in out
    # Each message is \Recent in this session only.
    assert out[1:3] == [b"* 2 EXISTS", b"* 2 RECENT"]


def test_failed_select_leaves_session_authenticated(server: MailServer, client: Client) -> None:
    client.ok("a SELECT INBOX")
    view = client.session.selected
    assert view is not None
    client.transcript(
        """
        C: b SELECT nosuch
        S: b NO [NONEXISTENT] Mailbox does not exist: nosuch
        C: c CHECK
        S: c BAD Command not allowed in this state
        C: d EXAMINE nosuch
        S: d NO [NONEXISTENT] Mailbox does not exist: nosuch
        """
    )
    assert client.session.state is State.AUTHENTICATED
    assert client.session.selected is None
    assert view.watch.closed  # type: ignore[attr-defined]


def test_select_invalid_and_noselect_names(server: MailServer, client: Client) -> None:
    server.create("a/b")
    run_ok = client.ok("x DELETE a")  # a becomes \Noselect (it has an inferior)
    assert run_ok == [b"x OK DELETE completed"]
    client.transcript(
        """
        C: a SELECT a
        S: a NO [NONEXISTENT] Mailbox does not exist: a
        C: b SELECT "x%y"
        S: b NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        C: c SELECT "a//b"
        S: c NO [CANNOT] Invalid mailbox name: empty hierarchy level (leading, trailing or double '/')
        C: d SELECT "a/../b"
        S: d NO [CANNOT] Invalid mailbox name: '.' and '..' are not allowed as hierarchy levels
        C: e SELECT ""
        S: e NO [CANNOT] Invalid mailbox name: the name is empty
        """
    )


def test_select_is_case_insensitive_for_inbox_only(server: MailServer, client: Client) -> None:
    server.create("Work")
    assert client.ok("a SELECT inbox")[-1] == b"a OK [READ-WRITE] SELECT completed"
    assert client.lines("b SELECT work") == [
        b"b NO [NONEXISTENT] Mailbox does not exist: work"]


def test_select_needs_authentication(server: MailServer) -> None:
    anonymous = server.connect(None)
    anonymous.transcript(
        """
        C: a SELECT INBOX
        S: a BAD Command not allowed in this state
        C: b EXAMINE INBOX
        S: b BAD Command not allowed in this state
        """
    )


def test_reselect_drops_the_old_mailboxs_pending_updates(server: MailServer, client: Client) -> None:
    server.create("Work")
    client.ok("a SELECT INBOX")
    other = server.connect("alice")
    other.exchange(b"x APPEND INBOX {9+}\r\nSubject: \r\n")
    # The new mailbox's data only: no "* 1 EXISTS" for INBOX.
    out = client.ok("b SELECT Work")
    assert out[1:3] == [b"* 0 EXISTS", b"* 0 RECENT"]
    assert b"* 1 EXISTS" not in out
    # ...and INBOX's new message is not recent for this session any more
    # (it was claimed by this session's INBOX view, which is now closed).
    assert client.lines("c NOOP") == [b"c OK NOOP completed"]


def test_check(server: MailServer, client: Client) -> None:
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: FXXZ CHECK
        S: FXXZ OK CHECK completed
        """
    )
    assert client.session.state is State.SELECTED


def test_selected_state_commands_need_a_selection(client: Client) -> None:
    client.transcript(
        """
        C: a CHECK
        S: a BAD Command not allowed in this state
        C: b CLOSE
        S: b BAD Command not allowed in this state
        C: c EXPUNGE
        S: c BAD Command not allowed in this state
        """
    )


def flagged_mailbox(server: MailServer, count: int, deleted: set[int]) -> None:
    flags = [["\\Deleted"] if n in deleted else [] for n in range(1, count + 1)]
    server.append_many("INBOX", [message(n) for n in range(1, count + 1)], flags)


def test_rfc3501_section_6_4_3_expunge_example(server: MailServer, client: Client) -> None:
    """Messages 3, 4, 7 and 11 have \\Deleted. The RFC lists the expunges
    lowest first (3, 3, 5, 8); we send them highest first, which names the
    same messages and needs no renumbering (RFC 3501 §7.4.1 allows both).
    The RFC's example sends no RECENT: its expunged messages were not
    recent. Here this session's SELECT made all 11 \\Recent, so the count
    falls to 7 and RECENT is re-sent (§7.3.2: the client cannot decrement
    it itself)."""
    flagged_mailbox(server, 11, {3, 4, 7, 11})
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: A202 EXPUNGE
        S: * 11 EXPUNGE
        S: * 7 EXPUNGE
        S: * 4 EXPUNGE
        S: * 3 EXPUNGE
        S: * 7 RECENT
        S: A202 OK EXPUNGE completed
        """
    )
    status = server.status("INBOX")
    assert (status.messages, status.uidnext) == (7, 12)


def test_expunge_responses_replayed_name_exactly_the_deleted_messages(
    server: MailServer, client: Client
) -> None:
    deleted = {1, 2, 5, 9, 10, 16, 20}
    flagged_mailbox(server, 20, deleted)
    client.ok("s SELECT INBOX")
    out = client.ok("e EXPUNGE")
    mailbox = list(range(1, 21))  # UIDs by sequence number, as the client sees them
    removed = []
    # All 20 were \Recent in this session: RECENT follows with the new count.
    assert out[-2] == b"* 13 RECENT"
    for line in out[:-2]:
        number, word = line.split(b" ")[1:3]
        assert word == b"EXPUNGE"
        removed.append(mailbox.pop(int(number) - 1))
    assert sorted(removed) == sorted(deleted)
    assert mailbox == [n for n in range(1, 21) if n not in deleted]


def test_expunge_with_nothing_deleted(server: MailServer, client: Client) -> None:
    flagged_mailbox(server, 3, set())
    client.ok("s SELECT INBOX")
    assert client.lines("e EXPUNGE") == [b"e OK EXPUNGE completed"]


def test_expunge_on_examined_mailbox_is_refused(server: MailServer, client: Client) -> None:
    flagged_mailbox(server, 2, {1})
    client.ok("s EXAMINE INBOX")
    client.transcript(
        """
        C: e EXPUNGE
        S: e NO [READ-ONLY] Mailbox is read-only
        """
    )
    assert server.status("INBOX").messages == 2


def test_rfc3501_section_6_4_2_close_expunges_silently(server: MailServer, client: Client) -> None:
    flagged_mailbox(server, 4, {2, 3})
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: A341 CLOSE
        S: A341 OK CLOSE completed
        C: b CHECK
        S: b BAD Command not allowed in this state
        """
    )
    assert client.session.state is State.AUTHENTICATED
    assert server.status("INBOX").messages == 2


def test_close_of_examined_mailbox_removes_nothing(server: MailServer, client: Client) -> None:
    flagged_mailbox(server, 3, {1, 2, 3})
    client.ok("s EXAMINE INBOX")
    assert client.lines("c CLOSE") == [b"c OK CLOSE completed"]
    assert server.status("INBOX").messages == 3
    assert client.session.state is State.AUTHENTICATED


def test_close_sends_no_pending_updates(server: MailServer, client: Client) -> None:
    flagged_mailbox(server, 2, {1})
    client.ok("s SELECT INBOX")
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    other.ok("o EXPUNGE")
    other.exchange(b"x APPEND INBOX {9+}\r\nSubject: \r\n")
    # Another session expunged one and appended one: CLOSE says nothing.
    assert client.lines("c CLOSE") == [b"c OK CLOSE completed"]


def test_close_after_mailbox_deleted_elsewhere(server: MailServer, client: Client) -> None:
    server.create("Trash")
    server.append("Trash", message(1), ["\\Deleted"])
    client.ok("s SELECT Trash")
    other = server.connect("alice")
    other.ok("d DELETE Trash")
    assert client.lines("c CLOSE") == [b"c OK CLOSE completed"]
    assert client.session.state is State.AUTHENTICATED

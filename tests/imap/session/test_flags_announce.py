"""New keywords are announced with FLAGS (and PERMANENTFLAGS) before any
FETCH shows them (RFC 3501 §7.2.6, §7.1): byte-exact two-session transcripts.

The FLAGS list tells a client which flags the mailbox has; clients keep it
and some drop (or choke on) flags a FETCH shows that are not in it. SELECT
sends it; a keyword created later by anyone must be announced again, with
``* OK [PERMANENTFLAGS (...)]`` for a read-write selection exactly as SELECT
sends it. Decisions these tests pin down (docs/extensions.md):

* STORE .SILENT sends no FETCH but still grows the client's list before
  the tagged OK (the mailbox's keyword list changed, as Dovecot reports it);
* a session told that messages exist (EXISTS, after anyone's APPEND, COPY
  or MOVE) is told the FLAGS list naming their keywords with it, before
  it fetches them;
* keywords stay in the list when no message carries them any more;
* a keyword named ``NIL`` is written as the atom ``NIL`` (flags are atoms,
  RFC 3501 §9 ``flag-keyword = atom``; there is no other way to write it).
"""

from __future__ import annotations

import imaplib

from imapd.mail.flags import FlagOp
from imapd.mail.service import MailService
from tests.imap.commands.harness import Client, MailServer, message, run

SYSTEM = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def selected(server: MailServer, mailbox: str = "INBOX", verb: str = "SELECT") -> Client:
    client = server.connect("alice")
    client.ok(f"s {verb} {mailbox}")
    return client


def test_another_sessions_new_keyword_is_announced_before_its_fetch(server: MailServer) -> None:
    """The issue's transcript: A selects, B stores a new keyword, A's NOOP
    must get FLAGS and PERMANENTFLAGS before the FETCH."""
    server.append("INBOX", message(1))
    a = selected(server)
    b = selected(server)
    b.transcript(f"""
        C: b1 STORE 1 +FLAGS ($NewKw)
        S: * FLAGS ({SYSTEM} $NewKw)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $NewKw \\*)] Flags permitted
        S: * 1 FETCH (FLAGS ($NewKw))
        S: b1 OK STORE completed
    """)
    a.transcript(f"""
        C: a1 NOOP
        S: * FLAGS ({SYSTEM} $NewKw)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $NewKw \\*)] Flags permitted
        S: * 1 FETCH (FLAGS ($NewKw \\Recent))
        S: a1 OK NOOP completed
        C: a2 FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS ($NewKw \\Recent))
        S: a2 OK FETCH completed
    """)
    # A new SELECT lists the keyword from the start: nothing more to announce.
    b.transcript(f"""
        C: b2 SELECT INBOX
        S: * FLAGS ({SYSTEM} $NewKw)
        S: * 1 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] First unseen message
        S: * OK [PERMANENTFLAGS ({SYSTEM} $NewKw \\*)] Flags permitted
        S: * OK [UIDVALIDITY ${{uv}}] UIDs valid
        S: * OK [UIDNEXT 2] Predicted next UID
        S: * OK [HIGHESTMODSEQ 3] Highest
        S: b2 OK [READ-WRITE] SELECT completed
        C: b3 FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS ($NewKw))
        S: b3 OK FETCH completed
    """, uv=server.uidvalidity("INBOX"))


def test_keyword_named_nil_is_an_atom_a_client_reads_as_a_flag(server: MailServer) -> None:
    server.append("INBOX", message(1))
    a = selected(server)
    b = selected(server)
    b.transcript(f"""
        C: b1 STORE 1 +FLAGS NIL
        S: * FLAGS ({SYSTEM} NIL)
        S: * OK [PERMANENTFLAGS ({SYSTEM} NIL \\*)] Flags permitted
        S: * 1 FETCH (FLAGS (NIL))
        S: b1 OK STORE completed
    """)
    out = a.lines("a1 NOOP")
    assert out == [
        f"* FLAGS ({SYSTEM} NIL)".encode(),
        f"* OK [PERMANENTFLAGS ({SYSTEM} NIL \\*)] Flags permitted".encode(),
        b"* 1 FETCH (FLAGS (NIL \\Recent))",
        b"a1 OK NOOP completed",
    ]
    # A real client library reads it as a flag named NIL, not as nil.
    assert imaplib.ParseFlags(out[2]) == (b"NIL", b"\\Recent")
    # It can be removed by name, and the list keeps it (no new announcement).
    b.transcript("""
        C: b2 STORE 1 -FLAGS (nil)
        S: * 1 FETCH (FLAGS ())
        S: b2 OK STORE completed
    """)


def test_silent_store_grows_the_list_without_a_fetch(server: MailServer) -> None:
    server.append_many("INBOX", [message(1), message(2)])
    a = selected(server)
    a.transcript(f"""
        C: a1 STORE 1 +FLAGS.SILENT ($Quiet)
        S: * FLAGS ({SYSTEM} $Quiet)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Quiet \\*)] Flags permitted
        S: a1 OK STORE completed
        C: a2 STORE 2 +FLAGS.SILENT ($Quiet)
        S: a2 OK STORE completed
        C: a3 UID STORE 1:2 FLAGS.SILENT ($Quiet $Other)
        S: * FLAGS ({SYSTEM} $Quiet $Other)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Quiet $Other \\*)] Flags permitted
        S: a3 OK UID STORE completed
        C: a4 FETCH 1:2 FLAGS
        S: * 1 FETCH (FLAGS ($Quiet $Other \\Recent))
        S: * 2 FETCH (FLAGS ($Quiet $Other \\Recent))
        S: a4 OK FETCH completed
    """)


def test_keywords_stay_in_the_list_once_no_message_carries_them(server: MailServer) -> None:
    server.append("INBOX", message(1))
    a = selected(server)
    b = selected(server)
    b.ok("b1 STORE 1 +FLAGS ($Gone)")
    b.ok("b2 STORE 1 -FLAGS ($Gone)")
    # a catches up once, after both: it sees only the latest state, so it
    # was never shown $Gone and need not be told of it (the doorbell
    # coalesces; the old store pushed each change into every view).
    a.transcript(f"""
        C: a1 NOOP
        S: * 1 FETCH (FLAGS (\\Recent))
        S: a1 OK NOOP completed
    """)
    b.transcript(f"""
        C: b3 STORE 1 +FLAGS ($Next)
        S: * FLAGS ({SYSTEM} $Gone $Next)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Gone $Next \\*)] Flags permitted
        S: * 1 FETCH (FLAGS ($Next))
        S: b3 OK STORE completed
    """)


def test_append_into_the_selected_mailbox(server: MailServer) -> None:
    """Both sessions hear of the keyword with the EXISTS of its message:
    the FLAGS list must name the keywords of every message the client is
    told exists. A keyword the mailbox knows in another case is not new."""
    a = selected(server)
    b = selected(server)
    uv = server.uidvalidity("INBOX")
    a.transcript(f"""
        C: a1 APPEND INBOX ($Append \\Seen) {{5+}}
        C: hello
        S: * FLAGS ({SYSTEM} $Append)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Append \\*)] Flags permitted
        S: * 1 EXISTS
        S: * 1 RECENT
        S: a1 OK [APPENDUID {uv} 1] APPEND completed
        C: a2 APPEND INBOX ($APPEND) {{5+}}
        C: again
        S: * 2 EXISTS
        S: * 2 RECENT
        S: a2 OK [APPENDUID {uv} 2] APPEND completed
    """)
    b.transcript(f"""
        C: b1 NOOP
        S: * FLAGS ({SYSTEM} $Append)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Append \\*)] Flags permitted
        S: * 2 EXISTS
        S: * 0 RECENT
        S: b1 OK NOOP completed
        C: b2 UID FETCH 1:* (FLAGS)
        S: * 1 FETCH (FLAGS (\\Seen $Append) UID 1)
        S: * 2 FETCH (FLAGS ($Append) UID 2)
        S: b2 OK UID FETCH completed
    """)


def test_multiappend_into_the_selected_mailbox(server: MailServer) -> None:
    a = selected(server)
    uv = server.uidvalidity("INBOX")
    a.transcript(f"""
        C: a1 APPEND INBOX ($One) {{1+}}
        C: x ($Two $One) {{1+}}
        C: y
        S: * FLAGS ({SYSTEM} $One $Two)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $One $Two \\*)] Flags permitted
        S: * 2 EXISTS
        S: * 2 RECENT
        S: a1 OK [APPENDUID {uv} 1:2] APPEND completed
    """)


def test_append_elsewhere_announces_nothing(server: MailServer) -> None:
    server.create("Other")
    a = selected(server)
    a.transcript(f"""
        C: a1 APPEND Other ($Elsewhere) {{5+}}
        C: hello
        S: a1 OK [APPENDUID {server.uidvalidity("Other")} 1] APPEND completed
    """)


def test_copy_and_move_into_a_mailbox_another_session_has_selected(server: MailServer) -> None:
    server.create("Other")
    server.append("Other", message(1), flags=["$Copied"])
    server.append("Other", message(2), flags=["$Moved"])
    watcher = selected(server)
    mover = selected(server, "Other")
    inbox_uv, other_uv = server.uidvalidity("INBOX"), server.uidvalidity("Other")
    mover.transcript(f"""
        C: m1 COPY 1 INBOX
        S: m1 OK [COPYUID {inbox_uv} 1 1] COPY completed
        C: m2 MOVE 2 INBOX
        S: * OK [COPYUID {inbox_uv} 2 2] Moved UIDs
        S: * 2 EXPUNGE
        S: * 1 RECENT
        S: m2 OK MOVE completed
    """)
    assert other_uv != 0
    watcher.transcript(f"""
        C: w1 NOOP
        S: * FLAGS ({SYSTEM} $Copied $Moved)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Copied $Moved \\*)] Flags permitted
        S: * 2 EXISTS
        S: * 2 RECENT
        S: w1 OK NOOP completed
        C: w2 FETCH 1:2 FLAGS
        S: * 1 FETCH (FLAGS ($Copied \\Recent))
        S: * 2 FETCH (FLAGS ($Moved \\Recent))
        S: w2 OK FETCH completed
    """)


def test_copy_within_the_mailbox_of_a_keyword_another_process_set(
    server: MailServer, other_process: MailService
) -> None:
    """The source's keyword came from another process, not yet caught up.
    After the COPY the view catches up (the doorbell rang), so the change
    reaches the view and its drain announces the list before the FETCH of the
    source and the EXISTS of the copy; the copy's FETCH then needs none."""
    server.append("INBOX", message(1))
    a = selected(server)
    selection = run(other_process.open("alice", "INBOX", False))
    run(selection.store_flags([1], FlagOp.ADD, ("$Remote",)))
    a.transcript(f"""
        C: a1 COPY 1 INBOX
        S: * FLAGS ({SYSTEM} $Remote)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Remote \\*)] Flags permitted
        S: * 1 FETCH (FLAGS ($Remote \\Recent))
        S: * 2 EXISTS
        S: * 2 RECENT
        S: a1 OK [COPYUID {server.uidvalidity("INBOX")} 1 2] COPY completed
        C: a2 FETCH 2 FLAGS
        S: * 2 FETCH (FLAGS ($Remote \\Recent))
        S: a2 OK FETCH completed
    """)
    selection.close()


def test_uid_fetch_sees_another_process_keyword_before_the_poll(
    server: MailServer, other_process: MailService
) -> None:
    """The backend shows the other process's keyword to FETCH before the
    view catches up with the change: the FETCH must announce it, and the
    catch-up's FETCH (now at the end of the same command, as the doorbell
    rang at once) must not announce it again."""
    server.append_many("INBOX", [message(1), message(2)])
    a = selected(server)
    selection = run(other_process.open("alice", "INBOX", False))
    run(selection.store_flags([2], FlagOp.ADD, ("$Remote",)))
    a.transcript(f"""
        C: a1 UID FETCH 1:* (FLAGS)
        S: * 1 FETCH (FLAGS (\\Recent) UID 1)
        S: * FLAGS ({SYSTEM} $Remote)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Remote \\*)] Flags permitted
        S: * 2 FETCH (FLAGS ($Remote \\Recent) UID 2)
        S: * 2 FETCH (FLAGS ($Remote \\Recent) UID 2)
        S: a1 OK UID FETCH completed
        C: a2 NOOP
        S: a2 OK NOOP completed
    """)
    # A keyword set by the other process and first seen through the poll.
    run(selection.store_flags([1], FlagOp.ADD, ("$Polled",)))
    server.poll()
    a.transcript(f"""
        C: a3 NOOP
        S: * FLAGS ({SYSTEM} $Remote $Polled)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Remote $Polled \\*)] Flags permitted
        S: * 1 FETCH (FLAGS ($Polled \\Recent) UID 1)
        S: a3 OK NOOP completed
    """)
    selection.close()


def test_read_only_selection_gets_flags_only(server: MailServer) -> None:
    """EXAMINE was told ``PERMANENTFLAGS ()``; that does not change (RFC
    3501 §6.3.2), so only FLAGS is re-sent. (The reader selected first, so
    it sees the message as \\Recent without claiming it.)"""
    server.append("INBOX", message(1))
    reader = selected(server, verb="EXAMINE")
    writer = selected(server)
    writer.ok("w1 STORE 1 +FLAGS.SILENT ($Seen2)")
    reader.transcript(f"""
        C: r1 NOOP
        S: * FLAGS ({SYSTEM} $Seen2)
        S: * 1 FETCH (FLAGS ($Seen2 \\Recent))
        S: r1 OK NOOP completed
    """)


def test_idle_pushes_the_list_before_the_fetch(server: MailServer) -> None:
    server.append("INBOX", message(1))
    idler = selected(server)
    writer = selected(server)
    assert idler.exchange(b"i IDLE\r\n") == b"+ idling\r\n"
    writer.ok("w1 STORE 1 +FLAGS.SILENT ($Pushed)")
    idler.transcript(f"""
        S: * FLAGS ({SYSTEM} $Pushed)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Pushed \\*)] Flags permitted
        S: * 1 FETCH (FLAGS ($Pushed \\Recent))
        C: DONE
        S: i OK IDLE terminated
    """)


def test_qresync_select_announces_keywords_it_reports(
    server: MailServer, other_process: MailService
) -> None:
    """SELECT (QRESYNC ...) reports another process's keyword in its resync
    FETCH: SELECT's own FLAGS list already has it (the selection reads the
    mailbox's keywords), so it is not announced a second time."""
    server.append("INBOX", message(1))
    a = server.connect("alice")
    a.ok("e ENABLE QRESYNC")
    a.ok("s SELECT INBOX")
    uv = server.uidvalidity("INBOX")
    a.ok("c CLOSE")
    selection = run(other_process.open("alice", "INBOX", False))
    run(selection.store_flags([1], FlagOp.ADD, ("$Resync",)))
    out = a.lines(f"q SELECT INBOX (QRESYNC ({uv} 1))")
    assert out[0] == f"* FLAGS ({SYSTEM} $Resync)".encode()
    assert [line for line in out if line.startswith(b"* FLAGS")] == [out[0]]
    assert b"* 1 FETCH (UID 1 FLAGS ($Resync) MODSEQ (3))" in out
    selection.close()

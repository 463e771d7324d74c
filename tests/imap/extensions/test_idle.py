"""IDLE (RFC 2177): byte-exact transcripts over the in-process server.

Other sessions' changes reach an idling client at once (same process: the
store delivers on commit, the push happens inside the other session's
command) or at the server's poll timer (another store instance on the same
data directory, as another server process would be). ``DONE`` ends IDLE,
data pipelined after it runs next, anything else is ``BAD``, and the
autologout timer is the connection's usual one.
"""

from __future__ import annotations

from pathlib import Path

from imapd.imap.commands import catalogue
from imapd.core.config import Limits
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.imap.session.state import State
from tests.imap.commands.harness import Client, MailServer, message, run

AUTH_TIMEOUT = 30 * 60.0


def selected(server: MailServer, mailbox: str = "INBOX") -> Client:
    client = server.connect("alice")
    client.ok(f"s SELECT {mailbox}")
    return client


def test_rfc_2177_example(server: MailServer) -> None:
    """The RFC 2177 §3 example, with another client doing what the RFC's
    "...time passes..." lines describe. Differences from the example: the
    RFC's redundant ``* 3 EXISTS`` after an EXPUNGE is not sent, RECENT
    follows each EXISTS and each EXPUNGE that lowers this session's count
    of \\Recent messages (RFC 3501 §7.3.2: the client cannot decrement it
    itself; the idler selected first, so all its messages are recent), and
    FETCH asks for UID only."""
    server.append_many("INBOX", [message(n) for n in (1, 2, 3)])
    idler = selected(server)
    idler.transcript(
        """
        C: A002 IDLE
        S: + idling
        """
    )
    server.append("INBOX", message(4))  # ...time passes; new mail arrives...
    idler.transcript(
        """
        S: * 4 EXISTS
        S: * 4 RECENT
        C: DONE
        S: A002 OK IDLE terminated
        """
    )
    other = selected(server)  # ...another client expunges message 2 now...
    other.ok("x STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("y EXPUNGE")
    assert idler.read() == b""  # not idling: nothing is pushed
    idler.transcript(
        """
        C: A003 FETCH 4 (UID)
        S: * 4 FETCH (UID 4)
        S: A003 OK FETCH completed
        C: A004 IDLE
        S: * 2 EXPUNGE
        S: * 3 RECENT
        S: + idling
        """
    )
    # ...time passes; another client expunges message 3 (UID 4)...
    other.ok("z STORE 3 +FLAGS.SILENT (\\Deleted)")
    idler.transcript("S: * 3 FETCH (FLAGS (\\Deleted \\Recent))")
    other.ok("w EXPUNGE")
    idler.transcript("""
        S: * 3 EXPUNGE
        S: * 2 RECENT
    """)
    server.append("INBOX", message(5))  # ...time passes; new mail arrives...
    idler.transcript(
        """
        S: * 3 EXISTS
        S: * 3 RECENT
        C: DONE
        S: A004 OK IDLE terminated
        C: A005 FETCH 3 (UID)
        S: * 3 FETCH (UID 5)
        S: A005 OK FETCH completed
        """
    )


def test_pending_updates_go_out_before_the_continuation(server: MailServer) -> None:
    idler = selected(server)
    server.append("INBOX", message(1))
    idler.transcript(
        """
        C: i IDLE
        S: * 1 EXISTS
        S: * 1 RECENT
        S: + idling
        C: DONE
        S: i OK IDLE terminated
        """
    )


def test_flag_changes_by_another_session_are_pushed_with_uid_after_uid_commands(
    server: MailServer,
) -> None:
    server.append_many("INBOX", [message(1), message(2)])
    changer = selected(server)
    idler = selected(server)
    idler.ok("u UID FETCH 1 (FLAGS)")  # UID mode: unsolicited FETCH carries UID
    idler.transcript(
        """
        C: i IDLE
        S: + idling
        """
    )
    changer.ok("c STORE 2 +FLAGS.SILENT (\\Seen $Done)")
    # $Done is new: the grown FLAGS list is pushed before the FETCH that
    # shows it (RFC 3501 §7.2.6).
    idler.transcript("""
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Done)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Done \\*)] Flags permitted
        S: * 2 FETCH (FLAGS (\\Seen $Done) UID 2)
    """)
    changer.ok("d STORE 1:2 -FLAGS.SILENT (\\Seen)")
    idler.transcript(
        """
        S: * 2 FETCH (FLAGS ($Done) UID 2)
        C: DONE
        S: i OK IDLE terminated
        """
    )


def test_done_pipelined_with_idle_and_commands_after_it(server: MailServer) -> None:
    client = selected(server)
    assert client.exchange(b"a IDLE\r\nDONE\r\nb NOOP\r\n") == (
        b"+ idling\r\na OK IDLE terminated\r\nb OK NOOP completed\r\n")
    assert client.exchange(b"c IDLE\r\n") == b"+ idling\r\n"
    server.append("INBOX", message(1))
    assert client.read() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
    # DONE and the next commands in one packet: they run after the OK, in order.
    assert client.exchange(b"done\r\nd NOOP\r\ne CHECK\r\n") == (
        b"c OK IDLE terminated\r\nd OK NOOP completed\r\ne OK CHECK completed\r\n")


def test_done_split_across_packets(server: MailServer) -> None:
    client = selected(server)
    assert client.exchange(b"a IDLE\r\nDO") == b"+ idling\r\n"
    assert client.exchange(b"NE") == b""
    assert client.exchange(b"\r\n") == b"a OK IDLE terminated\r\n"


def test_anything_but_done_ends_idle_with_bad(server: MailServer) -> None:
    """RFC 2177 §3/§4: a command while idling is a syntax error of IDLE. The
    line is not run, and updates are no longer pushed."""
    client = selected(server)
    client.transcript(
        """
        C: a IDLE
        S: + idling
        C: b NOOP
        S: a BAD Expected DONE
        """
    )
    server.append("INBOX", message(1))
    assert client.read() == b""
    client.transcript(
        """
        C: c NOOP
        S: * 1 EXISTS
        S: * 1 RECENT
        S: c OK NOOP completed
        C: d IDLE
        S: + idling
        C: DONE now
        S: d BAD Expected DONE
        """
    )


def test_overlong_line_while_idling_ends_idle_with_bad(server: MailServer) -> None:
    client = selected(server)
    assert client.exchange(b"a IDLE\r\n") == b"+ idling\r\n"
    assert client.exchange(b"x" * 70_000 + b"\r\n") == b"a BAD Line too long\r\n"
    assert client.exchange(b"b NOOP\r\n") == b"b OK NOOP completed\r\n"


def test_idle_in_authenticated_state(server: MailServer) -> None:
    """RFC 2177 §4: command_auth, so valid without a mailbox; nothing to push."""
    client = server.connect("alice")
    client.transcript(
        """
        C: a IDLE
        S: + idling
        """
    )
    server.append("INBOX", message(1))
    client.transcript(
        """
        C: DONE
        S: a OK IDLE terminated
        """
    )
    assert client.session.state is State.AUTHENTICATED


def test_idle_needs_authentication(server: MailServer) -> None:
    client = server.connect(None)
    client.read()
    assert client.command("a IDLE") == f"a BAD {catalogue.BAD_WRONG_STATE}\r\n".encode()


def test_changes_from_another_process_are_pushed_at_its_doorbell(server: MailServer) -> None:
    """A second mail service over its own backend on the same data directory
    is what another server process is; its commits ring the idler's watch
    (no factory timer), and the idler's own push catches up on the next
    reactor turn, in the batch order: expunges, flag changes, additions."""
    server.append_many("INBOX", [message(1), message(2), message(3)])
    idler = selected(server)
    idler.transcript(
        """
        C: i IDLE
        S: + idling
        """
    )
    other_process = server.other_process()
    try:
        watch = run(other_process.open("alice", "INBOX", readonly=False))
        run(watch.store_flags([2], FlagOp.ADD, ["\\Deleted"]))
        run(watch.expunge())
        run(watch.store_flags([3], FlagOp.ADD, ["\\Seen"]))
        watch.close()
        # No session of that process has INBOX selected now, so the new
        # message is claimed as \Recent by the idler when it catches up.
        run(other_process.deliver("alice", "INBOX", [AppendItem(message(4), ("\\Flagged",))]))
    finally:
        run(other_process.close())
    assert idler.read() == b""  # rung, but nothing written inside their commits
    server.clock.advance(0)  # the idler's push: its own catch-up and drain
    idler.transcript(
        """
        S: * 2 EXPUNGE
        S: * 2 FETCH (FLAGS (\\Seen \\Recent))
        S: * 3 EXISTS
        S: * 3 RECENT
        C: DONE
        S: i OK IDLE terminated
        """
    )


def test_many_idlers_all_get_the_push_and_no_timer_is_added(tmp_path: Path) -> None:
    """10,000 idlers must be cheap: IDLE schedules no timer of its own and
    polls nothing per connection; one change reaches every idler."""
    server = MailServer(tmp_path, limits=Limits(max_connections_per_user=100, max_connections_per_ip=100))
    idlers = [selected(server) for _ in range(50)]
    timers_before = len(server.clock.getDelayedCalls())
    for index, idler in enumerate(idlers):
        assert idler.exchange(f"i{index} IDLE\r\n".encode()) == b"+ idling\r\n"
    assert len(server.clock.getDelayedCalls()) == timers_before
    server.append("INBOX", message(1))
    outputs = [idler.read() for idler in idlers]
    assert all(out.startswith(b"* 1 EXISTS\r\n* ") for out in outputs), outputs
    # \Recent belongs to exactly one session (RFC 3501 §2.3.2).
    assert sorted(out.split(b"\r\n")[1] for out in outputs) == [b"* 0 RECENT"] * 49 + [b"* 1 RECENT"]
    for index, idler in enumerate(idlers):
        assert idler.exchange(b"DONE\r\n") == f"i{index} OK IDLE terminated\r\n".encode()
    server.close()


def test_autologout_while_idling(server: MailServer) -> None:
    """RFC 2177 §3: the server may log out an idler at its inactivity
    timeout; a client re-issuing IDLE every 29 minutes stays connected."""
    client = selected(server)
    for round_number in range(3):
        assert client.exchange(f"a{round_number} IDLE\r\n".encode()) == b"+ idling\r\n"
        server.clock.advance(29 * 60)
        assert not client.closing
        assert client.exchange(b"DONE\r\n") == f"a{round_number} OK IDLE terminated\r\n".encode()
    assert client.exchange(b"b IDLE\r\n") == b"+ idling\r\n"
    server.append("INBOX", message(1))  # pushes do not count as activity
    assert client.read() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
    server.clock.advance(AUTH_TIMEOUT - 1)
    assert client.read() == b"" and not client.closing
    server.clock.advance(1)
    assert client.read() == f"* BYE {catalogue.BYE_AUTOLOGOUT}\r\n".encode()
    assert client.closing


def test_connection_lost_while_idling_releases_the_view(server: MailServer) -> None:
    client = selected(server)
    view = client.session.selected
    assert view is not None
    assert client.exchange(b"a IDLE\r\n") == b"+ idling\r\n"
    assert view.on_change is not None
    client.disconnect()
    assert view.on_change is None
    inbox = run(server.mail.target_entry("alice", "INBOX"))
    assert server.mail.watches(inbox.id) == []
    assert server.backend.sqlite_feed.subscriber_count(inbox.id) == 0
    server.append("INBOX", message(1))  # no idler left to push to: no error


def test_mailbox_deleted_under_an_idler(server: MailServer) -> None:
    server.create("Box")
    server.append_many("Box", [message(1), message(2)])
    idler = selected(server, "Box")
    assert idler.exchange(b"i IDLE\r\n") == b"+ idling\r\n"
    server.connect("alice").ok("d DELETE Box")
    # Both messages were \Recent to the idler: its count falls to 0.
    assert idler.read() == b"* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n* 0 RECENT\r\n"
    assert idler.exchange(b"DONE\r\n") == b"i OK IDLE terminated\r\n"

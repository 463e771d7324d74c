"""What a session already saw of its own changes is not sent again, and no
session writes to another's connection (the view owns this now; the store
used to mark changes ``own``).

RFC 3501 §6.4.6: STORE reports the new flags itself; §7.4.1: other
sessions' changes are told at the next command; RFC 2177: while idling they
are pushed, by the idler's own catch-up.
"""

from __future__ import annotations

from imapd.imap.session.view import SelectedView
from tests.imap.commands.harness import Client, MailServer, message


def selected(server: MailServer) -> Client:
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    return client


def test_own_store_is_not_echoed_at_the_next_command(server: MailServer) -> None:
    server.append_many("INBOX", [message(1), message(2)])
    a = selected(server)
    a.transcript(
        """
        C: a1 STORE 1 +FLAGS (\\Seen)
        S: * 1 FETCH (FLAGS (\\Seen \\Recent))
        S: a1 OK STORE completed
        C: a2 STORE 2 +FLAGS.SILENT (\\Flagged)
        S: a2 OK STORE completed
        C: a3 NOOP
        S: a3 OK NOOP completed
        """
    )


def test_a_later_change_by_another_session_is_news(server: MailServer) -> None:
    server.append("INBOX", message(1))
    a, b = selected(server), selected(server)
    a.ok("a1 STORE 1 +FLAGS (\\Seen)")
    b.ok("b1 STORE 1 +FLAGS.SILENT (\\Flagged)")
    a.transcript(
        """
        C: a2 NOOP
        S: * 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))
        S: a2 OK NOOP completed
        """
    )


def test_silent_store_does_not_hide_an_earlier_change_by_another(server: MailServer) -> None:
    """b's change comes first, then a's .SILENT STORE of the same message:
    the client knows what it set, not what b set, so the latest flags must
    still be sent (the view catches up before storing)."""
    server.append("INBOX", message(1))
    a, b = selected(server), selected(server)
    b.ok("b1 STORE 1 +FLAGS.SILENT ($Other)")
    a.transcript(
        """
        C: a1 STORE 1 +FLAGS.SILENT (\\Seen)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Other)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Other \\*)] Flags permitted
        S: * 1 FETCH (FLAGS (\\Seen $Other \\Recent))
        S: a1 OK STORE completed
        C: a2 NOOP
        S: a2 OK NOOP completed
        """
    )


def test_fetch_setting_seen_is_not_echoed(server: MailServer) -> None:
    server.append("INBOX", message(1))
    a = selected(server)
    out = a.lines("f FETCH 1 (BODY[HEADER.FIELDS (Subject)])")
    assert out[0].startswith(b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)]")
    assert out[-2].endswith(b" FLAGS (\\Seen \\Recent))") and out[-1] == b"f OK FETCH completed"
    assert a.lines("n NOOP") == [b"n OK NOOP completed"]


def test_an_idler_hears_another_session_only_through_its_own_catch_up(
    server: MailServer,
) -> None:
    """The other session's command finishes (its tagged OK is written)
    without the idler's socket being touched; the idler's push runs on the
    next reactor turn and reads the change itself (``catch_up``)."""
    server.append("INBOX", message(1))
    idler, other = selected(server), selected(server)
    assert idler.exchange(b"i IDLE\r\n") == b"+ idling\r\n"
    view = idler.session.selected
    assert isinstance(view, SelectedView)
    caught_up: list[int] = []
    original = view.catch_up

    async def counting() -> None:
        caught_up.append(1)
        await original()

    view.catch_up = counting  # type: ignore[method-assign]
    written: list[bytes] = []
    other.conv.send(b"o STORE 1 +FLAGS.SILENT (\\Flagged)\r\n")  # no clock turn yet
    written.append(idler.read())
    assert other.read() == b"o OK STORE completed\r\n"
    assert written == [b""] and caught_up == [] and view.watch.rang
    server.clock.advance(0)
    assert caught_up == [1] and not view.watch.rang
    assert idler.read() == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    assert idler.exchange(b"DONE\r\n") == b"i OK IDLE terminated\r\n"


def test_done_while_a_push_is_scheduled_writes_nothing_after_the_ok(server: MailServer) -> None:
    """A ring just before DONE: the push was scheduled but had not run.
    DONE does not wait for it (it will find the session stopped and write
    nothing); the dispatcher's catch-up after DONE reports the change before
    the tagged OK, and nothing follows the OK, not even a turn later."""
    server.append("INBOX", message(1))
    idler, other = selected(server), selected(server)
    assert idler.exchange(b"i IDLE\r\n") == b"+ idling\r\n"
    other.conv.send(b"o STORE 1 +FLAGS.SILENT (\\Flagged)\r\n")
    idler.conv.send(b"DONE\r\n")  # both before the next reactor turn
    assert idler.read() == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\ni OK IDLE terminated\r\n"
    server.clock.advance(0)
    assert idler.read() == b""

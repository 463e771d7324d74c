"""APPEND (RFC 3501 §6.3.11) as byte-exact transcripts, checked against
what the store then holds (exact bytes, flags, internal date, analysis)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Sequence

from imapd.core.config import Limits
from imapd.mail.backend import MailboxRef
from imapd.mail.records import AppendItem, AppendResult
from imapd.message import analyze
from tests.imap.commands.harness import Client, MailServer, message

RFC_MESSAGE_LINES = [
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)",
    "From: Fred Foobar <foobar@Blurdybloop.COM>",
    "Subject: afternoon meeting",
    "To: mooch@owatagu.siam.edu",
    "Message-Id: <B27397-0100000@Blurdybloop.COM>",
    "MIME-Version: 1.0",
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII",
    "",
    "Hello Joe, do you think we can meet at 3:30 tomorrow?",
]
RFC_MESSAGE = "".join(line + "\r\n" for line in RFC_MESSAGE_LINES).encode()


def appended(tag: str, server: MailServer, mailbox: str, uid: int) -> bytes:
    """The tagged OK of an APPEND, with UIDPLUS's APPENDUID (RFC 4315 §3)."""
    return b"%s OK [APPENDUID %d %d] APPEND completed\r\n" % (
        tag.encode(), server.uidvalidity(mailbox), uid)


def client_lines(raw: bytes) -> str:
    """A CRLF-terminated message as transcript ``C:`` lines."""
    assert raw.endswith(b"\r\n")
    return "\n".join(f"C: {line}" for line in raw.decode()[:-2].split("\r\n"))


def test_rfc3501_section_6_3_11_example(server: MailServer, client: Client) -> None:
    assert len(RFC_MESSAGE) == 310
    server.create("saved-messages")
    body = client_lines(RFC_MESSAGE)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    client.transcript(
        f"""
        C: A003 APPEND saved-messages (\\Seen) {{310}}
        S: + Ready for literal data
        {body}
        C:
        S: A003 OK [APPENDUID {server.uidvalidity("saved-messages")} 1] APPEND completed
        """
    )
    [(record, data)] = server.read_messages("saved-messages")
    assert data == RFC_MESSAGE
    assert (record.uid, record.flags, record.size) == (1, ("\\Seen",), 310)
    assert record.meta == analyze(RFC_MESSAGE).to_bytes()
    # No date-time given: the internal date is now (RFC 3501 §6.3.11).
    after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    assert before <= record.internal_date <= after


def test_append_with_date_time_and_keywords(server: MailServer, client: Client) -> None:
    raw = message(1)
    client.transcript(
        f"""
        C: a APPEND INBOX (\\Flagged $Label1 \\seen) " 5-Jan-2024 10:11:12 +0130" {{{len(raw)}+}}
        {client_lines(raw)}
        C:
        S: a OK [APPENDUID {server.uidvalidity("INBOX")} 1] APPEND completed
        """
    )
    [(record, data)] = server.read_messages("INBOX")
    assert data == raw
    assert record.flags == ("\\Flagged", "\\Seen", "$Label1")
    zone = datetime.timezone(datetime.timedelta(hours=1, minutes=30))
    assert record.internal_date == datetime.datetime(2024, 1, 5, 10, 11, 12, tzinfo=zone)
    assert record.internal_date.utcoffset() == datetime.timedelta(hours=1, minutes=30)


def test_append_keeps_8bit_nul_and_bare_lf_bytes_exactly(server: MailServer, client: Client) -> None:
    """A literal8 body holding NUL is stored base64-encoded (RFC 3516 §4.3:
    BODY[] may never send a NUL in a plain literal); BINARY[1] gives the
    octets back exactly."""
    raw = b"Subject: caf\xc3\xa9\r\n\r\nline\nnul\x00byte\r\n\xff\xfe"
    out = client.exchange(b"a APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(raw), raw))
    assert out == appended("a", server, "INBOX", 1)
    [(record, data)] = server.read_messages("INBOX")
    stored = (b"Subject: caf\xc3\xa9\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              b"bGluZQpudWwAYnl0ZQ0K//4=\r\n")
    assert (data, record.size) == (stored, len(stored))
    # NUL is not allowed in a plain literal (RFC 3501 §9 CHAR8), only in
    # literal8 (RFC 3516); 8-bit and bare LF are.
    out = client.exchange(b"b APPEND INBOX {%d+}\r\n%s\r\n" % (len(raw), raw))
    assert out == b"b BAD NUL octet in literal for message\r\n"
    raw8 = raw.replace(b"\x00", b"")
    out = client.exchange(b"c APPEND INBOX {%d+}\r\n%s\r\n" % (len(raw8), raw8))
    assert out == appended("c", server, "INBOX", 2)
    assert [d for _, d in server.read_messages("INBOX")] == [stored, raw8]
    client.ok("s SELECT INBOX")
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert client.command("f FETCH 1 BINARY.PEEK[1]") == (
        b"* 1 FETCH (BINARY[1] ~{%d}\r\n%s)\r\nf OK FETCH completed\r\n" % (len(body), body))


def test_append_to_missing_mailbox_is_trycreate(server: MailServer, client: Client) -> None:
    server.create("Parent/Child")
    client.ok("x DELETE Parent")  # now a \Noselect placeholder
    client.transcript(
        """
        C: a APPEND Nowhere {5+}
        C: hello
        S: a NO [TRYCREATE] Mailbox does not exist: Nowhere
        C: b APPEND Parent {5+}
        C: hello
        S: b NO [TRYCREATE] Mailbox does not exist: Parent
        C: c CREATE Nowhere
        S: c OK CREATE completed
        """
    )
    client.transcript(
        """
        C: d APPEND Nowhere {5+}
        C: hello
        S: d OK [APPENDUID ${uidvalidity} 1] APPEND completed
        """,
        uidvalidity=server.uidvalidity("Nowhere"),
    )
    assert [d for _, d in server.read_messages("Nowhere")] == [b"hello"]


def test_append_flag_and_name_errors_store_nothing(server: MailServer, client: Client) -> None:
    client.transcript(
        """
        C: a APPEND INBOX (\\Recent) {5+}
        C: hello
        S: a BAD \\Recent cannot be stored
        C: b APPEND INBOX (\\Bogus) {5+}
        C: hello
        S: b BAD Unknown system flag \\Bogus
        C: c APPEND "bad%name" {5+}
        C: hello
        S: c NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        """
    )
    assert server.status("INBOX").messages == 0
    assert server.status("INBOX").uidnext == 1


def test_append_synchronizing_literal_waits_for_continuation(server: MailServer, client: Client) -> None:
    assert client.exchange(b"a APPEND INBOX {7}\r\n") == b"+ Ready for literal data\r\n"
    assert client.exchange(b"hel\r\n") == b""
    assert client.exchange(b"lo") == b""
    assert client.exchange(b"\r\n") == appended("a", server, "INBOX", 1)
    assert [d for _, d in server.read_messages("INBOX")] == [b"hel\r\nlo"]


def test_append_to_selected_mailbox_announces_exists_and_recent(
    server: MailServer, client: Client
) -> None:
    server.append("INBOX", message(1))
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: a APPEND INBOX {5+}
        C: hello
        S: * 2 EXISTS
        S: * 2 RECENT
        S: a OK [APPENDUID ${uidvalidity} 2] APPEND completed
        """,
        uidvalidity=server.uidvalidity("INBOX"),
    )


def test_append_to_examined_mailbox_is_allowed(server: MailServer, client: Client) -> None:
    """EXAMINE makes the session's view read-only, not the mailbox:
    APPEND still works and the message is announced (and, as no read-write
    session claimed it, counted as recent)."""
    client.ok("s EXAMINE INBOX")
    client.transcript(
        """
        C: a APPEND INBOX {5+}
        C: hello
        S: * 1 EXISTS
        S: * 1 RECENT
        S: a OK [APPENDUID ${uidvalidity} 1] APPEND completed
        """,
        uidvalidity=server.uidvalidity("INBOX"),
    )


def test_append_to_other_mailbox_while_selected_says_nothing_extra(
    server: MailServer, client: Client
) -> None:
    server.create("Sent")
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: a APPEND Sent (\\Seen) {5+}
        C: hello
        S: a OK [APPENDUID ${uidvalidity} 1] APPEND completed
        """,
        uidvalidity=server.uidvalidity("Sent"),
    )
    assert server.status("Sent").messages == 1


def test_append_too_large_is_refused_by_the_framer(tmp_path: Path) -> None:
    server = MailServer(tmp_path, limits=Limits(max_literal=100))
    try:
        client = server.connect("alice")
        out = client.exchange(b"a APPEND INBOX {101}\r\n")
        assert out == b"a NO [TOOBIG] Literal too big\r\n"
        assert server.status("INBOX").messages == 0
    finally:
        server.close()


def test_append_needs_authentication(server: MailServer) -> None:
    anonymous = server.connect(None)
    assert anonymous.exchange(b"a APPEND INBOX {5+}\r\nhello\r\n") == (
        b"a BAD Command not allowed in this state\r\n")
    assert server.status("INBOX").messages == 0


class CountingBackend:
    """Counts backend ``append`` calls (one per delivery) on the real backend.
    (Group commit across sessions is the SQLite writer thread's, tested in
    tests/storage/sqlite; the handler makes exactly one delivery per APPEND.)"""

    def __init__(self, server: MailServer) -> None:
        self.calls: list[tuple[int, int]] = []
        backend = server.backend
        original = backend.append

        async def append(
            ref: MailboxRef, items: Sequence[AppendItem], claim: bool = False
        ) -> AppendResult:
            self.calls.append((ref.id, len(items)))
            return await original(ref, items, claim)

        backend.append = append  # type: ignore[method-assign]


def same_turn(server: MailServer, sends: list[tuple[Client, bytes]]) -> list[bytes]:
    """Feed several connections before the reactor's next turn, then run it."""
    for client, data in sends:
        client.conv.send(data)
    server.clock.advance(0)
    return [client.read() for client, _ in sends]


def test_appends_of_one_turn_are_one_delivery_each(server: MailServer) -> None:
    counter = CountingBackend(server)
    clients = [server.connect("alice") for _ in range(4)]
    server.create("Sent")
    replies = same_turn(server, [
        (clients[0], b"a APPEND INBOX {5+}\r\nfirst\r\n"),
        (clients[1], b"b APPEND INBOX (\\Seen) {6+}\r\nsecond\r\n"),
        (clients[2], b"c APPEND Sent {4+}\r\nsent\r\n"),
        (clients[3], b"d APPEND INBOX {5+}\r\nthird\r\n"),
    ])
    assert replies == [appended("a", server, "INBOX", 1), appended("b", server, "INBOX", 2),
                       appended("c", server, "Sent", 1), appended("d", server, "INBOX", 3)]
    assert [n for _, n in counter.calls] == [1, 1, 1, 1]
    stored = server.read_messages("INBOX")
    assert [(r.uid, r.flags, d) for r, d in stored] == [
        (1, (), b"first"), (2, ("\\Seen",), b"second"), (3, (), b"third")]


def test_a_failing_append_does_not_fail_the_others(server: MailServer) -> None:
    counter = CountingBackend(server)
    clients = [server.connect("alice") for _ in range(3)]
    replies = same_turn(server, [
        (clients[0], b"a APPEND INBOX {4+}\r\ngood\r\n"),
        (clients[1], b"b APPEND INBOX (\\Recent) {3+}\r\nbad\r\n"),
        (clients[2], b"c APPEND INBOX {5+}\r\ngood2\r\n"),
    ])
    assert replies == [appended("a", server, "INBOX", 1), b"b BAD \\Recent cannot be stored\r\n",
                       appended("c", server, "INBOX", 2)]
    # The bad flag list is refused before the backend is asked.
    assert len(counter.calls) == 2
    assert [d for _, d in server.read_messages("INBOX")] == [b"good", b"good2"]


def test_batched_append_to_a_missing_mailbox_is_trycreate(server: MailServer) -> None:
    first, second = server.connect("alice"), server.connect("alice")
    replies = same_turn(server, [
        (first, b"a APPEND INBOX {2+}\r\nok\r\n"),
        (second, b"b APPEND Missing {2+}\r\nno\r\n"),
    ])
    assert replies == [appended("a", server, "INBOX", 1),
                       b"b NO [TRYCREATE] Mailbox does not exist: Missing\r\n"]


def test_append_answers_once_the_message_is_stored(server: MailServer, client: Client) -> None:
    """No batching wait in the handler any more: with the inline backend the
    OK follows the (durable) delivery in the same turn, never before it."""
    client.conv.send(b"a APPEND INBOX {2+}\r\nhi\r\n")
    assert server.status("INBOX").messages == 1
    assert client.read() == appended("a", server, "INBOX", 1)

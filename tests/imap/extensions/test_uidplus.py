"""UIDPLUS (RFC 4315): APPENDUID, COPYUID and UID EXPUNGE as byte-exact
transcripts, the RFC's examples re-enacted on a real store (its UIDVALIDITY
and UIDs are the store's own), plus other sessions' view of UID EXPUNGE."""

from __future__ import annotations

import pytest

from tests.imap.commands.harness import Client, MailServer, message


def deleted_mailbox(server: MailServer, client: Client) -> Client:
    """INBOX with UIDs 1-6, 3:5 and 1 ``\\Deleted``; selected by ``client``
    after another session claimed \\Recent (so FLAGS stay short)."""
    flags = [["\\Deleted"], [], ["\\Deleted"], ["\\Deleted", "\\Seen"], ["\\Deleted"], []]
    server.append_many("INBOX", [message(n) for n in range(1, 7)], flags)
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.disconnect()
    client.ok("s SELECT INBOX")
    return client


def test_rfc4315_section_2_1_uid_expunge_example(server: MailServer, client: Client) -> None:
    """The RFC's example: the three messages at sequence 3, 4, 5 are
    expunged (the RFC announces them lowest first, ``* 3 EXPUNGE`` three
    times; this server goes highest first, which RFC 3501 §7.4.1 allows
    equally: each number is right when it is sent); message 1 is
    \\Deleted too but not in the UID set, so it stays."""
    deleted_mailbox(server, client)
    client.transcript("""
        C: A003 UID EXPUNGE 3:5
        S: * 5 EXPUNGE
        S: * 4 EXPUNGE
        S: * 3 EXPUNGE
        S: A003 OK UID EXPUNGE completed
        C: A004 UID FETCH 1:* FLAGS
        S: * 1 FETCH (FLAGS (\\Deleted) UID 1)
        S: * 2 FETCH (FLAGS () UID 2)
        S: * 3 FETCH (FLAGS () UID 6)
        S: A004 OK UID FETCH completed
    """)


def test_uid_expunge_ignores_unknown_and_undeleted_uids(server: MailServer, client: Client) -> None:
    deleted_mailbox(server, client)
    client.transcript("""
        C: a UID EXPUNGE 2,6,40:50
        S: a OK UID EXPUNGE completed
        C: b UID EXPUNGE 4,1
        S: * 4 EXPUNGE
        S: * 1 EXPUNGE
        S: b OK UID EXPUNGE completed
        C: c UID EXPUNGE 1:*
        S: * 3 EXPUNGE
        S: * 2 EXPUNGE
        S: c OK UID EXPUNGE completed
    """)
    assert [r.uid for r, _ in server.read_messages("INBOX")] == [2, 6]


def test_uid_expunge_reaches_other_sessions_and_is_refused_read_only(
    server: MailServer, client: Client
) -> None:
    deleted_mailbox(server, client)
    other = server.connect("alice")
    other.ok("o SELECT INBOX")
    examiner = server.connect("alice")
    examiner.ok("e EXAMINE INBOX")
    client.ok("x UID EXPUNGE 5")
    examiner.transcript("""
        C: a UID EXPUNGE 3
        S: * 5 EXPUNGE
        S: a NO [READ-ONLY] Mailbox is read-only
    """)
    other.transcript("""
        C: f FETCH 5 UID
        S: f OK FETCH completed
        C: n NOOP
        S: * 5 EXPUNGE
        S: n OK NOOP completed
    """)


def test_uid_expunge_needs_a_selected_mailbox(client: Client) -> None:
    client.transcript("""
        C: a UID EXPUNGE 1
        S: a BAD Command not allowed in this state
    """)


RFC_MESSAGE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
    b"Subject: afternoon meeting\r\nTo: mooch@owatagu.siam.edu\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.COM>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)


def client_lines(raw: bytes) -> str:
    """A CRLF-terminated message as transcript ``C:`` lines."""
    return "\n".join(f"        C: {line}" for line in raw.decode().split("\r\n")[:-1]).lstrip()


def test_rfc4315_section_3_appenduid_and_copyuid_example(server: MailServer, client: Client) -> None:
    """RFC 4315 §3: APPEND answers APPENDUID; COPY 2:4 of non-contiguous
    source UIDs (here 2,4:5, the RFC's 304,319:320) answers the target UIDs
    in the same order; a UID COPY that matches nothing has no COPYUID."""
    server.create("saved-messages")
    server.append_many("saved-messages", [message(1), message(2)])
    server.append_many("INBOX", [message(n) for n in range(1, 7)])
    server.create("meeting")
    server.append_many("meeting", [message(n) for n in range(10)])
    client.ok("s SELECT INBOX")
    client.ok("d STORE 3 +FLAGS.SILENT (\\Deleted)")
    client.ok("e EXPUNGE")
    client.transcript(
        f"""
        C: A003 APPEND saved-messages (\\Seen) {{{len(RFC_MESSAGE)}+}}
        {client_lines(RFC_MESSAGE)}
        C:
        S: A003 OK [APPENDUID ${{saved}} 3] APPEND completed
        C: A004 COPY 2:4 meeting
        S: A004 OK [COPYUID ${{meeting}} 2,4:5 11:13] COPY completed
        C: A005 UID COPY 305:310 meeting
        S: A005 OK UID COPY completed
        """,
        saved=server.uidvalidity("saved-messages"), meeting=server.uidvalidity("meeting"),
    )
    [*_, (record, data)] = server.read_messages("saved-messages")
    assert (record.uid, data) == (3, RFC_MESSAGE)
    copies = server.read_messages("meeting")[10:]
    assert [(r.uid, d) for r, d in copies] == [(11, message(2)), (12, message(4)), (13, message(5))]


def test_uid_copy_reports_pairs_in_source_order(server: MailServer, client: Client) -> None:
    server.append_many("INBOX", [message(n) for n in range(1, 9)])
    server.create("Archive")
    client.ok("s SELECT INBOX")
    client.transcript(
        """
        C: a UID COPY 7,1:2,5 Archive
        S: a OK [COPYUID ${v} 1:2,5,7 1:4] UID COPY completed
        C: b UID COPY 8 Archive
        S: b OK [COPYUID ${v} 8 5] UID COPY completed
        """,
        v=server.uidvalidity("Archive"),
    )


@pytest.mark.parametrize("flags", [(), ("\\Flagged", "$Label")])
def test_appenduid_is_the_uid_the_store_assigned(server: MailServer, client: Client, flags: tuple[str, ...]) -> None:
    server.append_many("INBOX", [message(n) for n in range(3)])
    flag_list = "(" + " ".join(flags) + ") " if flags else ""
    out = client.lines(f"a APPEND INBOX {flag_list}{{5+}}\r\nhello")
    assert out == [b"a OK [APPENDUID %d 4] APPEND completed" % server.uidvalidity("INBOX")]
    [*_, (record, data)] = server.read_messages("INBOX")
    assert (record.uid, record.flags, data) == (4, flags, b"hello")

"""MULTIAPPEND (RFC 3502): several messages in one APPEND, stored all or
none, with UIDPLUS's APPENDUID uid-set (RFC 4315 §3); byte-exact
transcripts checked against what the store then holds."""

from __future__ import annotations

import datetime

from tests.imap.commands.harness import Client, MailServer, message

PDT = datetime.timezone(datetime.timedelta(hours=-7))
FIRST = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example.COM>\r\n"
    b"Subject: afternoon meeting\r\n"
    b"To: mooch@owatagu.example.net\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.example.COM>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)
SECOND = (
    b"Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\n"
    b"From: Joe Mooch <mooch@OWaTaGu.example.net>\r\n"
    b"Subject: Re: afternoon meeting\r\n"
    b"To: foobar@blurdybloop.example.COM\r\n"
    b"Message-Id: <a0434793874930@OWaTaGu.example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"3:30 is fine with me.\r\n"
)


def lines(raw: bytes) -> str:
    """A CRLF-terminated message as transcript ``C:`` lines (its last line
    is continued by the caller, so it is left without its CRLF)."""
    return "\n".join(f"C: {line}" for line in raw.decode()[:-2].split("\r\n"))


def test_rfc3502_example(server: MailServer, client: Client) -> None:
    """RFC 3502 §6's example: two messages, the second with a date; one OK
    with both UIDs (RFC 4315 §3 ``append-uid = uniqueid / uid-set``)."""
    server.create("saved-messages")
    client.transcript(f'''
        C: A003 APPEND saved-messages (\\Seen) {{{len(FIRST)}}}
        S: + Ready for literal data
        {lines(FIRST)}
        C:  (\\Seen) " 1-Jul-2002 22:10:41 -0700" {{{len(SECOND)}}}
        S: + Ready for literal data
        {lines(SECOND)}
        C:
        S: A003 OK [APPENDUID {server.uidvalidity("saved-messages")} 1:2] APPEND completed
    ''')
    stored = server.read_messages("saved-messages")
    assert [(r.uid, r.flags, data) for r, data in stored] == [
        (1, ("\\Seen",), FIRST), (2, ("\\Seen",), SECOND)]
    assert stored[1][0].internal_date == datetime.datetime(2002, 7, 1, 22, 10, 41, tzinfo=PDT)


def test_nonsynchronizing_literals_and_uids_after_existing_messages(server: MailServer, client: Client) -> None:
    server.append_many("INBOX", [message(1), message(2), message(3)])
    client.transcript(f'''
        C: a APPEND INBOX {{3+}}
        C: one {{3+}}
        C: two () ~{{5+}}
        C: three
        S: a OK [APPENDUID {server.uidvalidity("INBOX")} 4:6] APPEND completed
    ''')
    assert [data for _, data in server.read_messages("INBOX")][3:] == [b"one", b"two", b"three"]


def test_one_bad_message_appends_none(server: MailServer, client: Client) -> None:
    """RFC 3502 §3: if one message cannot be appended, none is: here the
    third carries ``\\Recent``, which a client may not set (BAD)."""
    before = server.status("INBOX")
    client.transcript('''
        C: a APPEND INBOX {1+}
        C: A {1+}
        C: B (\\Recent) {1+}
        C: C
        S: a BAD \\Recent cannot be stored
    ''')
    after = server.status("INBOX")
    assert (after.messages, after.uidnext, after.highestmodseq) == (
        0, before.uidnext, before.highestmodseq)


def test_missing_target_is_trycreate_and_appends_none(server: MailServer, client: Client) -> None:
    client.transcript('''
        C: a APPEND Nowhere {1+}
        C: A {1+}
        C: B
        S: a NO [TRYCREATE] Mailbox does not exist: Nowhere
    ''')
    assert "Nowhere" not in server.mailbox_names()


def test_into_the_selected_mailbox_and_seen_by_another_session(server: MailServer, client: Client) -> None:
    """The new messages are announced before the OK (RFC 3501 §6.3.11 "the
    normal new message actions"), and to another session at its next
    command; they are \\Recent in exactly one session (the EXAMINE still
    counts the message that was recent when it opened)."""
    server.append("INBOX", message(1))
    other = server.connect("alice")
    other.ok("s EXAMINE INBOX")
    client.ok("s SELECT INBOX")
    uidvalidity = server.uidvalidity("INBOX")
    client.transcript(f'''
        C: a APPEND INBOX {{1+}}
        C: A {{1+}}
        C: B
        S: * 3 EXISTS
        S: * 3 RECENT
        S: a OK [APPENDUID {uidvalidity} 2:3] APPEND completed
    ''')
    other.transcript('''
        C: n NOOP
        S: * 3 EXISTS
        S: * 1 RECENT
        S: n OK NOOP completed
    ''')
    assert other.lines("f FETCH 2:3 (FLAGS)")[:2] == [b"* 2 FETCH (FLAGS ())", b"* 3 FETCH (FLAGS ())"]

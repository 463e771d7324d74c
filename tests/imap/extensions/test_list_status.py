"""LIST-STATUS (RFC 5819): ``RETURN (STATUS (...))`` sends each selectable
listed mailbox's STATUS right after its LIST line; transcripts of the RFC's
§5 examples, with the other STATUS items (SIZE, HIGHESTMODSEQ, APPENDLIMIT)
and another session's changes."""

from __future__ import annotations

import pytest

from imapd.core.config import Limits
from tests.imap.commands.harness import Client, MailServer, message, run


@pytest.fixture
def rfc_boxes(server: MailServer, client: Client) -> Client:
    """RFC 5819 §5: INBOX 17 messages (16 unseen), foo 30 (29 unseen), and
    bar, a ``\\Noselect`` name (here a placeholder kept by bar/baz)."""
    server.append_many("INBOX", [message(n) for n in range(17)], [("\\Seen",)] + [()] * 16)
    server.create("foo")
    server.append_many("foo", [message(n) for n in range(30)], [("\\Seen",)] + [()] * 29)
    server.create("bar/baz")
    client.ok("d DELETE bar")
    return client


def test_rfc5819_example_1(rfc_boxes: Client) -> None:
    rfc_boxes.transcript('''
        C: A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (MESSAGES 17 UNSEEN 16)
        S: * LIST (\\Noselect \\HasChildren) "/" bar
        S: * LIST (\\HasNoChildren) "/" foo
        S: * STATUS foo (MESSAGES 30 UNSEEN 29)
        S: A01 OK LIST completed
    ''')


def test_rfc5819_example_2_no_status_for_a_childinfo_only_name(server: MailServer, rfc_boxes: Client) -> None:
    """foo is listed only because a subscribed child is below it: no STATUS."""
    server.create("foo/sub")
    run(server.mail.subscribe("alice", "INBOX"))
    run(server.mail.subscribe("alice", "foo/sub"))
    rfc_boxes.transcript('''
        C: A02 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (STATUS (MESSAGES))
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: * STATUS INBOX (MESSAGES 17)
        S: * LIST (\\HasChildren) "/" foo ("CHILDINFO" ("SUBSCRIBED"))
        S: A02 OK LIST completed
    ''')


def test_size_highestmodseq_and_appendlimit_items(server: MailServer, client: Client) -> None:
    """STATUS=SIZE (RFC 8438), HIGHESTMODSEQ (RFC 7162) and APPENDLIMIT
    (RFC 7889 §4: the literal limit, the same for every mailbox)."""
    server.create("Box")
    server.append_many("Box", [b"12345", b"1234567890"])
    limit = Limits().max_literal
    client.transcript('''
        C: a LIST "" Box RETURN (STATUS (SIZE MESSAGES APPENDLIMIT HIGHESTMODSEQ))
        S: * LIST (\\HasNoChildren) "/" Box
        S: * STATUS Box (SIZE 15 MESSAGES 2 APPENDLIMIT ${limit} HIGHESTMODSEQ 2)
        S: a OK LIST completed
    ''', limit=limit)
    # RFC 7162 §3.1: asking for HIGHESTMODSEQ enabled CONDSTORE, as STATUS does.
    assert "CONDSTORE" in client.session.enabled


def test_status_follows_changes_of_other_sessions(server: MailServer, client: Client) -> None:
    server.create("Box")
    other = server.connect("alice")
    other.exchange(b"x APPEND Box {5}\r\n")
    other.exchange(b"hello\r\n")
    client.transcript('''
        C: a LIST "" (Box INBOX) RETURN (STATUS (MESSAGES RECENT UIDNEXT SIZE))
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (MESSAGES 0 RECENT 0 UIDNEXT 1 SIZE 0)
        S: * LIST (\\HasNoChildren) "/" Box
        S: * STATUS Box (MESSAGES 1 RECENT 1 UIDNEXT 2 SIZE 5)
        S: a OK LIST completed
    ''')


def test_status_items_are_checked(client: Client) -> None:
    # A status-att the grammar knows (RFC 9051 §9) that we do not answer.
    assert client.lines('a LIST "" % RETURN (STATUS (MAILBOXID))') == [
        b"a BAD Unknown status item MAILBOXID"]
    assert client.lines('b LIST "" % RETURN (STATUS (NOPE))') == [b"b BAD Unknown status item NOPE"]

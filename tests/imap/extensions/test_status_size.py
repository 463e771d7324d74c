"""STATUS=SIZE (RFC 8438): the SIZE item is the total RFC822.SIZE of the
mailbox's messages, kept right through APPEND, COPY, EXPUNGE and another
session's changes."""

from __future__ import annotations

from tests.imap.commands.harness import Client, MailServer, message


def test_rfc8438_example_shape(server: MailServer, client: Client) -> None:
    """RFC 8438 §4's exchange: ``STATUS INBOX (MESSAGES UNSEEN SIZE)``;
    SIZE is the sum of the messages' octets."""
    sizes = [len(message(n)) for n in range(3)]
    server.append_many("INBOX", [message(n) for n in range(3)], [("\\Seen",), (), ()])
    client.transcript(f'''
        C: A042 STATUS INBOX (MESSAGES UNSEEN SIZE)
        S: * STATUS INBOX (MESSAGES 3 UNSEEN 2 SIZE {sum(sizes)})
        S: A042 OK STATUS completed
    ''')


def test_size_follows_copy_expunge_and_other_sessions(server: MailServer, client: Client) -> None:
    server.create("Box")
    server.append_many("INBOX", [b"12345", b"1234567890", b"123"])
    other = server.connect("alice")
    other.ok("s SELECT INBOX")
    other.ok("c COPY 1:2 Box")
    assert client.lines("a STATUS Box (SIZE)")[0] == b"* STATUS Box (SIZE 15)"
    other.ok("d STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("e EXPUNGE")
    client.transcript('''
        C: b STATUS INBOX (SIZE MESSAGES)
        S: * STATUS INBOX (SIZE 8 MESSAGES 2)
        S: b OK STATUS completed
        C: c STATUS Box (SIZE)
        S: * STATUS Box (SIZE 15)
        S: c OK STATUS completed
    ''')


def test_empty_mailbox_and_errors(server: MailServer, client: Client) -> None:
    server.create("Empty")
    client.transcript('''
        C: a STATUS Empty (SIZE)
        S: * STATUS Empty (SIZE 0)
        S: a OK STATUS completed
        C: b STATUS Nowhere (SIZE)
        S: b NO [NONEXISTENT] Mailbox does not exist: Nowhere
    ''')

"""STATUS DELETED (RFC 9051 §6.3.11: messages flagged \\Deleted) and
DELETED-STORAGE (RFC 9208 §4.2: what EXPUNGE would free, in the STORAGE
resource's unit of 1024 octets), which a server offering QUOTA=RES-MESSAGE
and QUOTA=RES-STORAGE answers; kept right through STORE and EXPUNGE."""

from __future__ import annotations

from tests.imap.commands.harness import Client, MailServer


def test_deleted_counts_follow_store_and_expunge(server: MailServer, client: Client) -> None:
    server.append_many("INBOX", [b"x" * 100, b"y" * 2000, b"z" * 5000])
    client.transcript('''
        C: a STATUS INBOX (DELETED DELETED-STORAGE MESSAGES)
        S: * STATUS INBOX (DELETED 0 DELETED-STORAGE 0 MESSAGES 3)
        S: a OK STATUS completed
    ''')
    other = server.connect("alice")
    other.ok("s SELECT INBOX")
    other.ok("t STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    # 100 + 2000 octets: 2100 / 1024 rounded up is 3.
    client.transcript('''
        C: b STATUS INBOX (DELETED-STORAGE DELETED)
        S: * STATUS INBOX (DELETED-STORAGE 3 DELETED 2)
        S: b OK STATUS completed
    ''')
    other.ok("u STORE 1 -FLAGS.SILENT (\\Deleted)")
    other.ok("e EXPUNGE")
    client.transcript('''
        C: c STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)
        S: * STATUS INBOX (MESSAGES 2 DELETED 0 DELETED-STORAGE 0)
        S: c OK STATUS completed
    ''')


def test_deleted_in_list_status(server: MailServer, client: Client) -> None:
    """RFC 5819: LIST ... RETURN (STATUS (DELETED)) answers the same item."""
    server.append_many("INBOX", [b"m"], [("\\Deleted",)])
    lines = client.lines('a LIST "" INBOX RETURN (STATUS (DELETED))')
    assert b"* STATUS INBOX (DELETED 1)" in lines

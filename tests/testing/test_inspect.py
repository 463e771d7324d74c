"""imapd.testing.inspect: read-only views of a test server's store."""

from __future__ import annotations

import imaplib

import pytest

from imapd.testing.inspect import MailboxNotFound
from imapd.testing.server import TestServer

ENCODED = b"Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain\r\n\r\nhi\r\n"


def test_messages_parse_and_decode_their_subject() -> None:
    with TestServer() as server:
        server.add_user("alice", "pw")
        server.seed("alice", "INBOX", ENCODED, b"X-No-Subject: 1\r\n\r\nx\r\n")
        first, second = server.mailbox("INBOX").messages
        assert first.subject == "café" and first.size == len(ENCODED)
        assert first.message.get_content().strip() == "hi"
        assert second.subject is None
        state = server.mailbox("INBOX")
        assert state.message(2).raw == second.raw
        with pytest.raises(KeyError, match=r"no UID 7 in 'INBOX'; UIDs: \[1, 2\]"):
            state.message(7)
        assert state.uidnext == 3 and state.uidvalidity > 0 and state.highestmodseq > 0


def test_a_state_is_a_snapshot_taken_when_asked() -> None:
    with TestServer() as server:
        server.add_user("alice", "pw")
        before = server.mailbox("INBOX")
        server.seed("alice", "INBOX", ENCODED)
        assert before.exists == 0 and server.mailbox("INBOX").exists == 1


def test_reading_claims_no_recent_from_the_client() -> None:
    # RFC 3501 §2.3.2: \Recent belongs to the first session that sees the
    # message; an assertion helper is no session and must not take it.
    with TestServer() as server:
        server.add_user("alice", "pw")
        server.seed("alice", "INBOX", ENCODED)
        assert server.mailbox("INBOX").exists == 1
        with imaplib.IMAP4(*server.address) as client:
            client.login("alice", "pw")
            client.select("INBOX")
            assert client.response("RECENT")[1] == [b"1"]
            client.logout()
        assert "\\Recent" not in server.mailbox("INBOX").messages[0].flags


def test_missing_mailbox_error_carries_the_names() -> None:
    with TestServer(options={"default_mailboxes": ()}) as server:
        server.add_user("alice", "pw")
        with pytest.raises(MailboxNotFound) as caught:
            server.mailbox("Archive")
        assert caught.value.existing == ["INBOX"] and caught.value.user == "alice"

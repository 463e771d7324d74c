"""The transcript harness itself: parsing rules, and that a wrong
expectation fails (so transcripts elsewhere can fail)."""

from __future__ import annotations

import pytest

from tests.imap.commands.harness import Client, MailServer, TranscriptError, parse_transcript


def test_parse_groups_client_lines_and_following_server_lines() -> None:
    steps = parse_transcript(
        """
        # comment
        C: a APPEND INBOX {5}
        S: + Ready for literal data
        C: hello
        C: b NOOP
        S: a OK done
        S: b OK done
        """,
        {},
    )
    assert steps == [
        (b"a APPEND INBOX {5}\r\n", b"+ Ready for literal data\r\n"),
        (b"hello\r\nb NOOP\r\n", b"a OK done\r\nb OK done\r\n"),
    ]


def test_parse_substitutes_variables_and_leaves_other_dollars() -> None:
    steps = parse_transcript("C: a FETCH $ ${what}\nS: x ${n}", {"what": "FLAGS", "n": 7})
    assert steps == [(b"a FETCH $ FLAGS\r\n", b"x 7\r\n")]


def test_parse_rejects_unknown_prefix() -> None:
    with pytest.raises(TranscriptError):
        parse_transcript("X: nope", {})


def test_client_is_logged_in_and_transcript_checks_bytes(client: Client) -> None:
    assert client.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1")
    client.transcript(
        """
        C: a NOOP
        S: a OK NOOP completed
        C: b LOGIN alice wonderland
        S: b BAD Command not allowed in this state
        """
    )


def test_transcript_mismatch_fails(client: Client) -> None:
    with pytest.raises(AssertionError):
        client.transcript("C: a NOOP\nS: a OK NOOP done")


def test_unauthenticated_connection(server: MailServer) -> None:
    anonymous = server.connect(None)
    assert anonymous.command("a NOOP") == b"a OK NOOP completed\r\n"
    assert anonymous.command("b LOGIN bob builder").startswith(b"b OK [CAPABILITY")


def test_store_helpers(server: MailServer) -> None:
    server.create("Work/Projects")
    uid = server.append("Work/Projects", b"Subject: x\r\n\r\nbody\r\n", ["\\Seen"])
    assert uid == 1
    status = server.status("Work/Projects")
    assert (status.messages, status.unseen, status.uidnext) == (1, 0, 2)
    assert server.mailbox_names() == ["INBOX", "Work", "Work/Projects"]

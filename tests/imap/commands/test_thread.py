"""THREAD and UID THREAD transcripts (RFC 5256 §3, §4), byte-exact:
REFERENCES and ORDEREDSUBJECT over a real store, search criteria, UIDs,
the charset rule, syntax errors, the sent date's fallback."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from imapd.mail.records import AppendItem
from tests.imap.commands.harness import Client, MailServer, run

UTC = datetime.timezone.utc


def mail(headers: str) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\nbody\r\n"


# UID 1 is expunged, so message n has UID n + 1.
MESSAGES = [
    mail("Message-ID: <root@x>\nSubject: plans\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"),
    mail("Message-ID: <r1@x>\nReferences: <root@x>\nSubject: Re: plans\n"
         "Date: Mon, 1 Jan 2024 12:00:00 +0000\n"),
    # Sent 11:00 UTC (13:00 +0200): before r1 among root's replies.
    mail("Message-ID: <r2@x>\nIn-Reply-To: <root@x>\nSubject: Re: plans\n"
         "Date: Mon, 1 Jan 2024 13:00:00 +0200\n"),
    mail("Message-ID: <r3@x>\nReferences: <root@x>\n  <r1@x>\nSubject: Re: plans\n"
         "Date: Mon, 1 Jan 2024 14:00:00 +0000\n"),
    # No Date: the internal date (9:00 UTC) is its sent date; an original.
    mail("Message-ID: <other@x>\nSubject: lunch\n"),
    # A reply found by subject only (no references).
    mail("Message-ID: <late@x>\nSubject: RE: Lunch\nDate: Mon, 1 Jan 2024 15:00:00 +0000\n"),
]


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    server.append("INBOX", b"Subject: gone\r\n\r\ngone\r\n", ["\\Deleted"])
    internal = datetime.datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    for n, message in enumerate(MESSAGES, start=1):
        server.append("INBOX", message, ["\\Seen"] if n % 2 else [], internal)
    client.ok("s SELECT INBOX")
    client.ok("e EXPUNGE")
    return client


def test_thread_references(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a THREAD REFERENCES UTF-8 ALL
        S: * THREAD (5 6)(1 (3)(2 4))
        S: a OK THREAD completed
    """)


def test_uid_thread_answers_uids(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a UID THREAD REFERENCES US-ASCII ALL
        S: * THREAD (6 7)(2 (4)(3 5))
        S: a OK UID THREAD completed
    """)


def test_thread_ordered_subject(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a THREAD ORDEREDSUBJECT UTF-8 ALL
        S: * THREAD (5 6)(1 (3)(2)(4))
        S: a OK THREAD completed
    """)


def test_thread_threads_only_the_matches(mailbox: Client) -> None:
    """Only messages matching the search take part: without 1, its replies
    hang from a missing parent (a dummy at the top)."""
    mailbox.transcript("""
        C: a THREAD REFERENCES UTF-8 2:4
        S: * THREAD ((3)(2 4))
        S: a OK THREAD completed
        C: b thread references utf-8 seen
        S: * THREAD (5)(1 3)
        S: b OK THREAD completed
        C: c THREAD REFERENCES UTF-8 SUBJECT nothing
        S: * THREAD
        S: c OK THREAD completed
    """)


def test_thread_charset_and_syntax(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a THREAD REFERENCES KOI8-R ALL
        S: a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R
        C: b THREAD REFERENCES ALL
        S: b BAD Missing search criteria
        C: c THREAD NOSUCH UTF-8 ALL
        S: c BAD Unknown thread algorithm NOSUCH
        C: d THREAD REFERENCES UTF-8
        S: d BAD Missing search criteria
    """)


def test_thread_needs_a_selected_mailbox(client: Client) -> None:
    lines = client.lines("a THREAD REFERENCES UTF-8 ALL")
    assert lines[-1].startswith(b"a BAD ")


def test_long_header_and_missing_analysis(server: MailServer, client: Client) -> None:
    """A header longer than the first read (References after 40 KB of other
    fields) is read on; a message stored without its analysis (``meta``
    empty) is analysed from its bytes. Both still thread under 1."""
    padding = "".join(f"X-Padding-{n}: {'p' * 70}\n" for n in range(500))
    server.append("INBOX", mail("Message-ID: <root@x>\nSubject: a\n"))
    server.append("INBOX", mail(f"Message-ID: <long@x>\n{padding}References: <root@x>\nSubject: b\n"))
    item = AppendItem(mail("Message-ID: <bare@x>\nIn-Reply-To: <long@x>\nSubject: c\n"), (), None, b"")
    run(server.mail.deliver("alice", "INBOX", [item]))
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: a THREAD REFERENCES UTF-8 ALL
        S: * THREAD (1 2 3)
        S: a OK THREAD completed
        C: b THREAD ORDEREDSUBJECT UTF-8 ALL
        S: * THREAD (1)(2)(3)
        S: b OK THREAD completed
    """)


def test_a_thread_over_many_messages_takes_several_turns(tmp_path: Path) -> None:
    """THREAD ALL describes messages from their facts ``thread.PACE_EVERY``
    at a time, each counted in the slice (``ctx.pace(units)``): a THREAD
    over 1,000 messages still leaves other connections their turns."""
    from imapd.net import pipeline
    from tests.imap.commands.harness import message
    from tests.imap.commands.test_pacing import one_turn

    count = 1000
    server = MailServer(tmp_path)
    try:
        server.append_many("INBOX", [message(n, f"subject {n:05d}") for n in range(count)])
        client = server.connect()
        client.ok("s SELECT INBOX")
        client.conv.send(b"q THREAD ORDEREDSUBJECT UTF-8 ALL\r\n")
        assert client.read() == b"", "the whole THREAD ran in one reactor turn"
        turns, out = 0, b""
        while b"q OK" not in out:
            one_turn(server.clock)
            turns += 1
            out += client.read()
            assert turns < count
        assert out.endswith(b"q OK THREAD completed\r\n")
        assert sorted(int(n) for n in re.findall(rb"\d+", out.split(b"\r\n")[0])) \
            == list(range(1, count + 1))
        assert turns >= count // pipeline.TURN_COMMANDS
    finally:
        server.close()

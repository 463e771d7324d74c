"""SORT and THREAD read the facts the store kept at delivery (issue 18;
``imapd.message.sortfacts``) instead of decoding every message's analysis
and header, and answer exactly as before: with every message's facts,
with none (a store from before schema v5) and with some."""

from __future__ import annotations

import contextlib
import datetime
import sqlite3

import pytest

from imapd.imap.commands import sort, thread
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.imap.commands.harness import Client, MailServer

UTC = datetime.timezone.utc


def mail(headers: str) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\nbody\r\n"


MESSAGES = [
    mail("Message-ID: <root@x>\nSubject: plans\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
         "From: Zed <zed@example.org>\nTo: amy@example.org\n"),
    mail("Message-ID: <r1@x>\nReferences: <root@x>\nSubject: Re: plans\n"
         "Date: Mon, 1 Jan 2024 12:00:00 +0000\nFrom: =?utf-8?q?=C3=89mile?= <e@x>\n"),
    mail("Message-ID: <r2@x>\nIn-Reply-To: <root@x>\nSubject: Re: plans\n"
         "Date: Mon, 1 Jan 2024 13:00:00 +0200\nCc: team: bob@x;\n"),
    mail("Message-ID: <r3@x>\nReferences: <root@x>\n  <r1@x>\nSubject: Re: plans\n"
         "Date: Tue, 31 Feb 2024 14:00:00 +0000\nTo: \"Al\" <al@x>\n"),
    mail("Message-ID: <other@x>\nSubject: lunch\nFrom: amy@example.org\n"),
    mail("Message-ID: <late@x>\nSubject: RE: Lunch\nDate: Mon, 1 Jan 2024 15:00:00 +0000\n"),
    mail("Subject: [list] Fwd: plans (fwd)\nDate: 1 Jan 2024 08:00\nFrom: Bob <bob@x>\n"),
]
COMMANDS = [
    "SORT (DATE) UTF-8 ALL", "SORT (REVERSE DATE SUBJECT) UTF-8 ALL",
    "SORT (FROM TO) UTF-8 ALL", "SORT (CC SIZE) UTF-8 ALL",
    "UID SORT (DISPLAYFROM REVERSE DISPLAYTO) UTF-8 ALL", "SORT (SUBJECT ARRIVAL) UTF-8 SEEN",
    "THREAD REFERENCES UTF-8 ALL", "UID THREAD REFERENCES UTF-8 ALL",
    "THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD REFERENCES UTF-8 UNSEEN",
]


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    internal = datetime.datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    for n, message in enumerate(MESSAGES, start=1):
        server.append("INBOX", message, ["\\Seen"] if n % 2 else [], internal)
    client.ok("s SELECT INBOX")
    return client


def _answers(client: Client) -> list[list[bytes]]:
    return [client.ok(f"c{n} {command}") for n, command in enumerate(COMMANDS)]


def _drop_facts(server: MailServer, where: str) -> int:
    """Forget stored facts, as for mail stored before schema v5."""
    with contextlib.closing(sqlite3.connect(server.data_dir / DB_FILENAME)) as conn:
        with conn:
            return conn.execute(f"DELETE FROM sort_facts WHERE {where}").rowcount


def test_sort_and_thread_need_no_analysis_when_facts_are_stored(
    mailbox: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("decoded a stored analysis")

    monkeypatch.setattr(sort, "_envelope", refuse)
    monkeypatch.setattr(thread, "_envelope", refuse)
    monkeypatch.setattr(thread, "_header_block", refuse)
    for command, out in zip(COMMANDS, _answers(mailbox)):
        assert out[-1].endswith(b" completed"), (command, out)


def test_answers_are_the_same_with_all_some_and_no_facts(
    mailbox: Client, server: MailServer,
) -> None:
    with_facts = _answers(mailbox)
    assert _drop_facts(server, "body_id % 2 = 0") == len(MESSAGES) // 2
    assert _answers(mailbox) == with_facts
    assert _drop_facts(server, "1") == len(MESSAGES) - len(MESSAGES) // 2
    assert _answers(mailbox) == with_facts


def test_only_all_matches_everything() -> None:
    """SORT/THREAD/SEARCH ALL skip the per-message evaluation (issue 18)."""
    from imapd.imap.commands.search_eval import matches_everything
    from imapd.imap.wire.commands import SearchAll, SearchAnd, SearchFlag, SearchNot, SearchOr

    assert matches_everything(SearchAll())
    assert matches_everything(SearchAnd((SearchAll(), SearchAnd((SearchAll(),)))))
    assert not matches_everything(SearchAnd((SearchAll(), SearchFlag("\\Seen", True))))
    assert not matches_everything(SearchNot(SearchAll()))
    assert not matches_everything(SearchOr(SearchAll(), SearchAll()))


def _record_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The UIDs whose store records are read from now on."""
    from imapd.mail.watch import MailboxWatch

    read: list[int] = []
    fetch = MailboxWatch.fetch_records

    async def spy(self: MailboxWatch, uids: object = None, **kwargs: object) -> object:
        read.extend(uids if isinstance(uids, list) else [-1])  # -1: all of them
        return await fetch(self, uids, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MailboxWatch, "fetch_records", spy)
    return read


def test_sort_and_thread_all_read_records_only_where_facts_cannot_say(
    mailbox: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SORT (DATE) and THREAD ... ALL key every message from its stored
    facts without reading the store's records (100,000 records were a
    third of SORT (DATE) ALL, issue 18); only messages 4 and 5, whose Date
    is invalid or missing (their internal date is their sent date, RFC 5256
    §2.2), have their records read. Keys that are record fields (SIZE, ARRIVAL) still read them all."""
    expected = [mailbox.ok(f"a{n} {c}") for n, c in enumerate(COMMANDS)]
    read = _record_reads(monkeypatch)
    assert mailbox.ok("b SORT (DATE) UTF-8 ALL")[0] == expected[0][0]
    assert read == [4, 5]
    read.clear()
    assert mailbox.ok("c SORT (FROM TO) UTF-8 ALL")[0] == expected[2][0]
    assert read == []
    assert mailbox.ok("d THREAD REFERENCES UTF-8 ALL")[0] == expected[6][0]
    assert read == [5]
    read.clear()
    assert mailbox.ok("e SORT (CC SIZE) UTF-8 ALL")[0] == expected[3][0]
    assert read == list(range(1, len(MESSAGES) + 1))


def test_sort_and_thread_all_leave_out_a_message_another_session_expunged(
    mailbox: Client, server: MailServer,
) -> None:
    """A message expunged by another session, not yet announced, is gone
    from the store: SORT/THREAD ALL do not list it (as SEARCH ALL), also
    when its facts are not read from the records (issue 18)."""
    before = mailbox.ok("z SORT (DATE) UTF-8 ALL")[0].split(b" ")
    other = server.connect()
    other.ok("o1 SELECT INBOX")
    other.ok("o2 STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("o3 EXPUNGE")
    expected = b" ".join(n for n in before if n != b"2")
    assert mailbox.ok("a SORT (DATE) UTF-8 ALL")[0] == expected
    assert mailbox.ok("b SORT (DATE) UTF-8 1:*")[0] == expected
    threads = mailbox.ok("c THREAD REFERENCES UTF-8 ALL")[0]
    assert b" 2" not in threads and b"(2" not in threads, threads


def test_sort_and_thread_all_of_an_empty_mailbox(client: Client) -> None:
    """ALL without any message: the view-based path answers empty lists."""
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: a SORT (DATE) UTF-8 ALL
        S: * SORT
        S: a OK SORT completed
        C: b THREAD REFERENCES UTF-8 ALL
        S: * THREAD
        S: b OK THREAD completed
        C: c UID THREAD ORDEREDSUBJECT UTF-8 ALL
        S: * THREAD
        S: c OK UID THREAD completed
    """)

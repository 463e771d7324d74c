"""SORT and UID SORT transcripts (RFC 5256 §3; DISPLAYFROM/DISPLAYTO, RFC
5957): every key, REVERSE, several keys, ties in mailbox order, the search
part (charset, keys, MODSEQ), syntax errors, and pacing over many
messages (a SORT over a big mailbox is answered over several reactor
turns, so other connections are served meanwhile)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from imapd.imap.commands import sort as sort_command
from imapd.mail.records import AppendItem
from imapd.message import analyze
from imapd.net import pipeline
from tests.imap.commands.harness import Client, MailServer, message, run
from tests.imap.commands.test_pacing import one_turn

UTC = datetime.timezone.utc

# Sent dates in UTC: M1 8-Feb 05:52, M2 7-Feb 16:00 (written later, but at
# +0900), M3 none (internal 7-Feb 10:00), M4 unparseable (internal 1-Mar),
# M5 none (internal 1-Jan).
M1 = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b'From: "Zed" <bob@x.example>\r\n'
    b"To: carol@a.example\r\n"
    b"Cc: dave@a.example\r\n"
    b"Subject: Re: Meeting\r\n"
    b"\r\nbody one\r\n"
)
M2 = (
    b"Date: Tue, 8 Feb 1994 01:00:00 +0900\r\n"
    b"From: =?UTF-8?Q?=C3=89mile?= <alice@x.example>\r\n"
    b"To: Ann <zoe@a.example>\r\n"
    b"Subject: [list] meeting\r\n"
    b"\r\nbody two, a little longer\r\n"
)
M3 = (
    b"From: charlie@x.example\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b"Subject: apple\r\n"
    b"\r\nthree\r\n"
)
M4 = (
    b"Date: not a date at all\r\n"
    b"From: ALICE@x.example\r\n"
    b"To: bob@x.example\r\n"
    b"Subject: Fwd: Apple (fwd)\r\n"
    b"\r\nbody four is the longest body of them all\r\n"
)
M5 = b"X-Nothing: here\r\n\r\nfive\r\n"
MESSAGES = [
    (M1, datetime.datetime(1994, 2, 10, 0, 0, tzinfo=UTC)),
    (M2, datetime.datetime(1994, 2, 1, 0, 0, tzinfo=UTC)),
    (M3, datetime.datetime(1994, 2, 7, 10, 0, tzinfo=UTC)),
    (M4, datetime.datetime(1994, 3, 1, 0, 0, tzinfo=UTC)),
    (M5, datetime.datetime(1994, 1, 1, 0, 0, tzinfo=UTC)),
]


def fill(server: MailServer, client: Client) -> Client:
    """M1..M5 as messages 1..5 with UIDs 2..6 (UID 1 was expunged)."""
    server.append("INBOX", b"Subject: gone\r\n\r\ngone\r\n", ["\\Deleted"])
    for raw, date in MESSAGES:
        server.append("INBOX", raw, ["\\Seen"] if raw is M3 else [], date)
    claimer = server.connect("alice")
    claimer.ok("c SELECT INBOX")
    claimer.ok("c EXPUNGE")
    claimer.ok("c LOGOUT")
    client.ok("s SELECT INBOX")
    return client


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    return fill(server, client)


@pytest.fixture(scope="module")
def shared_mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One filled mailbox for the read-only key table (SORT changes nothing)."""
    server = MailServer(tmp_path_factory.mktemp("sort"))
    yield fill(server, server.connect("alice"))
    server.close()


def _by_size() -> str:
    sizes = [len(raw) for raw, _ in MESSAGES]
    return " ".join(str(i) for _, i in sorted((s, i) for i, s in enumerate(sizes, 1)))


QUERIES = [
    ("ARRIVAL", "5 2 3 1 4"),
    ("REVERSE ARRIVAL", "4 1 3 2 5"),
    # Zones normalised; a missing or unparseable Date is the internal date.
    ("DATE", "5 3 2 1 4"),
    ("REVERSE DATE", "4 1 2 3 5"),
    # The first mailbox's local part, folded: alice = ALICE (ties: 2 before 4).
    ("FROM", "5 2 4 1 3"),
    ("REVERSE FROM", "3 1 2 4 5"),
    # A group sorts by its name (M3: UNDISCLOSED-RECIPIENTS).
    ("TO", "5 4 1 3 2"),
    ("CC", "2 3 4 5 1"),
    # Base subjects: MEETING (1, 2), APPLE (3, 4), "" (5).
    ("SUBJECT", "5 3 4 1 2"),
    ("SUBJECT DATE", "5 3 4 2 1"),
    ("SUBJECT REVERSE DATE", "5 4 3 1 2"),
    ("REVERSE SUBJECT ARRIVAL", "2 1 3 4 5"),
    # Display names decoded (Émile folds to E U+0301 MILE), else addr-spec.
    ("DISPLAYFROM", "5 4 3 2 1"),
    ("DISPLAYTO", "5 2 4 1 3"),
    ("SIZE", _by_size()),
    ("FROM SUBJECT", "5 4 2 1 3"),
]


@pytest.mark.parametrize(("program", "expected"), QUERIES, ids=[q for q, _ in QUERIES])
def test_sort_key(shared_mailbox: Client, program: str, expected: str) -> None:
    shared_mailbox.transcript(f"""
        C: a SORT ({program}) UTF-8 ALL
        S: * SORT {expected}
        S: a OK SORT completed
    """)


def test_uid_sort_returns_uids_and_applies_the_search(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a UID SORT (DATE) UTF-8 ALL
        S: * SORT 6 4 3 2 5
        S: a OK UID SORT completed
        C: b SORT (SUBJECT) US-ASCII UNSEEN NOT 5
        S: * SORT 4 1 2
        S: b OK SORT completed
        C: c SORT (DATE) utf-8 SUBJECT nowhere
        S: * SORT
        S: c OK SORT completed
        C: d UID SORT (REVERSE SIZE) UTF-8 UID 3:4
        S: * SORT 3 4
        S: d OK UID SORT completed
    """)


def test_rfc5256_section_3_example_shape(mailbox: Client) -> None:
    # §3: "A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994" (internal dates).
    mailbox.transcript("""
        C: A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994
        S: * SORT 3 4 1 2
        S: A282 OK SORT completed
        C: A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL
        S: * SORT 5 4 3 1 2
        S: A283 OK SORT completed
        C: A284 SORT (SUBJECT) US-ASCII TEXT "not in mailbox"
        S: * SORT
        S: A284 OK SORT completed
    """)


def test_unsupported_charset_is_badcharset(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a SORT (DATE) KOI8-R ALL
        S: a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R
    """)


@pytest.mark.parametrize("line", [
    "a SORT DATE UTF-8 ALL",
    "a SORT (DATE) ALL",
    "a SORT (DATE",
    "a SORT () UTF-8 ALL",
    "a SORT (NAME) UTF-8 ALL",
    "a SORT (REVERSE) UTF-8 ALL",
    "a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
    "a SORT (DATE) UTF-8",
    "a SORT (DATE) UTF-8 NOSUCHKEY",
    "a SORT (" + " ".join(["DATE"] * 40) + ") UTF-8 ALL",
])
def test_syntax_errors_are_bad(mailbox: Client, line: str) -> None:
    out = mailbox.lines(line)
    assert len(out) == 1 and out[0].startswith(b"a BAD "), out


def test_sort_needs_a_selected_mailbox(client: Client) -> None:
    out = client.lines("a SORT (DATE) UTF-8 ALL")
    assert out[-1].startswith(b"a BAD") or out[-1].startswith(b"a NO"), out


def test_modseq_search_key_adds_the_highest_modseq(mailbox: Client) -> None:
    # (The first MODSEQ search enables CONDSTORE: RFC 7162 §3.1 announces
    # HIGHESTMODSEQ first.)
    out = mailbox.ok("a SORT (REVERSE ARRIVAL) UTF-8 MODSEQ 1")
    assert re.fullmatch(rb"\* SORT 4 1 3 2 5 \(MODSEQ [0-9]+\)", out[-2]), out
    assert mailbox.ok("b SORT (DATE) UTF-8 MODSEQ 999999")[-2] == b"* SORT"


def test_sort_uses_the_saved_result(mailbox: Client) -> None:
    mailbox.transcript("""
        C: a SEARCH RETURN (SAVE) SUBJECT meeting
        S: a OK SEARCH completed
        C: b SORT (REVERSE DATE) UTF-8 $
        S: * SORT 1 2
        S: b OK SORT completed
    """)


COUNT = 1000


@pytest.fixture
def big(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path)
    server.append_many("INBOX", [message(n, f"subject {COUNT - n:05d}") for n in range(COUNT)])
    yield server
    server.close()


def test_a_sort_over_many_messages_takes_several_turns(big: MailServer) -> None:
    client = big.connect()
    client.ok("s SELECT INBOX")
    client.conv.send(b"q SORT (SUBJECT) UTF-8 ALL\r\n")
    assert client.read() == b"", "the whole SORT ran in one reactor turn"
    turns, out = 0, b""
    while b"q OK" not in out:
        one_turn(big.clock)
        turns += 1
        out += client.read()
        assert turns < COUNT
    expected = " ".join(str(n) for n in range(COUNT, 0, -1))
    assert out == f"* SORT {expected}\r\nq OK SORT completed\r\n".encode()
    assert turns >= COUNT // pipeline.TURN_COMMANDS


def test_a_large_result_is_put_in_order_on_a_worker_thread(
    mailbox: Client, server: MailServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above ``THREAD_ABOVE`` messages the final ordering (one long call)
    goes to ``runtime.in_thread``, not the reactor; the answer is the same."""
    monkeypatch.setattr(sort_command, "THREAD_ABOVE", 3)
    threaded: list[str] = []
    in_thread = server.runtime.in_thread

    def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        threaded.append(fn.__name__)
        return in_thread(fn, *args, **kwargs)

    monkeypatch.setattr(server.runtime, "in_thread", spy)
    mailbox.transcript("""
        C: a SORT (SUBJECT REVERSE DATE) UTF-8 ALL
        S: * SORT 5 4 3 1 2
        S: a OK SORT completed
        C: b SORT (REVERSE SIZE) UTF-8 1:3
        S: * SORT 2 1 3
        S: b OK SORT completed
    """)
    assert threaded == ["order"]


def test_messages_without_a_usable_stored_analysis_are_analysed_again(
    server: MailServer, client: Client,
) -> None:
    """A missing or foreign analysis (``meta``) is recomputed from the
    message's bytes, so its header fields still count."""
    items = [
        AppendItem(b"Subject: b\r\nFrom: zed@x\r\n\r\n1\r\n", (), None, b""),
        AppendItem(b"Subject: a\r\nFrom: amy@x\r\n\r\n2\r\n", (), None, b'{"v": 99}'),
        AppendItem(b"Subject: c\r\n\r\n3\r\n", (), None, analyze(b"Subject: c\r\n\r\n3\r\n").to_bytes()),
    ]
    run(server.mail.deliver("alice", "INBOX", items))
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: a SORT (SUBJECT) UTF-8 ALL
        S: * SORT 2 1 3
        S: a OK SORT completed
        C: b SORT (REVERSE FROM) UTF-8 ALL
        S: * SORT 1 2 3
        S: b OK SORT completed
    """)

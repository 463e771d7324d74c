"""CONTEXT=SORT (RFC 5267 §4): ``SORT RETURN (UPDATE ...)`` keeps a sorted
result live and each ADDTO/REMOVEFROM names the message's position in sort
order. Byte-exact transcripts, and a property: whatever another session
does, the updates applied to the first result give what a fresh SORT
answers, in the same order."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.imap.commands.harness import Client, MailServer
from tests.imap.extensions.test_context_search import _own_step, operations, other, writer_step


def sized(n: int, extra: int = 0) -> bytes:
    """Message n: larger for smaller n (SIZE sorts 5, 4, 3, 2, 1)."""
    return f"Subject: m{n}\r\n\r\n".encode() + b"x" * (100 - 10 * n + extra) + b"\r\n"


def test_sorted_updates_carry_positions(server: MailServer, client: Client) -> None:
    """Flag changes: REMOVEFROM with the position the message had, ADDTO
    with the one it takes, one (position number) pair per message (§4.3);
    an expunged match leaves before its EXPUNGE; new mail joins after its
    EXISTS at its place in sort order."""
    server.append_many("INBOX", [sized(n) for n in range(1, 6)],
                       [["\\Seen"] if n % 2 else [] for n in range(1, 6)])
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: a SORT RETURN (UPDATE ALL) (SIZE) US-ASCII SEEN
        S: * ESEARCH (TAG "a") ALL 5,3,1
        S: a OK SORT completed
        C: b STORE 4,2 +FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "a") ADDTO (3 2 2 4)
        S: b OK STORE completed
        C: c STORE 3 -FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "a") REMOVEFROM (3 3)
        S: c OK STORE completed
    """)
    writer = other(server)
    writer.ok("x STORE 4 +FLAGS.SILENT (\\Deleted)")
    writer.ok("y EXPUNGE")
    new = sized(3, 5).decode()
    writer.ok(f"z APPEND INBOX (\\Seen) {{{len(new)}+}}\r\n{new}")
    client.transcript("""
        C: n NOOP
        S: * ESEARCH (TAG "a") REMOVEFROM (2 4)
        S: * 4 EXPUNGE
        S: * 5 EXISTS
        S: * 5 RECENT
        S: * ESEARCH (TAG "a") ADDTO (2 5)
        S: n OK NOOP completed
        C: d SORT (SIZE) US-ASCII SEEN
        S: * SORT 4 5 2 1
        S: d OK SORT completed
    """)


def test_uid_sort_context_and_cancelupdate(server: MailServer, client: Client) -> None:
    """A UID SORT context names UIDs; REVERSE counts in its positions;
    CANCELUPDATE ends it."""
    server.append_many("INBOX", [sized(n) for n in range(1, 6)])
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: a UID SORT RETURN (UPDATE COUNT) (REVERSE SIZE) UTF-8 UNSEEN
        S: * ESEARCH (TAG "a") UID COUNT 5
        S: a OK UID SORT completed
        C: b STORE 2,5 +FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "a") UID REMOVEFROM (2 2 4 5)
        S: b OK STORE completed
        C: c STORE 5 -FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "a") UID ADDTO (4 5)
        S: c OK STORE completed
        C: d CANCELUPDATE "a"
        S: d OK CANCELUPDATE completed
        C: e STORE 1 +FLAGS.SILENT (\\Seen)
        S: e OK STORE completed
    """)


def test_sort_return_save_stays_bad(server: MailServer, client: Client) -> None:
    client.ok("s SELECT INBOX")
    assert client.command("a SORT RETURN (SAVE) (SIZE) UTF-8 ALL").startswith(b"a BAD ")


# --- property ------------------------------------------------------------------------

UPDATE = re.compile(rb'^\* ESEARCH \(TAG "live"\)( UID)? (ADDTO|REMOVEFROM) \(([0-9 ]+)\)$')
EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE$")
CRITERIA = ["SEEN", "UNSEEN", "OR SEEN FLAGGED", "BODY hello", "ALL"]
PROGRAMS = ["(SIZE)", "(REVERSE SIZE)", "(REVERSE ARRIVAL)", "(SUBJECT REVERSE SIZE)", "(DATE)"]
FLAGS = ["\\Seen", "\\Flagged", "\\Deleted"]


def follow(result: list[int], lines: list[bytes], uid: bool) -> None:
    """Apply updates as a client keeping the sorted list does: each
    (position number) pair in turn; EXPUNGE renumbers (sequence numbers)."""
    for line in lines:
        if (update := UPDATE.match(line)) is not None:
            assert bool(update.group(1)) == uid, line
            items = [int(n) for n in update.group(3).split()]
            assert len(items) % 2 == 0, line
            for position, number in zip(items[::2], items[1::2]):
                if update.group(2) == b"ADDTO":
                    assert number not in result, line
                    result.insert(position - 1, number)
                else:
                    assert result[position - 1] == number, (line, result)
                    del result[position - 1]
        elif (gone := EXPUNGE.match(line)) is not None and not uid:
            seq = int(gone.group(1))
            assert seq not in result, line
            result[:] = [n - 1 if n > seq else n for n in result]


def sort_now(client: Client, program: str, criteria: str, uid: bool) -> list[int]:
    lines = client.ok(f"q {'UID ' if uid else ''}SORT {program} UTF-8 {criteria}")
    assert len(lines) == 2, lines  # nothing changed since the last command
    return [int(n) for n in lines[0].split()[2:]]


def _sized(n: int) -> bytes:
    return f"Subject: s{n % 3}\r\nDate: {n % 4 + 1} Jan 2020 00:00:00 +0000\r\n\r\n".encode() + \
        b"hello " * (n % 2) + b"x" * (n * 7 % 11) + b"\r\n"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 8), st.sampled_from(CRITERIA), st.sampled_from(PROGRAMS), st.booleans(),
       operations, operations)
def test_updates_keep_the_order_equal_to_a_fresh_sort(
    count: int, criteria: str, program: str, uid: bool,
    own: list[tuple[Any, ...]], others: list[tuple[Any, ...]],
) -> None:
    """Both sessions store, expunge and append; after each of the
    watcher's commands its list, kept only from the updates, equals a new
    SORT (same messages, same order)."""
    with tempfile.TemporaryDirectory() as tmp:
        server = MailServer(Path(tmp))
        try:
            server.append_many("INBOX", [_sized(n) for n in range(count)],
                               [[FLAGS[n % 3]] for n in range(count)])
            watcher = server.connect("alice")
            watcher.ok("s SELECT INBOX")
            writer = other(server)
            first = watcher.ok(f"live {'UID ' if uid else ''}SORT RETURN (UPDATE ALL) {program} UTF-8 {criteria}")
            result = sort_now(watcher, program, criteria, uid)
            assert (b" ALL " in first[0]) == bool(result), first
            for index in range(max(len(own), len(others))):
                if index < len(others):
                    writer_step(writer, others[index])
                if index < len(own):
                    op = own[index]
                    lines = watcher.ok("n NOOP") if op[0] == "noop" else _own_step(watcher, op)
                else:
                    lines = watcher.ok("n NOOP")
                follow(result, lines + watcher.ok("n NOOP"), uid)
                assert result == sort_now(watcher, program, criteria, uid)
        finally:
            server.close()

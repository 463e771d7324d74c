"""CONTEXT=SEARCH (RFC 5267 §4) and PARTIAL results (§4.4) as byte-exact
transcripts, and a property: whatever another session does, a live
context's ADDTO/REMOVEFROM updates applied to its first result give what
a fresh SEARCH answers."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.imap.session.contexts import MAX_CONTEXTS
from tests.imap.commands.harness import Client, MailServer, message


@pytest.fixture
def five(server: MailServer, client: Client) -> Client:
    """Five messages, 2 and 4 \\Seen; ``client`` has INBOX selected (its
    SELECT took \\Recent away from everyone else)."""
    server.append_many("INBOX", [message(n) for n in range(1, 6)],
                       [["\\Seen"] if n in (2, 4) else [] for n in range(1, 6)])
    client.ok("s SELECT INBOX")
    return client


def other(server: MailServer) -> Client:
    writer = server.connect("alice")
    writer.ok("w SELECT INBOX")
    return writer


def test_update_follows_own_and_others_changes(server: MailServer, five: Client) -> None:
    """Own STORE: the update comes with the STORE's reply. Another session's
    STORE and APPEND: with the next command's updates, ADDTO after the
    EXISTS that announces the new message (RFC 5267 §4.3)."""
    five.transcript("""
        C: a SEARCH RETURN (UPDATE ALL) SEEN
        S: * ESEARCH (TAG "a") ALL 2,4
        S: a OK SEARCH completed
        C: b STORE 1 +FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "a") ADDTO (0 1)
        S: b OK STORE completed
        C: c STORE 2,4 -FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "a") REMOVEFROM (0 2,4)
        S: c OK STORE completed
    """)
    writer = other(server)
    writer.ok("x STORE 3 +FLAGS.SILENT (\\Seen)")
    writer.ok("y APPEND INBOX (\\Seen) {3+}\r\nnew")
    writer.ok("z APPEND INBOX () {3+}\r\nold")
    five.transcript("""
        C: d NOOP
        S: * ESEARCH (TAG "a") ADDTO (0 3)
        S: * 3 FETCH (FLAGS (\\Seen \\Recent))
        S: * 7 EXISTS
        S: * 7 RECENT
        S: * ESEARCH (TAG "a") ADDTO (0 6)
        S: d OK NOOP completed
    """)


def test_expunged_leave_before_their_expunge(server: MailServer, five: Client) -> None:
    """An expunged match leaves with REMOVEFROM naming the number it had,
    just before the EXPUNGE responses; not during FETCH, STORE or SEARCH,
    which hold expunges back (RFC 3501 §7.4.1)."""
    five.ok("a SEARCH RETURN (UPDATE) SEEN")
    writer = other(server)
    writer.ok("x STORE 3:4 +FLAGS.SILENT (\\Deleted)")
    writer.ok("y EXPUNGE")
    five.transcript("""
        C: f FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\\Recent))
        S: f OK FETCH completed
        C: n NOOP
        S: * ESEARCH (TAG "a") REMOVEFROM (0 4)
        S: * 4 EXPUNGE
        S: * 3 EXPUNGE
        S: * 3 RECENT
        S: n OK NOOP completed
        C: s STORE 3 +FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "a") ADDTO (0 3)
        S: s OK STORE completed
    """)


def test_uid_context_and_cancelupdate(server: MailServer, five: Client) -> None:
    """A UID SEARCH context names UIDs; CANCELUPDATE ends it (RFC 5267
    §4.3); a tag naming no context is BAD and ends none."""
    five.ok("e STORE 1 +FLAGS.SILENT (\\Deleted)")
    five.ok("x EXPUNGE")
    five.transcript("""
        C: a UID SEARCH RETURN (UPDATE COUNT) UNSEEN
        S: * ESEARCH (TAG "a") UID COUNT 2
        S: a OK UID SEARCH completed
        C: b SEARCH RETURN (UPDATE) SEEN
        S: * ESEARCH (TAG "b")
        S: b OK SEARCH completed
        C: c STORE 1:4 FLAGS.SILENT (\\Flagged)
        S: * ESEARCH (TAG "a") UID ADDTO (0 2,4)
        S: * ESEARCH (TAG "b") REMOVEFROM (0 1,3)
        S: c OK STORE completed
        C: d CANCELUPDATE "a" "zz"
        S: d BAD No search context with tag zz
        C: e CANCELUPDATE "a"
        S: e OK CANCELUPDATE completed
        C: f STORE 1 +FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "b") ADDTO (0 1)
        S: f OK STORE completed
        C: g CANCELUPDATE "b"
        S: g OK CANCELUPDATE completed
        C: h STORE 2 +FLAGS.SILENT (\\Seen)
        S: h OK STORE completed
    """)


def test_contexts_are_bounded_and_end_with_the_selection(server: MailServer, five: Client) -> None:
    """More than MAX_CONTEXTS live searches: the search still answers, with
    ``OK [NOUPDATE "tag"]`` and no context (RFC 5267 §4.2). A new
    selection ends every context."""
    for n in range(MAX_CONTEXTS):
        five.ok(f"t{n} SEARCH RETURN (UPDATE) SEEN")
    five.transcript("""
        C: over SEARCH RETURN (UPDATE COUNT) SEEN
        S: * ESEARCH (TAG "over") COUNT 2
        S: over OK [NOUPDATE "over"] SEARCH completed
    """)
    five.ok("s SELECT INBOX")
    five.transcript("""
        C: u STORE 1 +FLAGS.SILENT (\\Seen)
        S: u OK STORE completed
    """)


def test_partial(server: MailServer, five: Client) -> None:
    """``PARTIAL m:n`` (RFC 5267 §4.4): positions in the result, written
    low first; NIL when none is there; UIDs for UID SEARCH."""
    five.ok("d STORE 1 +FLAGS.SILENT (\\Deleted)")
    five.ok("x EXPUNGE")
    five.transcript("""
        C: a SEARCH RETURN (PARTIAL 3:2) ALL
        S: * ESEARCH (TAG "a") PARTIAL (2:3 2:3)
        S: a OK SEARCH completed
        C: b SEARCH RETURN (COUNT PARTIAL 2:10) 1,3:4
        S: * ESEARCH (TAG "b") COUNT 3 PARTIAL (2:10 3:4)
        S: b OK SEARCH completed
        C: c UID SEARCH RETURN (PARTIAL 2:2) ALL
        S: * ESEARCH (TAG "c") UID PARTIAL (2:2 3)
        S: c OK UID SEARCH completed
        C: d SEARCH RETURN (PARTIAL 5:9) ALL
        S: * ESEARCH (TAG "d") PARTIAL (5:9 NIL)
        S: d OK SEARCH completed
    """)


@pytest.mark.parametrize("options", ["PARTIAL 1", "PARTIAL 1:*", "PARTIAL *:1", "PARTIAL 0:2",
                                     "PARTIAL 1:2 PARTIAL 3:4", "UPDATES"])
def test_bad_return_options(five: Client, options: str) -> None:
    out = five.command(f"a SEARCH RETURN ({options}) ALL")
    assert out.startswith(b"a BAD "), out


def test_cancelupdate_needs_a_quoted_tag(five: Client) -> None:
    assert five.command("a CANCELUPDATE").startswith(b"a BAD ")
    assert five.command("a CANCELUPDATE b").startswith(b"a BAD ")


# --- property ------------------------------------------------------------------------

ESEARCH = re.compile(rb'^\* ESEARCH \(TAG "live"\)( UID)? (ADDTO|REMOVEFROM) \(0 ([0-9:,]+)\)$')
EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE$")
CRITERIA = ["SEEN", "UNSEEN", "OR SEEN FLAGGED", "NOT DELETED FLAGGED", "BODY hello", "ALL"]
FLAGS = ["\\Seen", "\\Flagged", "\\Deleted"]

operations = st.lists(st.one_of(
    st.tuples(st.just("store"), st.integers(0, 20), st.sampled_from("+-"), st.sampled_from(FLAGS)),
    st.tuples(st.just("expunge"), st.integers(0, 20)),
    st.tuples(st.just("append"), st.sampled_from(FLAGS), st.booleans()),
    st.tuples(st.just("noop"),),
), max_size=12)


def numbers(text: bytes) -> set[int]:
    found: set[int] = set()
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        found.update(range(int(low), int(high or low) + 1))
    return found


def follow(result: set[int], lines: list[bytes], uid: bool) -> None:
    """Apply a drain's updates to the client's copy of the result, as a
    client does: ADDTO/REMOVEFROM, and EXPUNGE renumbering (sequence
    numbers; an expunged message must have left the result first)."""
    for line in lines:
        if (update := ESEARCH.match(line)) is not None:
            assert bool(update.group(1)) == uid, line
            changed = numbers(update.group(3))
            if update.group(2) == b"ADDTO":
                assert not changed & result, line
                result |= changed
            else:
                assert changed <= result, line
                result -= changed
        elif (gone := EXPUNGE.match(line)) is not None and not uid:
            seq = int(gone.group(1))
            assert seq not in result, line
            moved = {n - 1 if n > seq else n for n in result}
            result.clear()
            result |= moved


def search_now(client: Client, criteria: str, uid: bool) -> set[int]:
    lines = client.ok(f"q {'UID ' if uid else ''}SEARCH {criteria}")
    assert len(lines) == 2, lines  # nothing changed since the last command
    return {int(n) for n in lines[0].split()[2:]}


def writer_step(writer: Client, op: tuple[Any, ...]) -> None:
    present = [int(n) for n in writer.ok("u UID SEARCH ALL")[0].split()[2:]]
    if op[0] == "append":
        body = "hello" if op[2] else "bye"
        writer.ok(f"a APPEND INBOX ({op[1]}) {{{len(body)}+}}\r\n{body}")
    elif op[0] == "store" and present:
        writer.ok(f"s UID STORE {present[op[1] % len(present)]} {op[2]}FLAGS.SILENT ({op[3]})")
    elif op[0] == "expunge" and present:
        writer.ok(f"d UID STORE {present[op[1] % len(present)]} +FLAGS.SILENT (\\Deleted)")
        writer.ok("x EXPUNGE")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 8), st.sampled_from(CRITERIA), st.booleans(), operations, operations)
def test_updates_keep_the_result_equal_to_a_fresh_search(
    count: int, criteria: str, uid: bool, own: list[tuple[Any, ...]], others: list[tuple[Any, ...]],
) -> None:
    """Both sessions change the mailbox (the watcher through its own STOREs,
    EXPUNGEs and APPENDs too); after each of the watcher's commands its
    copy of the result, kept only from the updates, equals a new SEARCH."""
    with tempfile.TemporaryDirectory() as tmp:
        server = MailServer(Path(tmp))
        try:
            server.append_many("INBOX", [message(n) + b"hello\r\n" * (n % 2) for n in range(count)],
                               [[FLAGS[n % 3]] for n in range(count)])
            watcher = server.connect("alice")
            watcher.ok("s SELECT INBOX")
            writer = other(server)
            first = watcher.ok(f"live {'UID ' if uid else ''}SEARCH RETURN (UPDATE ALL) {criteria}")
            match = re.search(rb" ALL ([0-9:,]+)$", first[0])
            result = numbers(match.group(1)) if match else set()
            for index in range(max(len(own), len(others))):
                if index < len(others):
                    writer_step(writer, others[index])
                if index < len(own):
                    op = own[index]
                    lines = (watcher.ok("n NOOP") if op[0] == "noop" else
                             _own_step(watcher, op))
                else:
                    lines = watcher.ok("n NOOP")
                # Compared once no expunge is held back (a SEARCH does not
                # see a message whose EXPUNGE the client has not heard yet).
                follow(result, lines + watcher.ok("n NOOP"), uid)
                assert result == search_now(watcher, criteria, uid)
        finally:
            server.close()


def _own_step(watcher: Client, op: tuple[Any, ...]) -> list[bytes]:
    """One of the watcher's own changes by sequence number; its output."""
    lines = watcher.ok("c NOOP")  # the other's changes, expunges included
    exists = watcher.session.selected.exists
    if op[0] == "append":
        lines += watcher.ok(f"a APPEND INBOX ({op[1]}) {{5+}}\r\nhello")
        return lines + watcher.ok("n NOOP")
    if not exists:
        return lines + watcher.ok("n NOOP")
    seq = op[1] % exists + 1
    if op[0] == "store":
        return lines + watcher.ok(f"s STORE {seq} {op[2]}FLAGS.SILENT ({op[3]})")
    lines += watcher.ok(f"d STORE {seq} +FLAGS.SILENT (\\Deleted)")
    return lines + watcher.ok("x EXPUNGE")


def test_updates_are_pushed_during_idle(server: MailServer, five: Client) -> None:
    """While the client idles (RFC 2177), each change is pushed with the
    contexts' updates: REMOVEFROM before the EXPUNGE, ADDTO after EXISTS."""
    five.ok("a SEARCH RETURN (UPDATE) SEEN")
    five.transcript("""
        C: i IDLE
        S: + idling
    """)
    writer = other(server)
    writer.ok("x STORE 1 +FLAGS.SILENT (\\Seen)")
    five.transcript("""
        S: * ESEARCH (TAG "a") ADDTO (0 1)
        S: * 1 FETCH (FLAGS (\\Seen \\Recent))
    """)
    writer.ok("y STORE 2 +FLAGS.SILENT (\\Deleted)")
    writer.ok("z EXPUNGE")
    server.append("INBOX", message(6), ["\\Seen"])
    five.transcript("""
        S: * 2 FETCH (FLAGS (\\Deleted \\Seen \\Recent))
        S: * ESEARCH (TAG "a") REMOVEFROM (0 2)
        S: * 2 EXPUNGE
        S: * 4 RECENT
        S: * 5 EXISTS
        S: * 5 RECENT
        S: * ESEARCH (TAG "a") ADDTO (0 5)
        C: DONE
        S: i OK IDLE terminated
    """)

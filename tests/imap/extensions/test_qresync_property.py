"""Property: whatever another session does while a QRESYNC client is away
(flag changes, expunges, UID EXPUNGE, MOVE away, APPEND), one
``SELECT ... (QRESYNC (...))`` — with or without the known UIDs — brings
the client's cache exactly to the store's state, and it is told only about
what changed (never a full listing)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.imap.commands.harness import Client, MailServer, message

FETCH = re.compile(rb"^\* \d+ FETCH \((.*)\)$")
UID_ITEM = re.compile(rb"\bUID (\d+)")
FLAGS_ITEM = re.compile(rb"\bFLAGS \(([^)]*)\)")
FLAG_CHOICES = ["\\Seen", "\\Flagged", "\\Answered", "$Work"]

ops = st.lists(st.one_of(
    st.tuples(st.just("store"), st.integers(0, 30), st.sampled_from(["+", "-"]),
              st.sampled_from(FLAG_CHOICES)),
    st.tuples(st.just("expunge"), st.lists(st.integers(0, 30), min_size=1, max_size=3)),
    st.tuples(st.just("uid-expunge"), st.integers(0, 30)),
    st.tuples(st.just("move"), st.integers(0, 30)),
    st.tuples(st.just("append"), st.sampled_from(FLAG_CHOICES)),
), max_size=10)


def uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids


def apply(cache: dict[int, frozenset[bytes]], lines: list[bytes]) -> tuple[set[int], int]:
    """Apply the resync answer; (UIDs reported vanished, FETCH count)."""
    vanished: set[int] = set()
    fetches = 0
    for line in lines:
        if line.startswith(b"* VANISHED (EARLIER) "):
            vanished.update(uid_set(line.split()[-1]))
        elif (found := FETCH.match(line)) is not None:
            uid, flags = UID_ITEM.search(found.group(1)), FLAGS_ITEM.search(found.group(1))
            assert uid is not None and flags is not None, line
            cache[int(uid.group(1))] = frozenset(flags.group(1).split()) - {b"\\Recent"}
            fetches += 1
    for gone in vanished:
        cache.pop(gone, None)
    return vanished, fetches


def store_state(server: MailServer) -> dict[int, frozenset[bytes]]:
    return {r.uid: frozenset(f.encode() for f in r.flags) for r, _ in server.read_messages("INBOX")}


def run_ops(writer: Client, operations: list[tuple[Any, ...]]) -> set[int]:
    """Apply the operations by UID (indexes pick among the UIDs present);
    returns the UIDs that were touched (changed, removed or added)."""
    touched: set[int] = set()
    for op in operations:
        present = [int(uid) for uid in writer.ok("u UID SEARCH ALL")[0].split()[2:]]
        kind = op[0]
        if kind == "append":
            out = writer.ok(f"a APPEND INBOX ({op[1]}) {{3+}}\r\nnew")
            appended = re.search(rb"APPENDUID \d+ (\d+)", out[-1])
            assert appended is not None
            touched.add(int(appended.group(1)))
            continue
        if not present:
            continue
        if kind == "store":
            uid = present[int(op[1]) % len(present)]
            writer.ok(f"s UID STORE {uid} {op[2]}FLAGS.SILENT ({op[3]})")
            touched.add(uid)
        elif kind == "expunge":
            uids = {present[int(i) % len(present)] for i in op[1]}
            writer.ok(f"d UID STORE {','.join(map(str, sorted(uids)))} +FLAGS.SILENT (\\Deleted)")
            writer.ok("x EXPUNGE")
            touched |= uids
        elif kind == "uid-expunge":
            uid = present[int(op[1]) % len(present)]
            writer.ok(f"d UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
            writer.ok(f"x UID EXPUNGE {uid}")
            touched.add(uid)
        elif kind == "move":
            uid = present[int(op[1]) % len(present)]
            writer.ok(f"m UID MOVE {uid} Elsewhere")
            touched.add(uid)
    return touched


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 12), st.lists(st.sampled_from(FLAG_CHOICES), max_size=12), ops, st.booleans())
def test_qresync_resync_reaches_the_store_state(
    count: int, initial_flags: list[str], operations: list[tuple[Any, ...]], send_known: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = MailServer(Path(tmp))
        try:
            server.create("Elsewhere")
            flags = [[initial_flags[i]] if i < len(initial_flags) else [] for i in range(count)]
            server.append_many("INBOX", [message(n) for n in range(count)], flags)
            device = server.connect("alice")
            device.ok("e ENABLE QRESYNC")
            selected = device.ok("s SELECT INBOX")
            modseq = int(next(l for l in selected if b"HIGHESTMODSEQ" in l).split()[3].rstrip(b"]"))
            cache = store_state(server)
            device.disconnect()

            writer = server.connect("alice")
            writer.ok("w SELECT INBOX")
            touched = run_ops(writer, operations)
            writer.disconnect()

            device = server.connect("alice")
            device.ok("e ENABLE QRESYNC")
            known = ""
            if send_known and cache:
                known = " " + ",".join(str(uid) for uid in sorted(cache))
            uidvalidity = server.uidvalidity("INBOX")
            lines = device.ok(f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq}{known}))")
            before = set(cache)
            vanished, fetches = apply(cache, lines)
            if known:  # the new messages lie above the known UIDs
                apply(cache, device.ok(f"n UID FETCH {max(before) + 1}:* (FLAGS)"))
            assert cache == store_state(server)
            assert vanished <= touched
            assert fetches <= len(touched)
        finally:
            server.close()

"""Durability of the threaded ``SqliteBackend``: a process killed with
SIGKILL in the middle of a load of concurrent (group-committed) APPENDs,
STOREs and EXPUNGEs loses no change it acknowledged and is not corrupted
(issue 3 "Durability", issue 12 group commit).

After the kill the parent reopens the data directory and requires the state
to be exactly the acknowledged operations, plus any subset of the APPENDs in
flight (several may share a commit) or the one STORE/EXPUNGE in flight.
Three kill/restart rounds run on the same directory, so recovery of a killed
store is itself tested under load.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from imapd.core.model import DELETED
from imapd.mail.flags import FlagOp
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_durability_child import body
from tests.storage.sqlite.backend_helpers import USER, inline, run

REPO = Path(__file__).resolve().parents[3]
State = dict[int, tuple[frozenset[str], bytes]]


@dataclass
class Round:
    state: State                       # after every acknowledged op
    inflight_appends: list[bytes] = field(default_factory=list)
    inflight_other: list[str] | None = None  # a STORE/EXPUNGE in flight


def run_child_until_killed(data_dir: Path, seed: int, acks: int) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.sqlite.backend_durability_child",
         str(data_dir), str(seed)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    lines: list[str] = []
    seen = 0
    for line in child.stdout:
        lines.append(line.rstrip("\n"))
        seen += line.startswith("K")
        if seen >= acks:
            break
    child.send_signal(signal.SIGKILL)
    lines.extend(line.rstrip("\n") for line in child.stdout.read().splitlines())
    child.wait()
    assert lines[0] == "READY", lines[:3]
    return lines[1:]


def store(state: State, words: list[str]) -> State:
    uid, mode, given = int(words[0]), FlagOp[words[1]], frozenset(words[2:])
    if uid not in state:
        return state
    flags, raw = state[uid]
    new = {FlagOp.REPLACE: given, FlagOp.ADD: flags | given, FlagOp.REMOVE: flags - given}[mode]
    return {**state, uid: (new, raw)}


def expunge(state: State) -> State:
    return {u: v for u, v in state.items() if DELETED not in v[0]}


def replay(state: State, seed: int, lines: list[str]) -> Round:
    """Apply the acknowledged operations; note what was in flight."""
    state = dict(state)
    appends: dict[int, bytes] = {}  # counter -> body, intent without ack yet
    other: list[str] | None = None
    for line in lines:
        kind, *words = line.split()
        if kind == "I" and words[0] == "A":
            appends[int(words[2])] = body(int(words[2]), seed)
        elif kind == "I":
            other = words
        elif words[0] == "A":
            raw = appends.pop(int(words[1]))
            uid = int(words[2])
            assert uid not in state
            state[uid] = (frozenset(), raw)
        elif words[0] == "S":
            assert other is not None
            state, other = store(state, other[1:]), None
        else:
            gone = {int(u) for u in words[1:]}
            assert gone == {u for u, (f, _) in state.items() if DELETED in f}
            state, other = expunge(state), None
    return Round(state, list(appends.values()), other)


def read_state(data_dir: Path) -> tuple[State, int]:
    backend = inline(data_dir)
    entry = run(backend.lookup(USER, "INBOX"))
    assert entry is not None
    state: State = {}
    for record in run(backend.fetch_records(entry.ref)):
        raw = run(backend.read_message(entry.ref, record.uid))
        assert raw is not None
        state[record.uid] = (frozenset(record.flags), raw)
    uidnext = run(backend.status(entry.ref)).uidnext
    run(backend.close())
    return state, uidnext


def explained(expected: Round, actual: State) -> bool:
    """``actual`` is the acknowledged state plus some in-flight appends, or
    plus the effect of the one in-flight STORE/EXPUNGE."""
    if expected.inflight_other is not None:
        words = expected.inflight_other
        after = store(expected.state, words[1:]) if words[0] == "S" else expunge(expected.state)
        return actual in (expected.state, after)
    extra = {u: v for u, v in actual.items() if u not in expected.state}
    kept = {u: v for u, v in actual.items() if u in expected.state}
    pool = list(expected.inflight_appends)
    for flags, raw in extra.values():
        if flags or raw not in pool:
            return False
        pool.remove(raw)
    return kept == expected.state


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state: State = {}
    highest_uid = 0
    for seed, acks in ((11, 150), (22, 300), (33, 450)):
        lines = run_child_until_killed(data_dir, seed, acks)
        expected = replay(state, seed, lines)
        with sqlite3.connect(data_dir / DB_FILENAME) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        actual, uidnext = read_state(data_dir)
        assert explained(expected, actual), "acknowledged change lost"
        state = actual
        highest_uid = max([highest_uid, *state])
        assert uidnext > highest_uid

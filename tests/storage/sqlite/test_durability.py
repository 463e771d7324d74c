"""Durability: a store process killed with SIGKILL in the middle of a load
loses no change it acknowledged and is not corrupted (issue 3, "Durability").

The child (durability_child.py) prints an intent line before each operation
and an acknowledgement after the store call returned. After the kill the
parent reopens the data directory and requires the state to be exactly the
acknowledged operations, plus at most the one operation in flight (which may
or may not have committed). Three kill/restart rounds run on the same
directory, so recovery of a killed store is itself tested under load.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from imapd.mail.flags import FlagOp
from imapd.storage.sqlite.schema import DB_FILENAME
from imapd.storage.sqlite.store import open_store
from imapd.core.model import DELETED
from tests.storage.sqlite.durability_child import USER, body
from tests.storage.sqlite.helpers import run

REPO = Path(__file__).resolve().parents[2]
State = dict[int, tuple[frozenset[str], bytes]]


@dataclass
class Op:
    words: list[str]
    result: list[str] | None = None  # None: in flight when killed


def run_child_until_killed(data_dir: Path, seed: int, acks: int) -> list[Op]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.sqlite.durability_child", str(data_dir), str(seed)],
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
    ops: list[Op] = []
    for line in lines[1:]:
        kind, *words = line.split()
        if kind == "I":
            ops.append(Op(words))
        elif kind == "K":
            ops[-1].result = words
    return ops


def apply(state: State, op: Op, result: list[str]) -> State:
    state = dict(state)
    kind, *args = op.words
    if kind == "A":
        uid = int(result[0])
        assert uid > max(state, default=0)
        state[uid] = (frozenset(), body(int(args[1]), int(args[0])))
    elif kind == "S":
        uid, mode, given = int(args[0]), FlagOp[args[1]], frozenset(args[2:])
        if uid in state:
            flags, raw = state[uid]
            new = {FlagOp.REPLACE: given, FlagOp.ADD: flags | given, FlagOp.REMOVE: flags - given}[mode]
            state[uid] = (new, raw)
    else:
        gone = {int(u) for u in result}
        assert gone == {u for u, (f, _) in state.items() if DELETED in f}
        for uid in gone:
            del state[uid]
    return state


def read_state(data_dir: Path) -> tuple[State, int]:
    store = open_store(data_dir)
    selection = run(store.select(USER, "INBOX", readonly=True))
    state: State = {}
    for record in run(store.fetch_records(selection)):
        raw = run(store.read_message(selection, record.uid))
        assert raw is not None
        state[record.uid] = (frozenset(record.flags), raw)
    uidnext = run(store.status(USER, "INBOX")).uidnext
    run(store.close())
    return state, uidnext


def possible_states(state: State, inflight: Op | None, actual: State) -> list[State]:
    if inflight is None:
        return [state]
    if inflight.words[0] == "A":
        new = [u for u in actual if u not in state]
        return [state] + ([apply(state, inflight, [str(new[0])])] if len(new) == 1 else [])
    if inflight.words[0] == "X":
        deleted = [str(u) for u, (f, _) in state.items() if DELETED in f]
        return [state, apply(state, inflight, deleted)]
    return [state, apply(state, inflight, [])]


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state: State = {}
    highest_uid = 0
    for seed, acks in ((11, 120), (22, 250), (33, 400)):
        ops = run_child_until_killed(data_dir, seed, acks)
        acknowledged = [op for op in ops if op.result is not None]
        assert len(acknowledged) >= acks
        inflight = ops[-1] if ops and ops[-1].result is None else None
        for op in acknowledged:
            assert op.result is not None
            state = apply(state, op, op.result)
        with sqlite3.connect(data_dir / DB_FILENAME) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        actual, uidnext = read_state(data_dir)
        assert actual in possible_states(state, inflight, actual), "acknowledged change lost"
        state = actual
        highest_uid = max([highest_uid, *state])
        assert uidnext > highest_uid

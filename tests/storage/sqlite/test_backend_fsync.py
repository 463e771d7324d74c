"""Durability by behaviour for ``SqliteBackend``, in both modes: every
mutating call has written its commit to the WAL and fsynced it before it
returns (WAL with ``synchronous=FULL``, schema.py), and in threaded mode
no write or fsync of the store's files ever happens on the reactor thread
(issue 12: nothing that blocks runs on the caller's thread).

The child (backend_fsync_child.py) runs each call between two marker fsyncs
under ``strace -f``; the kernel's record of system calls, with the thread id
of each, must show inside every window the WAL written and then synced,
and, threaded, none of it by the thread the calls were made on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from imapd.storage.sqlite.schema import DB_FILENAME
from tests.support.pinned_skips import Pin, require_tool

MISSING = "strace (Debian package strace) is not installed; .ci/run installs it"
PINNED_SKIPS = (Pin.exact(MISSING, "the fsync test observes system calls with strace", in_ci=False),)

REPO = Path(__file__).resolve().parents[3]
CHILD_TIMEOUT_SECONDS = 300
SYNCS = ("fsync", "fdatasync")
WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2")
# ``TID name(FD</path>, ...`` as printed by ``strace -f -y``.
SYSCALL = re.compile(r"^(?P<tid>\d+)\s+(?P<name>\w+)\(\d+<(?P<path>[^>]*)>")
OPERATIONS = [
    "create", "append", "append2", "store", "copy", "move", "expunge",
    "subscribe", "rename", "delete",
]
MODES = ["inline", "threaded"]


@dataclass
class Window:
    operation: str
    calls: list[tuple[int, str, str]]  # (thread id, syscall, file name)


@dataclass
class Traced:
    mode: str
    caller: int  # kernel thread id the backend calls were made on
    windows: list[Window]
    all_calls: list[tuple[int, str, str]]  # every call on the store's files


def trace_child(tmp_path: Path, mode: str) -> Traced:
    strace = require_tool(shutil.which("strace"), MISSING)
    data_dir, mark_dir, log = tmp_path / "data", tmp_path / "marks", tmp_path / "trace"
    mark_dir.mkdir()
    command = [
        strace, "-f", "-qq", "-y", "-e", "signal=none", "-o", str(log),
        "-e", "trace=" + ",".join(SYNCS + WRITES),
        sys.executable, "-m", "tests.storage.sqlite.backend_fsync_child",
        str(data_dir), str(mark_dir), mode,
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[-1:] == ["DONE"], (done.stdout, done.stderr)
    caller = int(lines[0].split()[1])
    calls: list[tuple[int, str, str]] = []
    for line in log.read_text().splitlines():
        match = SYSCALL.match(line)
        if match:
            calls.append((int(match["tid"]), match["name"], match["path"]))
    return split(mode, caller, calls)


def split(mode: str, caller: int, calls: list[tuple[int, str, str]]) -> Traced:
    """Split the trace at the marker fsyncs; keep calls on the store's files."""
    found: list[Window] = []
    store_calls: list[tuple[int, str, str]] = []
    current: Window | None = None
    for tid, name, path in calls:
        file_name = os.path.basename(path)
        marker = re.fullmatch(r"mark-\d+-(\w+)-(begin|end)", file_name)
        if marker and name in SYNCS:
            if marker[2] == "begin":
                current = Window(marker[1], [])
            else:
                assert current is not None and current.operation == marker[1]
                found.append(current)
                current = None
        elif file_name.startswith(DB_FILENAME):
            store_calls.append((tid, name, file_name))
            if current is not None:
                current.calls.append((tid, name, file_name))
    return Traced(mode, caller, found, store_calls)


@pytest.fixture(scope="module", params=MODES)
def traced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Traced:
    return trace_child(tmp_path_factory.mktemp("fsync"), str(request.param))


def test_every_operation_ran_inside_its_window(traced: Traced) -> None:
    assert [w.operation for w in traced.windows] == OPERATIONS


@pytest.mark.parametrize("operation", OPERATIONS)
def test_commit_is_written_then_fsynced_before_the_call_returns(
    traced: Traced, operation: str
) -> None:
    """RFC 3501 §6.3-§6.4: a tagged OK promises the change happened."""
    window = next(w for w in traced.windows if w.operation == operation)
    wal = DB_FILENAME + "-wal"
    on_wal = [name for _, name, file_name in window.calls if file_name == wal]
    assert any(name in WRITES for name in on_wal), (operation, window.calls)
    last_write = max(i for i, name in enumerate(on_wal) if name in WRITES)
    assert any(name in SYNCS for name in on_wal[last_write + 1:]), (
        f"{operation}: the WAL was not fsynced after the commit was written", window.calls)


def test_fsyncs_run_on_the_writer_thread_only_when_threaded(traced: Traced) -> None:
    """Threaded: no write or fsync of the store's files on the thread the
    calls were made on (the reactor's); all of them on another (the
    writer). Inline: by design, on the caller's thread."""
    syncs = [c for c in traced.all_calls if c[1] in SYNCS]
    on_caller = [c for c in traced.all_calls if c[0] == traced.caller]
    assert syncs
    if traced.mode == "threaded":
        assert on_caller == [], on_caller[:10]
    else:
        assert {tid for tid, _, _ in syncs} == {traced.caller}

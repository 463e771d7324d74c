"""The process test_backend_fsync.py runs under strace.

Runs each mutating ``SqliteBackend`` call once, in the mode given (inline or
threaded: a real reactor in a thread, the backend's writer thread doing the
commits). Around each call the main thread fsyncs a marker file named
``mark-<n>-<op>-begin`` / ``-end``: ``-end`` only after the call returned,
so the trace shows which fsyncs happened *during* the call. Prints the
kernel thread id of the thread the calls ran on (the reactor's, or the main
thread inline), then ``DONE``.

Usage: python -m tests.storage.sqlite.backend_fsync_child DATA_DIR MARK_DIR MODE
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable

from imapd.mail.backend import AddMailbox, MailboxRef, RemoveMailbox, RenameMailbox
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.storage.sqlite import SqliteBackend, fts
from tests.storage.sqlite.backend_helpers import USER, call, inline, run, threaded

MESSAGE = b"Subject: durable\r\n\r\nbody\r\n"


def mark(mark_dir: Path, name: str) -> None:
    fd = os.open(mark_dir / name, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def steps(b: SqliteBackend, ref: MailboxRef) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    async def copy(move: bool) -> object:
        work = await b.lookup(USER, "Work")
        assert work is not None
        return await b.copy(ref, [2], work.ref, move=move)

    return [
        ("create", lambda: b.edit_tree(USER, lambda rows: [AddMailbox("Work")])),
        ("append", lambda: b.append(ref, [AppendItem(MESSAGE)])),
        ("append2", lambda: b.append(ref, [AppendItem(MESSAGE, ("$Kw",))], claim=True)),
        ("store", lambda: b.store_flags(ref, [1], FlagOp.ADD, ["\\Deleted"])),
        ("copy", lambda: copy(False)),
        ("move", lambda: copy(True)),
        ("expunge", lambda: b.expunge(ref)),
        ("subscribe", lambda: b.set_subscribed(USER, "Work", True)),
        ("rename", lambda: b.edit_tree(USER, lambda rows: [RenameMailbox("Work", "Play")])),
        ("delete", lambda: b.edit_tree(USER, lambda rows: [RemoveMailbox("Play")])),
    ]


def main(data_dir: Path, mark_dir: Path, mode: str) -> None:
    # The writer's idle purge of expunged bodies' index rows (fts.purge_gone)
    # is garbage collection after the acknowledgment, not part of any call:
    # left on, its writes would land in whichever window is open when the
    # writer goes idle (CI saw them in the expunge's, after its fsync). It is
    # tested on its own (test_fts_gone.py).
    fts.purge_gone = lambda conn: 0  # type: ignore[assignment]
    backend = threaded(data_dir) if mode == "threaded" else inline(data_dir)
    drive: Callable[[Callable[[], Awaitable[Any]]], Any] = (
        call if mode == "threaded" else (lambda fn: run(fn())))  # type: ignore[arg-type]

    async def setup() -> tuple[MailboxRef, int]:
        await backend.ensure_user(USER)
        entry = await backend.lookup(USER, "INBOX")
        assert entry is not None
        return entry.ref, threading.get_native_id()

    ref, caller_tid = drive(setup)
    for number, (name, fn) in enumerate(steps(backend, ref)):
        mark(mark_dir, f"mark-{number}-{name}-begin")
        drive(fn)
        mark(mark_dir, f"mark-{number}-{name}-end")
    drive(backend.close)
    print(f"CALLER {caller_tid}", flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])

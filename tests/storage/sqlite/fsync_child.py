"""The process test_fsync.py runs under strace.

Runs each mutating store operation once. Around each call it fsyncs a
marker file named ``mark-<n>-<op>-begin`` / ``-end``, so the trace shows
which fsync/fdatasync calls the store made *during* that call: the marker
``-end`` is fsynced only after the store call returned.

Usage: python -m tests.storage.sqlite.fsync_child DATA_DIR MARK_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Coroutine

from imapd.mail.flags import FlagOp
from imapd.storage.sqlite.store import open_store
from tests.storage.sqlite.helpers import run

USER = "alice"


def mark(mark_dir: Path, name: str) -> None:
    fd = os.open(mark_dir / name, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main(data_dir: Path, mark_dir: Path) -> None:
    store = open_store(data_dir)
    selection = run(store.select(USER, "INBOX", readonly=False))
    message = b"Subject: durable\r\n\r\nbody\r\n"
    # Each entry: a name for the trace and one store call that commits.
    steps: list[tuple[str, Callable[[], Coroutine[Any, Any, object]]]] = [
        ("create", lambda: store.create_mailbox(USER, "Work")),
        ("append", lambda: store.append(USER, "INBOX", message)),
        ("append2", lambda: store.append(USER, "INBOX", message, flags=["$Kw"])),
        ("store", lambda: store.store_flags(selection, [1], FlagOp.ADD, ["\\Deleted"])),
        ("copy", lambda: store.copy(selection, [2], "Work")),
        ("move", lambda: store.move(selection, [2], "Work")),
        ("expunge", lambda: store.expunge(selection)),
        ("subscribe", lambda: store.subscribe(USER, "Work")),
        ("rename", lambda: store.rename_mailbox(USER, "Work", "Play")),
        ("delete", lambda: store.delete_mailbox(USER, "Play")),
    ]
    for number, (name, call) in enumerate(steps):
        run(store.poll_changes())  # deliver earlier changes outside the window
        mark(mark_dir, f"mark-{number}-{name}-begin")
        run(call())
        mark(mark_dir, f"mark-{number}-{name}-end")
    print("DONE", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

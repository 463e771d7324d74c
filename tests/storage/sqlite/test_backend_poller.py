"""Changes committed by another process ring this process's subscribers
(``MailBackend`` doorbells: "within a short, bounded delay"), on the
reactor thread, found by the ``PRAGMA data_version`` poller; and an idle
store rings nobody."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from imapd.mail.backend import AddMailbox
from imapd.mail.records import AppendItem
from tests.storage.sqlite.backend_helpers import USER, WAIT, call, inbox, inline, run, threaded
from tests.support.reactor_thread import reactor_thread

REPO = Path(__file__).resolve().parents[3]


def other_process(data_dir: Path, op: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.storage.sqlite.backend_change_child", str(data_dir), op],
        cwd=REPO, capture_output=True, text=True, timeout=WAIT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0 and done.stdout == "DONE\n", done.stderr


async def reactor_turn() -> None:
    return None


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` (no timing is asserted; WAIT only bounds a hang)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Bell:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rings: list[tuple[int, int, str]] = []

    def __call__(self, mailbox_id: int, modseq: int) -> None:
        with self.cond:
            self.rings.append((mailbox_id, modseq, threading.current_thread().name))
            self.cond.notify_all()

    def wait_for(self, count: int) -> list[tuple[int, int, str]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.rings) >= count, WAIT), self.rings
            return list(self.rings)


def test_other_processes_changes_ring_through_the_poller(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    backend = threaded(data_dir, poll_interval=0.01)
    try:
        ref = inbox(backend)
        call(lambda: backend.edit_tree(USER, lambda rows: [AddMailbox("Work")]))
        work = call(lambda: backend.lookup(USER, "Work"))
        assert work is not None and backend.poller is not None
        inbox_bell, work_bell = Bell(), Bell()

        async def subscribe() -> None:
            backend.feed.subscribe(ref.id, inbox_bell)
            backend.feed.subscribe(work.id, work_bell)

        call(subscribe)
        # Let the poller learn the subscriptions' current state first.
        polls = backend.poller.polls
        other_process(data_dir, "rename")  # a tree change: Work -> Play
        (ring,) = work_bell.wait_for(1)[-1:]
        assert ring[0] == work.id and ring[2] == reactor_thread().name
        inbox_rings = len(inbox_bell.rings)
        other_process(data_dir, "append")
        rings = inbox_bell.wait_for(inbox_rings + 1)
        status = call(lambda: backend.status(ref))
        assert rings[-1] == (ref.id, status.highestmodseq, reactor_thread().name)
        # Idle: many more polls, no further ring for an unchanged mailbox.
        seen = len(inbox_bell.rings)
        polls = backend.poller.polls
        poller = backend.poller
        assert wait_until(lambda: poller.polls > polls + 20)
        call(reactor_turn)  # rings those polls hopped over have run (FIFO)
        assert len(inbox_bell.rings) == seen
        # A mailbox removed elsewhere rings its subscribers too.
        work_rings = len(work_bell.rings)
        other_process(data_dir, "remove")
        assert work_bell.wait_for(work_rings + 1)[-1][:2] == (work.id, 0)
    finally:
        call(backend.close)


def test_inline_poll_now_rings_for_other_processes(tmp_path: Path) -> None:
    """Inline mode has no poller thread: ``poll_now`` looks, synchronously."""
    data_dir = tmp_path / "data"
    backend = inline(data_dir)
    try:
        run(backend.ensure_user(USER))
        run(backend.edit_tree(USER, lambda rows: [AddMailbox("Work")]))
        entry = run(backend.lookup(USER, "INBOX"))
        assert entry is not None
        rung: list[tuple[int, int]] = []
        backend.feed.subscribe(entry.id, lambda box, modseq: rung.append((box, modseq)))
        backend.poll_now()  # learns the current state (may ring once)
        rung.clear()
        backend.poll_now()
        assert rung == []  # nothing changed
        other_process(data_dir, "append")
        assert rung == []  # nothing rings by itself inline
        backend.poll_now()
        assert rung == [(entry.id, run(backend.status(entry.ref)).highestmodseq)]
        backend.poll_now()
        assert len(rung) == 1
    finally:
        run(backend.close())


def test_own_changes_are_not_rung_again_by_the_poller(tmp_path: Path) -> None:
    """The writer rings its commits itself; the poller, which sees them as
    a data_version change like any other, must not ring them a second time
    (every ring costs each watching session a catch-up)."""
    backend = threaded(tmp_path / "data", poll_interval=0.01)
    try:
        ref = inbox(backend)
        bell = Bell()

        async def subscribe() -> None:
            backend.feed.subscribe(ref.id, bell)

        call(subscribe)
        poller = backend.poller
        assert poller is not None
        call(lambda: backend.append(ref, [AppendItem(b"learn\r\n")]))
        polls = poller.polls
        assert wait_until(lambda: poller.polls > polls + 20)  # the poller has looked
        call(reactor_turn)
        before = len(bell.rings)
        result = call(lambda: backend.append(ref, [AppendItem(b"again\r\n")]))
        assert len(bell.rings) == before + 1  # rung once, before append returned
        polls = poller.polls
        assert wait_until(lambda: poller.polls > polls + 20)
        call(reactor_turn)
        assert len(bell.rings) == before + 1, bell.rings[before:]
        assert result.uid == 2
    finally:
        call(backend.close)

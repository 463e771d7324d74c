"""Helpers for the ``SqliteBackend`` tests: both modes, and a real reactor.

Inline mode (``hop=None``) never awaits anything external, so ``run`` drives
its coroutines with one ``send``. Threaded mode needs a turning reactor:
``threaded`` opens one with ``reactor_hop`` and ``Deferred`` waiters, and
``call`` runs a backend coroutine on the reactor thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred

from imapd.mail.backend import MailboxRef
from imapd.storage.sqlite import SqliteBackend, open_backend
from imapd.storage.sqlite.writer import ThreadedWriter
from tests.support.reactor_thread import on_reactor, reactor, reactor_hop
from tests.support.inline import run_inline as run

T = TypeVar("T")
USER = "alice"
WAIT = 60.0  # generous: only reached when something is broken

__all__ = ["run", "inline", "threaded", "call", "inbox", "Pending", "start", "writer_of"]




def inline(data_dir: Path) -> SqliteBackend:
    return open_backend(data_dir)


def threaded(data_dir: Path, **kwargs: Any) -> SqliteBackend:
    return open_backend(data_dir, hop=reactor_hop(), make_waiter=Deferred, **kwargs)


def call(fn: Callable[[], Awaitable[T]]) -> T:
    return on_reactor(fn, timeout=WAIT)


def inbox(backend: SqliteBackend, user: str = USER) -> MailboxRef:
    """Make the user and return their INBOX's ref (threaded backends)."""
    async def go() -> MailboxRef:
        await backend.ensure_user(user)
        entry = await backend.lookup(user, "INBOX")
        assert entry is not None
        return entry.ref

    return call(go)


def writer_of(backend: SqliteBackend) -> ThreadedWriter:
    assert isinstance(backend.writer, ThreadedWriter)
    return backend.writer


class Pending:
    """A backend call started on the reactor and not waited for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        assert self.done.wait(WAIT), "the call never finished"
        if self.error is not None:
            raise self.error
        return self.value


def start(*calls: Callable[[], Awaitable[Any]]) -> list[Pending]:
    """Start every call on the reactor in ONE reactor turn (so a threaded
    backend has queued all of them when this returns); do not wait."""
    pendings = [Pending() for _ in calls]
    queued = threading.Event()

    def begin() -> None:
        for fn, pending in zip(calls, pendings):
            async def wrapper(fn: Callable[[], Awaitable[Any]] = fn) -> Any:
                return await fn()

            def ok(value: Any, p: Pending = pending) -> None:
                p.value = value
                p.done.set()

            def failed(failure: Any, p: Pending = pending) -> None:
                p.error = failure.value
                p.done.set()

            ensureDeferred(wrapper()).addCallbacks(ok, failed)
        queued.set()

    reactor().callFromThread(begin)
    assert queued.wait(WAIT)
    return pendings

"""A real Twisted reactor for tests, running in a background thread.

Tests of backends that really await (the SQLite writer thread, the
yielding wrapper) need a reactor that turns. One reactor per test process
runs in a daemon thread for the whole session; ``on_reactor`` runs a
coroutine function on it and blocks the test thread until it finishes.

    result = on_reactor(lambda: backend.append(ref, items))
    hop = reactor_hop()          # threadsafe "run this on the reactor thread"

The thread is the test kit's (``imapd.testing.reactor``), so the suite's
own tests and the ``imapd.testing`` fixtures share one reactor in one
process instead of racing to start two.
"""

from __future__ import annotations

import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from imapd.testing import reactor as kit

T = TypeVar("T")


def reactor() -> Any:
    """The global reactor, started in a daemon thread on first use."""
    return kit.reactor()


def reactor_thread() -> threading.Thread:
    return kit.reactor_thread()


def reactor_hop() -> Callable[[Callable[[], None]], None]:
    """A threadsafe function that runs a callable on the reactor thread."""
    the_reactor = kit.reactor()
    return lambda fn: the_reactor.callFromThread(fn)


def on_reactor(fn: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    """Run ``fn()`` (a coroutine function) on the reactor thread; return its
    result or raise its exception in the calling (test) thread."""
    return kit.call(fn, timeout)


def run_coroutine(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """``on_reactor`` for an already-created coroutine object."""
    return on_reactor(lambda: coro, timeout)

"""A real Twisted reactor for tests, running in a background thread.

Tests of backends that really await (the SQLite writer thread, the
yielding wrapper) need a reactor that turns. One reactor per test process
runs in a daemon thread for the whole session; ``on_reactor`` runs a
coroutine function on it and blocks the test thread until it finishes.

    result = on_reactor(lambda: backend.append(ref, items))
    hop = reactor_hop()          # threadsafe "run this on the reactor thread"
"""

from __future__ import annotations

import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred

T = TypeVar("T")

_started = threading.Lock()
_thread: threading.Thread | None = None


def reactor() -> Any:
    """The global reactor, started in a daemon thread on first use."""
    global _thread
    from twisted.internet import reactor as the_reactor

    with _started:
        if _thread is None:
            _thread = threading.Thread(
                target=the_reactor.run, kwargs={"installSignalHandlers": False},
                name="test-reactor", daemon=True,
            )
            _thread.start()
    return the_reactor


def reactor_thread() -> threading.Thread:
    reactor()
    assert _thread is not None
    return _thread


def reactor_hop() -> Callable[[Callable[[], None]], None]:
    """A threadsafe function that runs a callable on the reactor thread."""
    the_reactor = reactor()
    return lambda fn: the_reactor.callFromThread(fn)


def on_reactor(fn: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    """Run ``fn()`` (a coroutine function) on the reactor thread; return its
    result or raise its exception in the calling (test) thread."""
    the_reactor = reactor()
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def start() -> None:
        async def wrapper() -> T:
            return await fn()

        d: Deferred[T] = ensureDeferred(wrapper())

        def ok(value: T) -> None:
            outcome["value"] = value
            done.set()

        def failed(failure: Any) -> None:
            outcome["error"] = failure.value
            done.set()

        d.addCallbacks(ok, failed)

    the_reactor.callFromThread(start)
    if not done.wait(timeout):
        raise TimeoutError(f"coroutine did not finish on the reactor within {timeout} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def run_coroutine(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """``on_reactor`` for an already-created coroutine object."""
    return on_reactor(lambda: coro, timeout)

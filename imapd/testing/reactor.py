"""The one Twisted reactor of a test process, turning in a daemon thread.

Every ``TestServer`` of a process listens on this reactor: it is started
the first time something needs it (never at import) and never stopped, so
a test session pays the start once and servers start and stop in
milliseconds. The test thread hands work to it with ``call`` (a coroutine
function, awaited on the reactor; its result or exception comes back) or
``call_sync`` (a plain function).

A process whose main thread already runs a Twisted reactor (a Twisted
application's own tests under ``trial`` or ``pytest-twisted``) cannot
use this: there is one reactor per process and it is already someone
else's. Such suites can run ``imapd serve`` in a subprocess instead.
"""

from __future__ import annotations

import threading
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0  # seconds; generous: CI boxes are loaded

_lock = threading.Lock()
_thread: threading.Thread | None = None


class ReactorUnavailable(RuntimeError):
    """The reactor cannot be used from here: it already runs in another
    thread that is not ours, or the caller is on the reactor thread
    itself (waiting there for the reactor would wait forever)."""


def reactor() -> Any:
    """The global reactor, started in a daemon thread on first use."""
    global _thread
    from twisted.internet import reactor as installed

    the_reactor: Any = installed
    with _lock:
        if _thread is None:
            if the_reactor.running:
                raise ReactorUnavailable(
                    "a Twisted reactor already runs in this process; imapd.testing needs its "
                    "own (run 'imapd serve' in a subprocess instead)")
            _thread = threading.Thread(
                target=the_reactor.run, kwargs={"installSignalHandlers": False},
                name="imapd-testing-reactor", daemon=True)
            _thread.start()
    return the_reactor


def reactor_thread() -> threading.Thread:
    """The thread the reactor runs in (started if need be)."""
    reactor()
    assert _thread is not None
    return _thread


def on_reactor_thread() -> bool:
    """True when the caller runs on the reactor thread."""
    return _thread is not None and threading.current_thread() is _thread


def hop(fn: Callable[[], None]) -> None:
    """Run ``fn()`` on the reactor thread soon; safe from any thread."""
    reactor().callFromThread(fn)


def _wait(start: Callable[[Callable[[Any], None], Callable[[BaseException], None]], None],
          timeout: float, what: str) -> Any:
    """Run ``start(ok, failed)`` on the reactor and block until one of the
    two is called; return the value or raise the exception."""
    if on_reactor_thread():
        raise ReactorUnavailable(f"{what} called on the reactor thread would wait forever")
    done = threading.Event()
    outcome: list[tuple[bool, Any]] = []

    def ok(value: Any) -> None:
        outcome.append((True, value))
        done.set()

    def failed(error: BaseException) -> None:
        outcome.append((False, error))
        done.set()

    def begin() -> None:
        try:
            start(ok, failed)
        except BaseException as error:  # reported to the waiting thread, not lost
            failed(error)

    reactor().callFromThread(begin)
    if not done.wait(timeout):
        raise TimeoutError(f"{what} did not finish on the reactor within {timeout} s")
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value


def call(fn: Callable[[], Awaitable[T]], timeout: float = DEFAULT_TIMEOUT) -> T:
    """Run ``await fn()`` on the reactor thread; block the calling thread
    until it finishes and return its result (or raise its exception).
    ``TimeoutError`` after ``timeout`` seconds (the work goes on)."""
    from twisted.internet.defer import Deferred

    def start(ok: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
        async def run() -> T:
            return await fn()

        d: Deferred[T] = Deferred.fromCoroutine(run())
        d.addCallbacks(ok, lambda failure: failed(failure.value))

    result: T = _wait(start, timeout, "imapd.testing.reactor.call")
    return result


def call_sync(fn: Callable[[], T], timeout: float = DEFAULT_TIMEOUT) -> T:
    """Run the plain function ``fn()`` on the reactor thread and return
    its result (or raise its exception) in the calling thread."""
    def start(ok: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
        ok(fn())

    result: T = _wait(start, timeout, "imapd.testing.reactor.call_sync")
    return result

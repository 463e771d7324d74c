"""Time and threads for handlers (``imapd.imap.commands.context.Runtime``) on
Twisted. ``ReactorRuntime`` is the real one; ``InlineRuntime`` runs
"threaded" work inline on a given clock, for deterministic tests."""

from __future__ import annotations

from typing import Any, Callable, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

P = ParamSpec("P")
T = TypeVar("T")

log = Logger(namespace="imapd.runtime")


class Timer(Protocol):
    """A scheduled call (``IDelayedCall``), typed for mypy without the zope
    plugin."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...

    def reset(self, seconds: float) -> None: ...


class Clock(Protocol):
    """The part of ``IReactorTime`` we use; the reactor and ``task.Clock``
    both provide it."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Timer: ...


def global_reactor() -> Any:
    """The installed reactor, imported late so that importing imapd (e.g.
    from the twistd plugin) never installs one."""
    from twisted.internet import reactor

    return reactor


class _NextTurn:
    """``Runtime.call_soon`` on a clock: the calls queued during one turn,
    run by one ``callLater(0)``. A call queued while they run goes to the
    next turn (it may be a ring answered by a commit in progress)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queued: list[Callable[[], None]] = []
        self._timer: Timer | None = None

    def call_soon(self, fn: Callable[[], None]) -> None:
        self._queued.append(fn)
        if self._timer is None:
            self._timer = self._clock.callLater(0, self._run)

    def _run(self) -> None:
        self._timer = None
        queued, self._queued = self._queued, []
        for fn in queued:
            try:
                fn()
            except Exception:
                # One broken callback must not cost the others their turn.
                log.failure("a next-turn call failed")


class DeferredSignal:
    """``Signal`` with Deferreds: ``fire`` resumes the waiters it finds."""

    def __init__(self) -> None:
        self._waiters: list[Deferred[None]] = []

    def wait(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def fire(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)


class ReactorRuntime:
    """Sleeps on ``clock``; runs blocking work in the global reactor's
    thread pool (the reactor the server runs on)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.call_soon = _NextTurn(clock).call_soon

    def sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self.clock, seconds, lambda: None)  # type: ignore[arg-type]

    def signal(self) -> DeferredSignal:
        return DeferredSignal()

    def in_thread(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        return deferToThread(fn, *args, **kwargs)


class InlineRuntime:
    """Sleeps on ``clock`` (e.g. ``task.Clock``); runs work synchronously."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.call_soon = _NextTurn(clock).call_soon

    def sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self.clock, seconds, lambda: None)  # type: ignore[arg-type]

    def signal(self) -> DeferredSignal:
        return DeferredSignal()

    def in_thread(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        try:
            return succeed(fn(*args, **kwargs))
        except Exception:
            return fail()

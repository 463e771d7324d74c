"""Time and threads for handlers (``imapd.imap.commands.context.Runtime``) on
Twisted. ``ReactorRuntime`` is the real one; ``InlineRuntime`` runs
"threaded" work inline on a given clock, for deterministic tests."""

from __future__ import annotations

from typing import Any, Callable, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

P = ParamSpec("P")
T = TypeVar("T")


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


class ReactorRuntime:
    """Sleeps on ``clock``; runs blocking work in the global reactor's
    thread pool (the reactor the server runs on)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self.clock, seconds, lambda: None)  # type: ignore[arg-type]

    def in_thread(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        return deferToThread(fn, *args, **kwargs)


class InlineRuntime:
    """Sleeps on ``clock`` (e.g. ``task.Clock``); runs work synchronously."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self.clock, seconds, lambda: None)  # type: ignore[arg-type]

    def in_thread(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        try:
            return succeed(fn(*args, **kwargs))
        except Exception:
            return fail()

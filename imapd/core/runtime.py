"""Time and threads, as every layer above the network sees them.

``imapd.net.runtime`` implements it on the reactor; tests use an inline
runtime on a ``task.Clock``. Nothing below ``net/`` imports the reactor.
"""

from __future__ import annotations

from typing import Awaitable, Callable, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Signal(Protocol):
    """Wake whoever waits for a condition to be re-checked (no polling)."""

    def wait(self) -> Awaitable[None]:
        """Until the next ``fire``."""
        ...

    def fire(self) -> None:
        """Resume every waiter, now, in the order they began waiting."""
        ...


class Runtime(Protocol):
    """Sleep and run blocking work off the reactor thread."""

    def sleep(self, seconds: float) -> Awaitable[None]: ...

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the next turn, after whatever is running now (e.g.
        a commit that rang a doorbell) has finished. Every call made in one
        turn shares one timer: 10,000 idlers woken by one commit cost one
        scheduled call, not 10,000."""
        ...

    def signal(self) -> Signal:
        """A new ``Signal`` whose waiters this runtime can suspend."""
        ...

    def in_thread(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[T]: ...

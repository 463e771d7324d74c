"""How a storage engine's threads hand results back to the caller's thread.

Engines run blocking work (SQLite commits, PostgreSQL round trips) on their
own threads; the caller (the reactor) awaits a ``Waiter`` that the engine
resolves through ``hop`` on the caller's thread. Storage may not import
``twisted.internet`` (tests/test_layering.py), so the composition root
passes ``reactor.callFromThread`` and ``Deferred``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)

# Runs a callable on the caller's (reactor) thread, from any thread.
Hop = Callable[[Callable[[], None]], None]


class Waiter(Protocol[T_co]):
    """What ``make_waiter()`` returns: awaitable once, resolved from the
    reactor thread by exactly one of ``callback``/``errback``."""

    def __await__(self) -> Any: ...

    def callback(self, result: Any) -> Any: ...

    def errback(self, fail: Any = None) -> Any: ...


MakeWaiter = Callable[[], Waiter[Any]]

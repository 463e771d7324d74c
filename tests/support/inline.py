"""Drive a coroutine that must finish without waiting on anything.

The memory backend, the SQLite backend in inline mode and a MailService
over either never await anything external, so one ``send`` finishes each
call; a call that does wait is a test failure, not a hang.
"""

from __future__ import annotations

from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result after one ``send``, or AssertionError."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the coroutine waited on something external")

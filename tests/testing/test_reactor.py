"""imapd.testing.reactor: one reactor thread; work handed to it and back."""

from __future__ import annotations

import threading

import pytest
from twisted.internet.defer import Deferred

from imapd.testing import reactor as kit


def test_call_runs_on_the_reactor_thread_and_returns_the_result() -> None:
    async def where() -> threading.Thread:
        return threading.current_thread()

    assert kit.call(where) is kit.reactor_thread()
    assert kit.reactor_thread() is not threading.current_thread()


def test_call_raises_the_coroutines_exception_in_the_test_thread() -> None:
    async def fail() -> None:
        raise KeyError("from the reactor")

    with pytest.raises(KeyError, match="from the reactor"):
        kit.call(fail)


def test_call_sync_runs_a_plain_function() -> None:
    assert kit.call_sync(lambda: kit.on_reactor_thread()) is True
    assert kit.on_reactor_thread() is False
    with pytest.raises(ZeroDivisionError):
        kit.call_sync(lambda: 1 // 0)


def test_call_gives_up_after_its_timeout() -> None:
    never: Deferred[None] = Deferred()

    async def wait_forever() -> None:
        await never

    with pytest.raises(TimeoutError, match="within 0.2 s"):
        kit.call(wait_forever, timeout=0.2)
    kit.call_sync(lambda: never.callback(None))  # let it finish


def test_waiting_on_the_reactor_thread_itself_is_refused() -> None:
    async def nested() -> None:
        kit.call_sync(lambda: None)

    with pytest.raises(kit.ReactorUnavailable, match="would wait forever"):
        kit.call(nested)


def test_the_suites_reactor_helper_shares_the_same_thread() -> None:
    from tests.support import reactor_thread

    assert reactor_thread.reactor_thread() is kit.reactor_thread()

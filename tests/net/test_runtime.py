"""``imapd.net.runtime``: time for the layers above the network."""

from __future__ import annotations

from twisted.internet.task import Clock

from imapd.net.runtime import InlineRuntime, ReactorRuntime


def test_calls_queued_in_one_turn_share_one_timer_and_keep_their_order() -> None:
    clock = Clock()
    runtime = ReactorRuntime(clock)
    ran: list[int] = []
    for n in range(1000):
        runtime.call_soon(lambda n=n: ran.append(n))  # type: ignore[misc]
    assert ran == []  # not now: the caller's turn finishes first
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert ran == list(range(1000))
    assert clock.getDelayedCalls() == []


def test_a_call_queued_while_the_turn_runs_waits_for_the_next_turn() -> None:
    clock = Clock()
    runtime = InlineRuntime(clock)
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        runtime.call_soon(lambda: ran.append("later"))
        # Not run inside this turn's loop: a timer of its own.
        assert ran == ["first"]
        assert len(clock.getDelayedCalls()) == 1

    runtime.call_soon(first)
    clock.advance(0)  # task.Clock also runs the timers that come due meanwhile
    assert ran == ["first", "later"]


def test_a_failing_call_does_not_cost_the_others_their_turn() -> None:
    clock = Clock()
    runtime = ReactorRuntime(clock)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    runtime.call_soon(broken)
    runtime.call_soon(lambda: ran.append("after"))
    clock.advance(0)
    assert ran == ["after"]
    runtime.call_soon(lambda: ran.append("again"))
    clock.advance(0)
    assert ran == ["after", "again"]

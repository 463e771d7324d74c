"""The login penalty policy (``imapd.accounts.penalty``, issue 13 item 5),
on a fake clock: a success clears its address (many users share one behind
NAT or a webmail front end), penalties decay after about half a minute
(Dovecot's AUTH_PENALTY_TIMEOUT), other addresses are never touched, and a
user name guessed from many addresses stays penalised."""

from __future__ import annotations

from imapd.accounts.penalty import LoginGuard
from imapd.core.config import Limits

NAT = "198.51.100.7"  # one address, many users (a NAT gateway, a webmail front end)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def guard_with_clock(limits: Limits | None = None) -> tuple[LoginGuard, FakeClock]:
    clock = FakeClock()
    return LoginGuard(limits if limits is not None else Limits(), clock), clock


def test_a_success_from_an_address_clears_that_addresss_penalty() -> None:
    guard, _ = guard_with_clock()
    for _ in range(4):  # carol mistypes her password four times
        guard.record_failure(NAT, "carol")
    assert guard.delay_for(NAT, "bob") == 15.0  # 2, 4, 8, 16 -> capped at 15
    guard.record_success(NAT, "dave")  # somebody else behind the NAT logs in
    # Nobody else behind the address waits any more: the address is cleared.
    assert guard.delay_for(NAT, "bob") == 0.0
    # carol's own name still carries her failures until she succeeds.
    assert guard.delay_for(NAT, "carol") == 15.0
    guard.record_success(NAT, "carol")
    assert guard.delay_for(NAT, "carol") == 0.0


def test_penalties_decay_after_about_half_a_minute_by_default() -> None:
    guard, clock = guard_with_clock()
    for _ in range(4):
        guard.record_failure(NAT, "carol")
    clock.now += 20.0
    assert guard.delay_for(NAT, "bob") == 15.0  # still recent
    assert guard.delay_for("192.0.2.1", "carol") == 15.0
    clock.now += 10.0  # 30 s after the last failure
    assert guard.delay_for(NAT, "bob") == 0.0
    assert guard.delay_for("192.0.2.1", "carol") == 0.0
    assert guard.tracked() == 0  # forgotten, not just ignored


def test_a_new_failure_after_the_decay_starts_again_from_the_first_delay() -> None:
    guard, clock = guard_with_clock()
    for _ in range(4):
        guard.record_failure(NAT, "carol")
    clock.now += 30.0
    guard.record_failure(NAT, "carol")
    assert guard.delay_for(NAT, "carol") == 2.0


def test_another_address_is_unaffected() -> None:
    guard, _ = guard_with_clock()
    for _ in range(4):
        guard.record_failure(NAT, "carol")
    assert guard.delay_for("203.0.113.9", "bob") == 0.0


def test_a_user_guessed_from_many_addresses_stays_penalised() -> None:
    guard, clock = guard_with_clock()
    # An attacker spreads guesses for alice over many addresses and, from
    # each, logs in to its own account to clear the address.
    for index in range(6):
        address = f"203.0.113.{index}"
        guard.record_failure(address, "alice")
        guard.record_success(address, "mallory")
        assert guard.delay_for(address, "mallory") == 0.0
        clock.now += 20.0  # slower than the decay would forgive per address
    # alice's name kept every failure: the next guess, from anywhere, waits.
    assert guard.delay_for("192.0.2.200", "alice") == 15.0
    # ... and alice herself, while the guessing goes on (the price of the
    # per-user penalty, bounded by auth_penalty_max).
    assert guard.delay_for(NAT, "alice") == 15.0


def test_the_window_is_configurable() -> None:
    guard, clock = guard_with_clock(Limits(auth_penalty_window=300.0))
    guard.record_failure(NAT, "carol")
    clock.now += 299.0
    assert guard.delay_for(NAT, "bob") == 2.0
    clock.now += 1.0
    assert guard.delay_for(NAT, "bob") == 0.0

"""Waiting for an event instead of sleeping for a guessed time.

A test that sleeps 0.2 s and then asserts fails whenever the machine is busy
for 0.2 s (a shared 2-core runner often is). ``wait_until`` polls a condition
until it holds, with an overall limit that only a real failure reaches.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

# Long enough that only a real failure hits it on a loaded machine.
PATIENCE_SECONDS = 30.0


def wait_until(
    probe: Callable[[], T | None], what: str, timeout: float = PATIENCE_SECONDS, interval: float = 0.02
) -> T:
    """Call ``probe`` until it returns something true; return that. Fails
    with ``what`` (and the last value) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (after {timeout:.0f} s; last: {value!r})")
        time.sleep(interval)

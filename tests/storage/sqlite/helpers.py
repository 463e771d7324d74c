"""Helpers for driving the mail store in tests without a reactor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

import pytest

from imapd.core.errors import ImapError
from imapd.mail.interface import MailStore
from imapd.storage.sqlite.store import open_store

T = TypeVar("T")

# Every backend the contract suite runs against: name -> opener.
BACKENDS: dict[str, Callable[[Path], MailStore]] = {"sqlite": open_store}


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a store coroutine to completion. The SQLite store never awaits
    anything external, so one ``send`` finishes it."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("store coroutine waited on something external")


def error_of(coro: Coroutine[Any, Any, object]) -> ImapError:
    """Run a coroutine that must fail with ImapError; return the error."""
    with pytest.raises(ImapError) as info:
        run(coro)
    return info.value


def code_of(coro: Coroutine[Any, Any, object]) -> str | None:
    return error_of(coro).code

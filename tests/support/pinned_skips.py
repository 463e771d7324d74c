"""Pytest plugin: a skip whose reason is not pinned fails the test (the suite's rule).

A skip hides a test. The suite therefore only tolerates skips that somebody
wrote down on purpose, with the reason the test gives:

* ``SUITE_PINS`` below, for skips of modules that do not pin their own;
* a module's own ``PINNED_SKIPS`` (a collection of :class:`Pin`), next to the
  tests that skip (tests/conformance/test_scripts.py pins each imaptest script
  that needs a capability imapd does not offer).

Every other skip, at collection or at run time, is turned into a failure
that names the reason and how to pin it. A pin with ``in_ci=False`` is an
environment gap that must not happen under CI (``CI=true``): there the skip
fails too. Expected failures (``xfail``) are not skips and are left alone.

Registered from tests/conftest.py with ``pytest_plugins``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Generator, Iterable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Pin:
    """An allowed skip: ``pattern`` must match the whole skip reason (a regular expression)."""

    pattern: str
    why: str
    in_ci: bool = True  # False: a missing tool or file that CI provides, so the skip fails under CI

    @classmethod
    def exact(cls, reason: str, why: str, *, in_ci: bool = True) -> Pin:
        return cls(re.escape(reason), why, in_ci)

    def matches(self, reason: str) -> bool:
        return re.fullmatch(self.pattern, reason, re.DOTALL) is not None


#: Skips of modules that have no PINNED_SKIPS of their own.
SUITE_PINS: tuple[Pin, ...] = (
    Pin(r"reads /proc", "tests/e2e/test_large_messages_e2e.py measures memory on Linux only", in_ci=False),
    Pin(r"mbsync \(Debian package isync\) is not installed; \.ci/run installs it",
        "tests/e2e/test_sync_client.py needs mbsync; .ci/run installs it", in_ci=False),
    Pin(r"PostgreSQL server binaries \(Debian package postgresql\) are not installed; \.ci/run installs them",
        "tests/support/postgres.py starts a throwaway cluster with Debian's binaries; .ci/run installs them",
        in_ci=False),
    Pin(r"conformance data not found at .*",
        "tests/message/test_conformance_data.py reads ../shared/conformance, present in the project tree",
        in_ci=False),
)


def in_ci() -> bool:
    """CI sets ``CI=true`` (GitHub Actions, GitLab, ...)."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def require_tool(path: str | None, missing: str) -> str:
    """``path`` (a ``shutil.which`` result) when the tool is installed.
    Otherwise skip with ``missing`` (the module pins it with ``in_ci=False``),
    or, under CI, which installs the tool (.ci/run), fail with that reason."""
    if path is not None:
        return path
    if in_ci():
        pytest.fail(missing + " (CI=true: .ci/run installs it, so this test must run)")
    pytest.skip(missing)


def skip_reason(longrepr: object) -> str:
    """The reason given to ``pytest.skip``/``skipif``, from a skipped report's ``longrepr``."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(longrepr)
    return text.removeprefix("Skipped: ")


def unpinned_problem(reason: str, pins: Iterable[Pin], *, ci: bool) -> str | None:
    """None when a pin allows this skip here; otherwise why the skip is a failure."""
    for pin in pins:
        if pin.matches(reason):
            if ci and not pin.in_ci:
                return f"skip not allowed under CI (CI=true): {reason!r} ({pin.why})"
            return None
    return (f"unexpected skip: {reason!r}. Every skip must be pinned: add a Pin to the module's "
            "PINNED_SKIPS or to SUITE_PINS in tests/support/pinned_skips.py, or make the test run.")


def _module_pins(module: object) -> Collection[Pin]:
    pins = getattr(module, "PINNED_SKIPS", ())
    return tuple(pin for pin in pins if isinstance(pin, Pin))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                            pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        module = getattr(item, "module", None)
        problem = unpinned_problem(skip_reason(report.longrepr), (*_module_pins(module), *SUITE_PINS), ci=in_ci())
        if problem is not None:
            report.outcome = "failed"
            report.longrepr = problem
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport,
                                                                          pytest.CollectReport]:
    """A module that skips itself at import (``allow_module_level``) is checked the same way."""
    report = yield
    if report.skipped:
        problem = unpinned_problem(skip_reason(report.longrepr), SUITE_PINS, ci=in_ci())
        if problem is not None:
            report.outcome = "failed"
            report.longrepr = problem
    return report

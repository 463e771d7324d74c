"""Conformance scripts run against one real imapd per test session (issues 5, 11).

Two sets, one test id per script file, both in the README's imaptest format:

* **own** — ``imapd/conformance/scripts/`` (shipped in the package): RFC 3501 and every
  extension imapd advertises. Always run; none may skip.
* **imaptest** — ``../shared/conformance/imaptest`` (relative to the repo;
  override with ``IMAPD_CONFORMANCE_DIR``), Dovecot's scripts, an additional set.

tests/conformance/conftest.py starts ``imapd serve`` once per session on
127.0.0.1 with a fresh data directory and two users, ``testuser`` and
``user2`` (password ``pass``).

* ``EXPECTED_SKIPS`` pins every imaptest script that needs a capability imapd
  does not offer, with the capability the runner must name and why. The list
  is exact: a skip that is not pinned fails, a pinned script that runs fails,
  and a pinned script skipped for another reason fails.
* A missing imaptest directory fails under CI (``CI=true``) with a message
  naming the expected path; elsewhere it is one pinned skip.
* ``KNOWN_FAILING`` / ``OWN_KNOWN_FAILING`` list scripts the server cannot
  pass yet, each with the issue that will make it pass. They are
  ``xfail(strict=True)``: they must fail now, and once the server passes one
  the suite fails (XPASS) until it is removed. **When your change makes a
  script pass, delete its entry in the same commit.**
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imapd.conformance.report import Outcome
from imapd.conformance import OWN_SCRIPTS_DIR, RunnerConfig, list_script_files, run_script_file
from tests.support.pinned_skips import Pin, in_ci
from tests.support.server import REPO_ROOT

DEFAULT_SCRIPTS_DIR = REPO_ROOT.parent / "shared" / "conformance" / "imaptest"
SCRIPTS_DIR = Path(os.environ.get("IMAPD_CONFORMANCE_DIR", DEFAULT_SCRIPTS_DIR))

#: imaptest scripts skipped on purpose: script -> (capabilities the runner reports missing, why).
EXPECTED_SKIPS: dict[str, tuple[str, str]] = {
    "notify": ("NOTIFY", "NOTIFY (RFC 5465) not offered"),
    "urlauth": ("URLAUTH", "URLAUTH (RFC 4467) not offered"),
    "urlauth-binary": ("URLAUTH URLAUTH=BINARY", "URLAUTH (RFC 4467), URLAUTH=BINARY (RFC 5524) not offered"),
    "urlauth2": ("URLAUTH", "URLAUTH (RFC 4467) not offered"),
}

#: imaptest scripts that must fail today, with the issue that will make them pass (see module docstring).
KNOWN_FAILING: dict[str, str] = {}

#: Own scripts (imapd/conformance/scripts) that must fail today: each found a server bug, reported with the issue.
OWN_KNOWN_FAILING: dict[str, str] = {}

MISSING_REASON = (f"the shared imaptest scripts are missing: expected them at {SCRIPTS_DIR} "
                  "(set IMAPD_CONFORMANCE_DIR to run another copy)")


def pinned_reason(name: str) -> str:
    """The skip reason reported for a pinned imaptest script."""
    capabilities, why = EXPECTED_SKIPS[name]
    return f"{name}: {why} (runner: server lacks capability {capabilities})"


#: Read by tests/support/pinned_skips.py: the only skips this module may report.
PINNED_SKIPS: tuple[Pin, ...] = (
    *(Pin.exact(pinned_reason(name), "capability not offered") for name in EXPECTED_SKIPS),
    Pin.exact(MISSING_REASON, "../shared is not part of this repository", in_ci=False),
)


class ScriptFailed(AssertionError):
    """A conformance script failed; the message is the runner's full report."""


def _params(directory: Path, known_failing: dict[str, str]) -> list[object]:
    params: list[object] = []
    for path in list_script_files(directory):
        marks = []
        if path.name in known_failing:
            # raises=ScriptFailed: a crash of the runner or server helper is never an expected failure.
            marks.append(pytest.mark.xfail(strict=True, raises=ScriptFailed, reason=known_failing[path.name]))
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


def _shared_params() -> list[object]:
    if not SCRIPTS_DIR.is_dir():
        return [pytest.param(None, id="imaptest-scripts-missing")]
    return _params(SCRIPTS_DIR, KNOWN_FAILING)


def _require_shared_scripts() -> None:
    """Fail under CI, else skip (pinned), when ../shared/conformance is absent."""
    if SCRIPTS_DIR.is_dir():
        return
    if in_ci():
        pytest.fail(MISSING_REASON + "; CI must have them", pytrace=False)
    pytest.skip(MISSING_REASON)


@pytest.mark.parametrize("script", _params(OWN_SCRIPTS_DIR, OWN_KNOWN_FAILING))
def test_own_script(script: Path, conformance_config: RunnerConfig) -> None:
    """The project's own scripts never skip: a ``capabilities:`` header names only what imapd advertises."""
    result = run_script_file(script, conformance_config)
    if result.outcome is not Outcome.PASSED:
        raise ScriptFailed("\n" + result.format())


@pytest.mark.parametrize("script", _shared_params())
def test_imaptest_script(script: Path | None, conformance_config: RunnerConfig) -> None:
    _require_shared_scripts()
    assert script is not None
    result = run_script_file(script, conformance_config)
    pinned = EXPECTED_SKIPS.get(script.name)
    if result.outcome is Outcome.SKIPPED:
        if pinned is None:
            pytest.fail(f"unexpected skip of {script.name} ({result.skip_reason}): imapd should run it; "
                        "if the skip is right, pin it in EXPECTED_SKIPS with its reason", pytrace=False)
        expected = f"server lacks capability {pinned[0]} (post-login CAPABILITY)"
        if result.skip_reason.lower() != expected.lower():  # scripts spell capabilities in either case
            pytest.fail(f"{script.name} is pinned as skipped because '{expected}', "
                        f"but the runner skipped it because '{result.skip_reason}'", pytrace=False)
        pytest.skip(pinned_reason(script.name))
    if pinned is not None:
        pytest.fail(f"{script.name} is pinned in EXPECTED_SKIPS ({pinned[1]}) but was not skipped "
                    f"(outcome: {result.outcome.value}): remove it from the list", pytrace=False)
    if result.outcome is not Outcome.PASSED:
        raise ScriptFailed("\n" + result.format())


def test_pinned_lists_name_existing_scripts() -> None:
    """A stale entry (renamed or removed script) would silently stop meaning anything."""
    own = {path.name for path in list_script_files(OWN_SCRIPTS_DIR)}
    assert sorted(set(OWN_KNOWN_FAILING) - own) == []
    assert all(reason.startswith("issue ") for reason in (*KNOWN_FAILING.values(), *OWN_KNOWN_FAILING.values()))
    assert set(EXPECTED_SKIPS).isdisjoint(KNOWN_FAILING)
    if SCRIPTS_DIR == DEFAULT_SCRIPTS_DIR:
        _require_shared_scripts()
        shared = {path.name for path in list_script_files(SCRIPTS_DIR)}
        assert sorted((set(KNOWN_FAILING) | set(EXPECTED_SKIPS)) - shared) == []


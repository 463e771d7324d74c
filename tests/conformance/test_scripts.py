"""Every imaptest conformance script, run against one real imapd per test session (issue 5).

One test id per script file of ``../shared/conformance/imaptest`` (relative to
the repo; override with the environment variable ``IMAPD_CONFORMANCE_DIR``).
The session starts ``imapd serve`` on 127.0.0.1 with a fresh data directory
and two users, ``testuser`` and ``user2`` (password ``pass``).

* A script passes, fails (the report names the script line, what was expected
  and what the server sent), or is skipped because the server does not
  advertise a capability it needs (the skip reason names the capability).
* ``KNOWN_FAILING`` lists the scripts the server cannot pass yet, each with the
  issue that will make it pass. They are ``xfail(strict=True)``: they must
  fail now, and once the server passes one the suite fails (XPASS) until it is
  removed from the list. **When your change makes a script pass, delete its
  entry here in the same commit.** The list only ever shrinks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance import RunnerConfig, list_script_files, run_script_file
from tests.conformance.report import Outcome
from tests.support.server import REPO_ROOT, running_server

DEFAULT_SCRIPTS_DIR = REPO_ROOT.parent / "shared" / "conformance" / "imaptest"
SCRIPTS_DIR = Path(os.environ.get("IMAPD_CONFORMANCE_DIR", DEFAULT_SCRIPTS_DIR))
MAIN_USER, SECOND_USER, PASSWORD = "testuser", "user2", "pass"

#: Scripts that must fail today, with the issue that will make them pass (see module docstring).
#: Empty: every script whose capabilities imapd advertises passes.
KNOWN_FAILING: dict[str, str] = {}


class ScriptFailed(AssertionError):
    """A conformance script failed; the message is the runner's full report."""


def _script_params() -> list[object]:
    if not SCRIPTS_DIR.is_dir():
        reason = f"no conformance scripts at {SCRIPTS_DIR} (set IMAPD_CONFORMANCE_DIR)"
        return [pytest.param(None, id="no-scripts", marks=pytest.mark.skip(reason=reason))]
    params: list[object] = []
    for path in list_script_files(SCRIPTS_DIR):
        marks = []
        if path.name in KNOWN_FAILING:
            reason = KNOWN_FAILING[path.name]
            # raises=ScriptFailed: a crash of the runner or server helper is never an expected failure.
            marks.append(pytest.mark.xfail(strict=True, raises=ScriptFailed, reason=reason))
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


@pytest.fixture(scope="session")
def conformance_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerConfig]:
    """One real imapd for the whole session, with the main user and user2."""
    users = {MAIN_USER: PASSWORD, SECOND_USER: PASSWORD}
    with running_server(tmp_path_factory.mktemp("conformance"), users=users) as server:
        yield RunnerConfig(
            host=server.host, port=server.port, user=MAIN_USER, user2=SECOND_USER, password=PASSWORD, timeout=15.0
        )


@pytest.mark.parametrize("script", _script_params())
def test_script(script: Path, conformance_config: RunnerConfig) -> None:
    result = run_script_file(script, conformance_config)
    if result.outcome is Outcome.SKIPPED:
        pytest.skip(result.skip_reason)
    if result.outcome is not Outcome.PASSED:
        raise ScriptFailed("\n" + result.format())


def test_known_failing_entries_name_existing_scripts() -> None:
    """A stale entry (renamed or removed script) would silently stop meaning anything."""
    if SCRIPTS_DIR != DEFAULT_SCRIPTS_DIR or not SCRIPTS_DIR.is_dir():
        pytest.skip("KNOWN_FAILING describes the shipped scripts; another directory is being run")
    names = {path.name for path in list_script_files(SCRIPTS_DIR)}
    assert sorted(set(KNOWN_FAILING) - names) == []
    assert all(reason.startswith("issue ") for reason in KNOWN_FAILING.values())

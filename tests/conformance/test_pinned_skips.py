"""The suite-wide rule "an unexpected skip fails" (tests/support/pinned_skips.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.pinned_skips import SUITE_PINS, Pin, skip_reason, unpinned_problem
from tests.support.server import REPO_ROOT

PINS = (Pin.exact("needs the (optional) tool", "optional tool", in_ci=False), Pin(r"opt-in: .*", "opt-in"))


def test_a_pinned_reason_is_allowed_and_an_unknown_one_is_not() -> None:
    assert unpinned_problem("needs the (optional) tool", PINS, ci=False) is None
    assert unpinned_problem("opt-in: set X=1", PINS, ci=True) is None
    problem = unpinned_problem("needs the (optional) tool!", PINS, ci=False)
    assert problem is not None and problem.startswith("unexpected skip: 'needs the (optional) tool!'")
    assert "PINNED_SKIPS" in problem


def test_a_pin_for_a_local_gap_fails_under_ci() -> None:
    problem = unpinned_problem("needs the (optional) tool", PINS, ci=True)
    assert problem == "skip not allowed under CI (CI=true): 'needs the (optional) tool' (optional tool)"


def test_skip_reason_comes_from_the_report_tuple() -> None:
    assert skip_reason(("/x/test_a.py", 3, "Skipped: opt-in: set X=1")) == "opt-in: set X=1"
    assert skip_reason("Skipped: plain") == "plain"


def test_suite_pins_are_anchored_patterns() -> None:
    """A pin matches the whole reason: a longer, different reason is not let through by accident."""
    for pin in SUITE_PINS:
        assert not pin.matches("x" + pin.pattern), pin


SAMPLE = '''
import pytest
from tests.support.pinned_skips import Pin

PINNED_SKIPS = (Pin.exact("pinned here", "sample"), Pin.exact("local only", "sample", in_ci=False))

def test_pinned():
    pytest.skip("pinned here")

def test_unpinned():
    pytest.skip("nobody wrote this down")

@pytest.mark.skipif(True, reason="local only")
def test_local_gap():
    pass

@pytest.mark.xfail(strict=True, reason="not a skip")
def test_expected_failure():
    assert False

def test_passes():
    pass
'''


def _run_sample(tmp_path: Path, ci: str) -> str:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.support.pinned_skips"]\n')
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {"PYTHONPATH": str(REPO_ROOT), "CI": ci, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_sample.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    return result.stdout


def test_plugin_fails_unpinned_skips_in_a_real_run(tmp_path: Path) -> None:
    out = _run_sample(tmp_path, ci="")
    assert "1 failed, 1 passed, 2 skipped, 1 xfailed" in out, out
    assert "FAILED test_sample.py::test_unpinned" in out
    assert "unexpected skip: 'nobody wrote this down'" in out


def test_plugin_under_ci_also_fails_local_gaps(tmp_path: Path) -> None:
    out = _run_sample(tmp_path, ci="true")
    # a skipif mark acts in setup, so pytest reports the failure there as an error
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error" in out, out
    assert "ERROR test_sample.py::test_local_gap" in out
    assert "skip not allowed under CI (CI=true): 'local only'" in out

"""The runner's fidelity: the shared scripts against a private Dovecot.

The conformance README (§13) records what Dovecot 2.3.19.1 (Debian 12) gives
with real imaptest: 61 scripts pass, none fail, 4 are skipped (sort-partial:
no CONTEXT=SORT; urlauth, urlauth-binary, urlauth2: no URLAUTH). This runner
must reproduce that exactly. Dovecot is Debian's ``dovecot-imapd``, which
.ci/run installs, run as root (it switches to ``nobody`` for the mail) by
tests/support/dovecot.py; see docs/conformance.md.
"""

from __future__ import annotations

from pathlib import Path

from imapd.conformance import RunnerConfig, list_script_files, run_script_file
from imapd.conformance.report import Outcome, Totals
from tests.support.dovecot import MISSING, running_dovecot, unavailable
from tests.support.pinned_skips import Pin, require_tool

SHIPPED = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "imaptest"
EXPECTED_SKIPS = {"sort-partial", "urlauth", "urlauth-binary", "urlauth2"}

#: Read by tests/support/pinned_skips.py: without Dovecot (a developer's
#: machine, not root) the check is skipped; under CI that fails.
PINNED_SKIPS = (Pin.exact(MISSING, "Dovecot is a Debian package .ci/run installs; it needs root", in_ci=False),)


def test_runner_reproduces_imaptest_results_against_dovecot() -> None:
    require_tool(None if unavailable() else "dovecot", MISSING)
    totals = Totals()
    outcomes: dict[str, Outcome] = {}
    reports: list[str] = []
    with running_dovecot("testuser", "pass", more_users={"user2": "pass"}) as dovecot:
        config = RunnerConfig(host=dovecot.host, port=dovecot.port, user="testuser", user2="user2",
                              password="pass", timeout=15)
        for path in list_script_files(SHIPPED):
            result = run_script_file(path, config)
            totals.add(result)
            outcomes[path.name] = result.outcome
            if result.outcome is Outcome.FAILED:
                reports.append(result.format())
    assert reports == []
    assert {name for name, outcome in outcomes.items() if outcome is Outcome.SKIPPED} == EXPECTED_SKIPS
    assert (totals.scripts, totals.passed, totals.failed, totals.skipped) == (65, 61, 0, 4)

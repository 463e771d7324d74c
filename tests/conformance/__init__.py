"""Tests of the imaptest-format conformance runner, which lives in ``imapd.conformance``.

The runner moved into the package (issue 19) so ``imapd conformance`` ships it;
these names are re-exported so ``from tests.conformance import ...`` keeps
working. ``python -m tests.conformance`` is kept as an alias of the older
command line (see ``__main__``); ``imapd conformance HOST PORT`` is the one to use.
"""

from __future__ import annotations

from imapd.conformance import (
    OWN_SCRIPTS_DIR,
    Failure,
    Outcome,
    RunnerConfig,
    Script,
    ScriptError,
    ScriptResult,
    TestRun,
    Totals,
    list_script_files,
    parse_script,
    parse_script_file,
    run_script,
    run_script_file,
)

__all__ = [
    "OWN_SCRIPTS_DIR",
    "Failure",
    "Outcome",
    "RunnerConfig",
    "Script",
    "ScriptError",
    "ScriptResult",
    "TestRun",
    "Totals",
    "list_script_files",
    "parse_script",
    "parse_script_file",
    "run_script",
    "run_script_file",
]

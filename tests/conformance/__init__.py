"""imaptest-format conformance runner (see /work/shared/conformance/README.md and docs/conformance.md).

Run a directory of scripts against any server::

    python -m tests.conformance --host 127.0.0.1 --port 1143 --user U --user2 U2 DIR

From code::

    from tests.conformance import RunnerConfig, run_script_file
    result = run_script_file(path, RunnerConfig(host=..., port=..., user=...))
    print(result.format())
"""

from __future__ import annotations

from .executor import RunnerConfig, TestRun, run_script, run_script_file
from .report import Failure, Outcome, ScriptResult, Totals
from .script import Script, ScriptError, list_script_files, parse_script, parse_script_file

__all__ = [
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

"""The imaptest-format conformance runner: a client that checks any IMAP server.

The script format is Dovecot imaptest's (specified in the project's
``shared/conformance/README.md``; docs/conformance.md describes the runner,
its deviations and the project's own scripts). ``imapd conformance HOST PORT``
(``imapd.cli_conformance``) runs it from the command line; from code::

    from imapd.conformance import OWN_SCRIPTS_DIR, RunnerConfig, list_script_files, run_script_file
    config = RunnerConfig(host="127.0.0.1", port=1143, user="testuser", password="pass")
    for path in list_script_files(OWN_SCRIPTS_DIR):
        print(run_script_file(path, config).format())

This package is a client-side tool: it imports only itself and the standard
library, never the server (tests/test_layering.py enforces it), so it can be
pointed at any server, imapd or not.
"""

from __future__ import annotations

from pathlib import Path

from .executor import RunnerConfig, TestRun, run_script, run_script_file
from .report import Failure, Outcome, ScriptResult, Totals
from .script import Script, ScriptError, list_script_files, parse_script, parse_script_file

#: The project's own scripts (RFC 3501 and every extension imapd offers) with
#: their mbox files, shipped inside the package so a pip install has them.
OWN_SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"

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

"""What ``imapd conformance`` prints and writes: the per-script table and JUnit XML.

One row per script: its name, ``pass``/``FAIL``/``skip``, the seconds it took
and its first failure (or why it was skipped). JUnit XML is the de-facto
format CI systems read (Jenkins' schema: ``testsuites``/``testsuite``/
``testcase`` with ``failure`` or ``skipped``), one testcase per script.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from .report import Outcome, ScriptResult

FIRST_FAILURE_CHARS = 110
RESULT_WORDS = {Outcome.PASSED: "pass", Outcome.FAILED: "FAIL", Outcome.SKIPPED: "skip"}
# XML 1.0 §2.2 allows neither NUL nor most C0 controls even escaped; a server's
# bytes can contain them, so they are replaced rather than making the file unreadable
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class ScriptRun:
    """One script's result with where it came from and how long it took."""

    suite: str  # "own" for the shipped scripts, else the directory given with --scripts
    result: ScriptResult
    seconds: float

    @property
    def name(self) -> str:
        return self.result.name


def first_failure(result: ScriptResult) -> str:
    """The table's last column: the first failure's line and message, or the skip reason."""
    if result.outcome is Outcome.SKIPPED:
        text = result.skip_reason
    elif result.outcome is Outcome.FAILED and result.failures:
        failure = result.failures[0]
        where = f"line {failure.line}: " if failure.line else "setup: "
        text = where + failure.message
    else:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= FIRST_FAILURE_CHARS else text[: FIRST_FAILURE_CHARS - 3] + "..."


def table_header(width: int) -> str:
    return f"{'script':<{width}}  result  seconds  first failure"


def table_row(run: ScriptRun, width: int) -> str:
    word = RESULT_WORDS[run.result.outcome]
    return f"{run.name:<{width}}  {word:<6}  {run.seconds:7.2f}  {first_failure(run.result)}".rstrip()


def totals_line(runs: Sequence[ScriptRun]) -> str:
    counts = {outcome: sum(1 for run in runs if run.result.outcome is outcome) for outcome in Outcome}
    seconds = sum(run.seconds for run in runs)
    return (f"{len(runs)} scripts: {counts[Outcome.PASSED]} passed, {counts[Outcome.FAILED]} failed, "
            f"{counts[Outcome.SKIPPED]} skipped ({seconds:.1f} s)")


def junit_xml(runs: Sequence[ScriptRun], target: str) -> bytes:
    """A JUnit XML document: one ``testsuite`` per script set, one ``testcase`` per script.

    A failure's ``message`` is its first failure line; the element's text is
    the full report (every failure, the command, what was expected and what
    the server sent), as the table's detail section prints it.
    """
    root = ET.Element("testsuites", name=f"imapd conformance {target}")
    for suite in dict.fromkeys(run.suite for run in runs):
        members = [run for run in runs if run.suite == suite]
        element = ET.SubElement(root, "testsuite", {
            "name": _clean(suite), "tests": str(len(members)), "errors": "0",
            "failures": str(sum(1 for run in members if run.result.outcome is Outcome.FAILED)),
            "skipped": str(sum(1 for run in members if run.result.outcome is Outcome.SKIPPED)),
            "time": f"{sum(run.seconds for run in members):.3f}",
        })
        for run in members:
            case = ET.SubElement(element, "testcase", classname=_clean(suite), name=_clean(run.name),
                                 time=f"{run.seconds:.3f}")
            if run.result.outcome is Outcome.FAILED:
                failure = ET.SubElement(case, "failure", message=_clean(first_failure(run.result)))
                failure.text = _clean(run.result.format())
            elif run.result.outcome is Outcome.SKIPPED:
                ET.SubElement(case, "skipped", message=_clean(run.result.skip_reason))
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)

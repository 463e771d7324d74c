"""Results, failure messages and imaptest-style totals (conformance README §10).

imaptest calls a script file a "test group" and a command group an
"individual command"; the totals keep that wording so the numbers can be
compared with real imaptest output.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

MAX_RECEIVED_LINES = 40
MAX_LINE_CHARS = 600


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Failure:
    """One failure, with everything needed to see its cause."""

    script: str  # path of the script file
    line: int  # script line (0: setup or the implicit LOGOUT)
    message: str  # what went wrong
    group: int = 0  # 1-based command group, 0 during setup
    group_count: int = 0
    connection: int = 1
    command: str = ""  # the command as sent (expanded), or the setup command
    expected: str = ""  # the expectation as written in the script
    expanded: str = ""  # the expectation with known variables filled in
    best_match: str = ""  # the received response that came closest
    received: list[str] = field(default_factory=list)  # what the server sent meanwhile

    def format(self) -> str:
        where = f"{self.script}:{self.line}" if self.line else self.script
        if self.group:
            where += f" (command group {self.group}/{self.group_count}, connection {self.connection})"
        else:
            where += f" (setup, connection {self.connection})"
        lines = [f"{where}: {self.message}"]
        if self.command:
            lines.append(f"  command:    {_clip(self.command)}")
        if self.expected:
            lines.append(f"  expected:   {_clip(self.expected)}")
        if self.expanded and self.expanded != self.expected:
            lines.append(f"  expanded:   {_clip(self.expanded)}")
        if self.best_match:
            lines.append(f"  best match: {_clip(self.best_match)}")
        if self.received:
            during = "the group" if self.group else "this setup command"
            lines.append(f"  server sent on this connection during {during}:")
            shown = self.received[-MAX_RECEIVED_LINES:]
            if len(self.received) > len(shown):
                lines.append(f"    ... ({len(self.received) - len(shown)} earlier lines)")
            lines.extend(f"    S: {_clip(line)}" for line in shown)
        elif self.group:
            lines.append("  server sent nothing on this connection during the group")
        return "\n".join(lines)


def _clip(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    return text[:MAX_LINE_CHARS] + f"... ({len(text) - MAX_LINE_CHARS} more chars)"


@dataclass
class ScriptResult:
    """The outcome of one script file."""

    script: str
    name: str
    extension: bool
    outcome: Outcome = Outcome.PASSED
    skip_reason: str = ""
    failures: list[Failure] = field(default_factory=list)
    groups_run: int = 0
    groups_failed: int = 0
    outputs: list[str] = field(default_factory=list)  # "!output" lines

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    def format(self) -> str:
        """Multi-line description: the status line, then every failure."""
        if self.outcome is Outcome.SKIPPED:
            return f"{self.name}: skipped ({self.skip_reason})"
        if self.passed:
            head = f"{self.name}: ok ({self.groups_run}/{self.groups_run} command groups passed)"
        elif self.groups_run == 0:
            head = f"{self.name}: FAILED (before the first command group)"
        else:
            head = f"{self.name}: FAILED ({self.groups_failed}/{self.groups_run} command groups failed)"
        parts = [head] + [failure.format() for failure in self.failures]
        return "\n\n".join(parts)


@dataclass
class Totals:
    """Counts over many scripts, printed the way imaptest prints them."""

    scripts: int = 0
    failed: int = 0
    skipped: int = 0
    base_groups: int = 0
    base_failed: int = 0
    ext_groups: int = 0
    ext_failed: int = 0

    def add(self, result: ScriptResult) -> None:
        self.scripts += 1
        if result.outcome is Outcome.FAILED:
            self.failed += 1
        elif result.outcome is Outcome.SKIPPED:
            self.skipped += 1
        if result.extension:
            self.ext_groups += result.groups_run
            self.ext_failed += result.groups_failed
        else:
            self.base_groups += result.groups_run
            self.base_failed += result.groups_failed

    @property
    def passed(self) -> int:
        return self.scripts - self.failed - self.skipped

    def format(self) -> str:
        return "\n".join(
            [
                f"{self.scripts} test groups: {self.failed} failed, "
                f"{self.skipped} skipped due to missing capabilities",
                f"base protocol: {self.base_failed}/{self.base_groups} individual commands failed",
                f"extensions: {self.ext_failed}/{self.ext_groups} individual commands failed",
                f"({self.passed} passed, {self.failed} failed, {self.skipped} skipped)",
            ]
        )

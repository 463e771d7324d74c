"""Scenario results side by side, with the ratio imapd/peer (issue 8).

Absolute figures move with the machine's load; the ratios between servers
measured in the same run are what the benchmarks report.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

REFERENCE = "imapd"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    higher_is_better: bool = True
    compared: bool = True  # False: context (e.g. a count), no ratio printed


@dataclass
class PeerFigures:
    peer: str
    values: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class ScenarioReport:
    title: str
    columns: list[Column]
    rows: list[PeerFigures] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    def row(self, peer: str) -> PeerFigures | None:
        return next((r for r in self.rows if r.peer == peer), None)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def progress(row: PeerFigures) -> None:
    """Print one server's figures as soon as they are measured (long
    scenarios: a stopped run keeps what it measured)."""
    values = ", ".join(f"{key} {_fmt(value)}" for key, value in row.values.items())
    print(f"  .. {row.peer}: {values}; errors {row.errors}; " + "; ".join(row.notes), flush=True)


def ratio(report: ScenarioReport, peer: str, key: str) -> float | None:
    """imapd's value divided by ``peer``'s, when both exist and are > 0."""
    mine, theirs = report.row(REFERENCE), report.row(peer)
    column = next((c for c in report.columns if c.key == key), None)
    if mine is None or theirs is None or (column is not None and not column.compared):
        return None
    a, b = mine.values.get(key), theirs.values.get(key)
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return a / b


def format_report(report: ScenarioReport) -> str:
    """A table: one row per peer, then one ratio row per peer."""
    width = max([len(c.label) for c in report.columns] + [10]) + 2
    head = f"{'':<16}" + "".join(f"{c.label:>{width}}" for c in report.columns) + f"{'errors':>8}"
    lines = [f"== {report.title}", head]
    for row in report.rows:
        cells = "".join(f"{_fmt(row.values.get(c.key)):>{width}}" for c in report.columns)
        lines.append(f"{row.peer:<16}{cells}{row.errors:>8}")
    for row in report.rows:
        if row.peer == REFERENCE:
            continue
        cells = "".join(
            f"{(_fmt(r) + 'x') if (r := ratio(report, row.peer, c.key)) is not None else '-':>{width}}"
            for c in report.columns
        )
        lines.append(f"{'imapd/' + row.peer:<16}{cells}")
    if any(not c.higher_is_better for c in report.columns):
        lower = ", ".join(c.label for c in report.columns if not c.higher_is_better)
        lines.append(f"(lower is better: {lower}; there a ratio above 1x means imapd is slower or bigger)")
    for row in report.rows:
        for note in row.notes:
            lines.append(f"  {row.peer}: {note}")
    for peer, reason in report.skipped.items():
        lines.append(f"  skipped {peer}: {reason}")
    lines.extend(f"  {line}" for line in report.details)
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """Cores, memory, load and kernel, for the record."""
    info = {"cores": str(os.cpu_count()), "kernel": platform.release()}
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        info["memory"] = f"{total_kib / 1024 / 1024:.1f} GiB"
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
        info["cpu"] = cpu.partition(":")[2].strip()
    except (OSError, StopIteration, ValueError):
        pass
    info["load"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    try:
        info["disk"] = subprocess.run(["df", "-h", "/tmp"], capture_output=True, text=True,
                                      timeout=10).stdout.splitlines()[-1]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return info


def save_json(path: Path, reports: list[ScenarioReport], extra: dict[str, object]) -> None:
    payload = {**extra, "scenarios": [asdict(r) for r in reports]}
    path.write_text(json.dumps(payload, indent=1))

"""Latency and error bookkeeping for a load run."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

MAX_ERROR_SAMPLES = 30
SAMPLES_PER_NAME = 3


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class CommandFigures:
    name: str
    count: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass(slots=True)
class Stats:
    """Collects latencies per command while ``recording`` is on (the
    measurement window), and every error, in or out of the window."""

    recording: bool = False
    latencies: dict[str, list[float]] = field(default_factory=dict)
    operations: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def record(self, name: str, seconds: float) -> None:
        if self.recording:
            self.latencies.setdefault(name, []).append(seconds)

    def operation_done(self) -> None:
        if self.recording:
            self.operations += 1

    def error(self, name: str, description: str) -> None:
        self.errors[name] += 1
        if self.errors[name] <= SAMPLES_PER_NAME and len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{name}: {description}")

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def figures(self) -> list[CommandFigures]:
        names = sorted(set(self.latencies) | set(self.errors))
        out: list[CommandFigures] = []
        for name in names:
            values = sorted(self.latencies.get(name, []))
            out.append(CommandFigures(
                name, len(values), self.errors.get(name, 0),
                percentile(values, 0.50) * 1000, percentile(values, 0.90) * 1000,
                percentile(values, 0.99) * 1000, (values[-1] if values else 0.0) * 1000,
            ))
        return out

    def merge(self, other: Stats) -> None:
        for name, values in other.latencies.items():
            self.latencies.setdefault(name, []).extend(values)
        self.operations += other.operations
        self.errors.update(other.errors)
        room = MAX_ERROR_SAMPLES - len(self.error_samples)
        self.error_samples.extend(other.error_samples[:max(0, room)])

"""Sample a running imapd with py-spy and summarize the hot spots.

py-spy is not a project dependency: ``python -m bench.peers install``
puts it in the benchmark tools virtualenv (``TOOLS_VENV``). ``start`` runs
``py-spy record --format raw`` (collapsed stacks) on a pid for a while;
``finish`` waits and returns the functions with the most samples, as
``file:function`` with self and total (inclusive) percentages.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.peers import TOOLS_VENV

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")


@dataclass
class Spy:
    process: subprocess.Popen[bytes] | None
    output: Path
    reason: str = ""


def py_spy() -> str | None:
    local = TOOLS_VENV / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, output: Path) -> Spy:
    """Start sampling ``pid`` for ``seconds`` (100 Hz) into ``output``."""
    binary = py_spy()
    if binary is None:
        return Spy(None, output, "py-spy not installed (python -m bench.peers install)")
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
            "--rate", "100", "--format", "raw", "--output", str(output), "--nonblocking"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Spy(process, output)


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("/imapd/", "/twisted/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path[path.index(marker) + 1:]
            break
    return f"{path}:{match.group('func')}"


def summarize(collapsed: str, top: int = 15) -> str:
    """Self and inclusive sample shares per function from collapsed stacks
    (``frame;frame;... count`` lines)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples; self% (where the time is spent):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive% of imapd functions (time under them):")
    ours = [(name, n) for name, n in inclusive.most_common() if name.startswith("imapd/")]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in ours[:top]]
    return "\n".join(lines)


def finish(spy: Spy, timeout: float = 120.0) -> str:
    """Wait for the sampler and return its summary (or why there is none)."""
    if spy.process is None:
        return f"profile: {spy.reason}"
    try:
        _, err = spy.process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        spy.process.kill()
        spy.process.communicate()
        return "profile: py-spy did not finish"
    if not spy.output.exists():
        return f"profile: py-spy failed: {err.decode(errors='replace')[-300:]}"
    return f"profile of imapd ({spy.output}):\n" + summarize(spy.output.read_text())

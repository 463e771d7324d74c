"""Figures of the hallway benchmark (issue 12) as Markdown, and the
before/after ratios.

Pure functions over plain dicts (the JSON the bench writes), so they are
tested without servers (tests/bench/test_hallway_bench.py). A result is::

    {"header": {...}, "mixed": {"10": {"before": {...}, "after": {...},
     "dovecot": {...}, "pymap-dict": {...}}}, "latency": {"before": {...},
     "after": {...}}, "idle": {"before": {...}, "after": {...}}}

Each server's figures are a dict of numbers plus ``errors`` (a count) and
``notes`` (strings). A missing figure renders as ``–``.
"""

from __future__ import annotations

from typing import Any, Mapping

BEFORE, AFTER = "before", "after"
PEERS = ("dovecot", "pymap-dict")
BEGIN_MARK = "<!-- hallway-bench:latest:begin -->"
END_MARK = "<!-- hallway-bench:latest:end -->"

Figures = Mapping[str, Any]

MIXED_COLUMNS = (("commands_per_s", "commands/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                 ("cpu_ms_per_command", "srv CPU ms/cmd"))
LATENCY_COLUMNS = (("noop_p50_ms", "NOOP p50 ms"), ("noop_p99_ms", "NOOP p99 ms"),
                   ("store_p50_ms", "STORE p50 ms"), ("store_p99_ms", "STORE p99 ms"),
                   ("appends_per_s", "APPEND/s (all appenders)"), ("samples", "probe commands"))
IDLE_COLUMNS = (("connections", "connections"), ("rss_kib_per_conn", "RSS KiB/conn"),
                ("pss_kib_per_conn", "PSS KiB/conn"), ("open_s", "open s"),
                ("push_p50_ms", "push p50 ms"), ("push_p99_ms", "push p99 ms"),
                ("push_max_ms", "push max ms"), ("notifications", "notifications"))


def fmt(value: Any) -> str:
    """A figure with a sensible number of digits (``–`` when absent)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(mine: Figures | None, theirs: Figures | None, key: str) -> float | None:
    """``mine[key] / theirs[key]`` when both are positive numbers, else None
    (a server that was skipped or measured nothing has no ratio)."""
    if mine is None or theirs is None:
        return None
    a, b = mine.get(key), theirs.get(key)
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or a <= 0 or b <= 0:
        return None
    return float(a) / float(b)


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{fmt(value)}×"


def _table(columns: tuple[tuple[str, str], ...], rows: list[tuple[str, Figures]],
           ratio_rows: list[tuple[str, Figures | None, Figures | None]]) -> list[str]:
    head = "| | " + " | ".join(label for _, label in columns) + " | errors |"
    lines = [head, "| --- |" + " ---: |" * (len(columns) + 1)]
    for name, figures in rows:
        cells = " | ".join(fmt(figures.get(key)) for key, _ in columns)
        lines.append(f"| {name} | {cells} | {figures.get('errors', 0)} |")
    for name, mine, theirs in ratio_rows:
        cells = " | ".join(fmt_ratio(ratio(mine, theirs, key)) for key, _ in columns)
        lines.append(f"| {name} | {cells} | |")
    return lines


def _notes(rows: list[tuple[str, Figures]]) -> list[str]:
    return [f"* {name}: {note}" for name, figures in rows for note in figures.get("notes", [])]


def mixed_section(clients: str, servers: Mapping[str, Figures]) -> list[str]:
    """Mixed load with ``clients`` clients: every server, then imapd/peer
    for before and after, then after/before."""
    rows = [(name, servers[name]) for name in (BEFORE, AFTER, *PEERS) if name in servers]
    ratios: list[tuple[str, Figures | None, Figures | None]] = []
    for peer in PEERS:
        if peer in servers:
            ratios += [(f"{tree}/{peer}", servers.get(tree), servers[peer]) for tree in (BEFORE, AFTER)]
    ratios.append((f"{AFTER}/{BEFORE}", servers.get(AFTER), servers.get(BEFORE)))
    return [f"(a) Mixed load, {clients} clients:", "", *_table(MIXED_COLUMNS, rows, ratios), "",
            *_notes(rows)]


def before_after_section(title: str, columns: tuple[tuple[str, str], ...],
                         servers: Mapping[str, Figures]) -> list[str]:
    rows = [(name, servers[name]) for name in (BEFORE, AFTER) if name in servers]
    ratios = [(f"{AFTER}/{BEFORE}", servers.get(AFTER), servers.get(BEFORE))]
    return [title, "", *_table(columns, rows, ratios), "", *_notes(rows)]


def headline(results: Mapping[str, Any]) -> list[str]:
    """One line per check of issue 12: the ratio before → after."""
    lines: list[str] = []
    for clients, servers in results.get("mixed", {}).items():
        for peer in PEERS:
            if peer in servers:
                before = ratio(servers.get(BEFORE), servers[peer], "commands_per_s")
                after = ratio(servers.get(AFTER), servers[peer], "commands_per_s")
                lines.append(f"* mixed load, {clients} clients, commands/s imapd/{peer}: "
                             f"before {fmt_ratio(before)} → after {fmt_ratio(after)} (must not drop)")
    latency = results.get("latency", {})
    if latency:
        b, a = latency.get(BEFORE, {}), latency.get(AFTER, {})
        lines.append(f"* NOOP p50 under APPEND load: before {fmt(b.get('noop_p50_ms'))} ms → after "
                     f"{fmt(a.get('noop_p50_ms'))} ms (STORE p50 {fmt(b.get('store_p50_ms'))} → "
                     f"{fmt(a.get('store_p50_ms'))} ms)")
    idle = results.get("idle", {})
    if idle:
        b, a = idle.get(BEFORE, {}), idle.get(AFTER, {})
        lines.append(f"* IDLE memory: before {fmt(b.get('rss_kib_per_conn'))} → after "
                     f"{fmt(a.get('rss_kib_per_conn'))} KiB RSS per connection "
                     f"({fmt(a.get('connections'))} connections after)")
        lines.append(f"* push p50/p99: before {fmt(b.get('push_p50_ms'))}/{fmt(b.get('push_p99_ms'))} ms → "
                     f"after {fmt(a.get('push_p50_ms'))}/{fmt(a.get('push_p99_ms'))} ms")
    return lines


def _versions(versions: Any) -> str:
    if isinstance(versions, Mapping):
        return ", ".join(f"{name} {version}" for name, version in versions.items())
    return str(versions)


def render(results: Mapping[str, Any]) -> str:
    """The Markdown block of one run (between the doc markers)."""
    header = results.get("header", {})
    machine = header.get("machine", {})
    lines = [
        f"Run {header.get('date', '?')}{' (--quick)' if header.get('quick') else ''}: "
        f"before = `{header.get('before', '?')}`, after = `{header.get('after', '?')}`.",
        "",
        f"Machine: {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), "
        f"{machine.get('memory', '?')} RAM, kernel {machine.get('kernel', '?')}; "
        f"load average (1/5/15 min) {header.get('load_before', '?')} at the start, "
        f"{header.get('load_after', '?')} at the end. {header.get('shared', '')}".rstrip(),
        f"Versions: {_versions(header.get('versions', {}))}. Settings: {header.get('settings', '?')}.",
        "", "Headline:", "", *headline(results), "",
    ]
    for clients, servers in results.get("mixed", {}).items():
        lines += mixed_section(clients, servers) + [""]
    if results.get("latency"):
        lines += before_after_section(
            f"(b) One client's NOOP and UID STORE (alternating, one at a time) while "
            f"{header.get('appenders', '?')} other clients APPEND 10 KB messages continuously:",
            LATENCY_COLUMNS, results["latency"]) + [""]
    if results.get("idle"):
        lines += before_after_section(
            "(c, d) Connections in IDLE on one mailbox: server memory growth per connection, "
            "then push latency of one APPEND (another connection) to every idler:",
            IDLE_COLUMNS, results["idle"]) + [""]
    lines += [f"Skipped: {name}: {why}" for name, why in header.get("skipped", {}).items()]
    return "\n".join(lines).rstrip() + "\n"


def update_doc(text: str, block: str) -> str:
    """``text`` with everything between the hallway markers replaced by
    ``block``; the markers are appended at the end first if absent."""
    if BEGIN_MARK not in text or END_MARK not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN_MARK}\n{END_MARK}\n"
    head, _, rest = text.partition(BEGIN_MARK)
    _, _, tail = rest.partition(END_MARK)
    return f"{head}{BEGIN_MARK}\n{block.rstrip()}\n{END_MARK}{tail}"

"""The soak benchmark (issue 13, item 9): is imapd's memory flat under a
long mixed load?

    .venv/bin/python -m bench.soak_bench                          # 10 minutes, 10 clients
    .venv/bin/python -m bench.soak_bench --minutes 1 --clients 8 --interval 15
    .venv/bin/python -m bench.soak_bench --json /tmp/soak.json --markdown

Serves this checkout (``python -m imapd serve``, ``bench.hallway_bench.imapd_server``:
a fresh data directory, a loopback ephemeral port, argon2id made cheap) and
runs for ``--minutes``, all at once:

* ``--clients`` workers of the checked mixed load (``bench.load``: FETCH of
  flags, envelopes, BODYSTRUCTURE and bodies, STORE, SEARCH, APPEND,
  STORE \\Deleted + EXPUNGE, NOOP, a new session every 200 operations);
* ``--large-clients`` clients fetching ``--large-size`` messages with
  ``BODY.PEEK[]`` (bytes compared), one every ``LARGE_PAUSE`` seconds;
* ``--idlers`` connections in IDLE (RFC 2177) on the workers' mailboxes,
  so the load's changes are pushed to them; each ends its IDLE with DONE
  once per ``--interval`` and starts a new one (the DONE round trip is timed).

Before the load, at every ``--interval`` and after the clients left it
samples the server: RSS (``/proc/PID/smaps_rollup``), the SQLite WAL
(``<data>/mail.sqlite3-wal``), open file descriptors (``/proc/PID/fd``),
and per interval: commands/s, p50/p99 over every command, errors, server
CPU and IDLE pushes received. The verdict compares the end with the first
interval (caches are warm by then): RSS growth within
``--rss-slack-mib``, descriptors back to what they were, the WAL under
``--wal-limit-mib``, no errors. Exit status 0 when all hold, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import corpus
from bench.hallway_bench import Tree, imapd_server, load_now, target_of
from bench.load import Target, login, mailbox_name, prepare_mailboxes
from bench.load.checks import CheckFailed, fetches, require_ok, search_uids
from bench.load.client import ConnectionLost, ImapClient
from bench.load.runner import _drive, _Gate  # the mixed load's per-client loop, reused as is
from bench.load.stats import Stats, percentile
from bench.load.wire import Malformed, Response
from bench.load.workload import Worker, quote
from bench.peers import REPO_ROOT, Peer
from bench.report import machine
from imapd.storage.sqlite.schema import DB_FILENAME

PREFIX = "soak"
LARGE_MAILBOX = "soak-large"
LARGE_PAUSE = 0.5           # seconds between two large FETCHes of one client
QUIET = 2.0                 # seconds after the clients left, before the last sample
FD_SLACK = 8                # sessions reconnect mid-interval: a few sockets in flight
FAILURES = (CheckFailed, Malformed, ConnectionLost, OSError, TimeoutError)
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SoakConfig:
    seconds: float = 600.0
    interval: float = 60.0
    clients: int = 10
    messages: int = 60          # per worker mailbox
    idlers: int = 10
    large_clients: int = 1
    large_messages: int = 4
    large_size: int = 2 * MIB
    rss_slack_mib: float = 4.0
    wal_limit_mib: float = 32.0
    seed: int = 1


@dataclass(slots=True)
class Sample:
    """The server at one moment; the load figures cover the interval that
    ends here (zero for ``boot``, ``start`` and ``after``)."""

    label: str                  # boot / start / m:ss since the load began / after
    seconds: float              # since the load began
    rss_kib: int
    wal_bytes: int
    fds: int
    commands: int = 0
    commands_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    cpu_pct: float = 0.0        # server CPU over the interval, % of one core
    pushes: int = 0             # untagged responses the idlers read


@dataclass(slots=True)
class Verdict:
    ok: bool
    line: str
    rss_growth_kib: int         # end - start
    rss_growth_warm_kib: int    # end - first interval
    rss_slope_kib_per_min: float


# --- measuring the server --------------------------------------------------------

def wal_path(data_dir: Path) -> Path:
    """SQLite names the WAL after the database file plus ``-wal``."""
    return data_dir / f"{DB_FILENAME}-wal"


def probe(peer: Peer, data_dir: Path, label: str, seconds: float) -> Sample:
    """RSS, WAL size and open descriptors of the server now."""
    rss_kib, _ = peer.memory_kib()
    try:
        wal = wal_path(data_dir).stat().st_size
    except FileNotFoundError:
        wal = 0  # no WAL yet, or removed at the last close
    try:
        fds = len(os.listdir(f"/proc/{peer.process.pid}/fd"))
    except OSError:
        fds = -1
    return Sample(label, seconds, rss_kib, wal, fds)


def clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def interval_figures(sample: Sample, latencies: dict[str, list[float]], window: float, errors: int,
                     cpu_s: float, pushes: int) -> Sample:
    """Fill ``sample``'s load figures from one interval's latencies (seconds)."""
    every = sorted(v for values in latencies.values() for v in values)
    sample.commands = len(every)
    sample.commands_per_s = len(every) / window if window > 0 else 0.0
    sample.p50_ms = percentile(every, 0.5) * 1000
    sample.p99_ms = percentile(every, 0.99) * 1000
    sample.errors = errors
    sample.cpu_pct = 100 * cpu_s / window if window > 0 else 0.0
    sample.pushes = pushes
    return sample


# --- the verdict ----------------------------------------------------------------

def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0.0 with fewer than two x values)."""
    if len({x for x, _ in points}) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    num = sum((x - mx) * (y - my) for x, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return num / den


def judge(samples: list[Sample], cfg: SoakConfig, errors: int) -> Verdict:
    """Flat memory is the target: compare the end with the first interval
    (warm caches: page cache of SQLite, the message-analysis memo), not
    with the cold start, and say how far each figure is from its bound."""
    by_label = {s.label: s for s in samples}
    ticks = [s for s in samples if s.label not in ("boot", "start", "after")]
    start = by_label["start"]
    end = ticks[-1] if ticks else start
    warm = ticks[0] if len(ticks) >= 2 else start
    after = by_label.get("after", end)
    growth, warm_growth = end.rss_kib - start.rss_kib, end.rss_kib - warm.rss_kib
    trend = slope([(s.seconds / 60, float(s.rss_kib)) for s in ticks])
    slack_kib = cfg.rss_slack_mib * 1024
    wal_max = max(s.wal_bytes for s in samples)
    problems = []
    if warm_growth > slack_kib:
        problems.append(f"RSS grew {warm_growth / 1024:.1f} MiB after warm-up (slack {cfg.rss_slack_mib:g} MiB)")
    if end.fds > start.fds + FD_SLACK or after.fds > start.fds:
        problems.append(f"descriptors {start.fds} → {end.fds} under load, {after.fds} after the clients left")
    if end.wal_bytes > cfg.wal_limit_mib * MIB:
        problems.append(f"WAL {end.wal_bytes / MIB:.1f} MiB at the end (limit {cfg.wal_limit_mib:g} MiB)")
    if errors:
        problems.append(f"{errors} load errors")
    figures = (f"RSS {start.rss_kib / 1024:.1f} → {warm.rss_kib / 1024:.1f} (warm) → {end.rss_kib / 1024:.1f} MiB "
               f"({warm_growth / 1024:+.1f} MiB after warm-up, {growth / 1024:+.1f} from the start, "
               f"trend {trend / 1024:+.2f} MiB/min); WAL {end.wal_bytes / MIB:.1f} MiB at the end "
               f"(max {wal_max / MIB:.1f}); fds {start.fds} → {end.fds}, {after.fds} after; {errors} errors")
    word = "FLAT" if not problems else "NOT FLAT: " + "; ".join(problems)
    if len(ticks) < 3:  # the first interval is the warm-up: too little left to see a trend
        word += f" (only {len(ticks)} intervals: too short to judge)"
    return Verdict(not problems, f"verdict: {word} — {figures}", growth, warm_growth, trend)


# --- the extra clients: large FETCHes and IDLE ------------------------------------------

async def prepare_large(target: Target, cfg: SoakConfig) -> dict[int, bytes]:
    """``soak-large`` with ``large_messages`` messages of ``large_size``
    bytes; returns UID -> bytes (UIDs learnt with UID SEARCH ALL)."""
    if cfg.large_clients <= 0 or cfg.large_messages <= 0:
        return {}
    bodies = [corpus.sized_message(9000 + i, cfg.large_size) for i in range(cfg.large_messages)]
    client = await login(target)
    await client.command(b"DELETE " + quote(LARGE_MAILBOX))  # NO when absent: fine
    require_ok(await client.command(b"CREATE " + quote(LARGE_MAILBOX)), "CREATE")
    for data in bodies:
        require_ok(await client.command(b"APPEND " + quote(LARGE_MAILBOX) + b" {}", data, timeout=300), "APPEND")
    require_ok(await client.command(b"SELECT " + quote(LARGE_MAILBOX)), "SELECT")
    reply = require_ok(await client.command(b"UID SEARCH ALL"), "SEARCH")
    uids = sorted(search_uids(reply))
    await client.command(b"LOGOUT")
    await client.close()
    if len(uids) != len(bodies):
        raise CheckFailed(f"{LARGE_MAILBOX}: {len(uids)} UIDs for {len(bodies)} messages")
    return dict(zip(uids, bodies))


async def large_fetcher(target: Target, messages: dict[int, bytes], stats: Stats, stop: asyncio.Event,
                        rng: random.Random, gate: _Gate, begin: asyncio.Event) -> None:
    """``UID FETCH u (BODY.PEEK[])`` of a large message, bytes compared,
    from ``begin`` until ``stop``; connected before ``gate`` is told (so
    the start sample counts its socket). A failure is counted and the
    client reconnects."""
    client: ImapClient | None = None
    try:
        client = await _examine(target, LARGE_MAILBOX)
    except FAILURES as exc:
        stats.error("FETCH LARGE", f"{type(exc).__name__}: {exc}")
    gate.ready()
    await begin.wait()
    while not stop.is_set():
        try:
            if client is None:
                client = await _examine(target, LARGE_MAILBOX)
            uid = rng.choice(sorted(messages))
            reply = require_ok(await client.command(b"UID FETCH %d (BODY.PEEK[])" % uid, timeout=120), "FETCH")
            stats.record("FETCH LARGE", reply.elapsed)
            bodies = [items.get(b"BODY[]") for _, items in fetches(reply) if b"BODY[]" in items]
            if bodies != [messages[uid]]:
                raise CheckFailed(f"FETCH LARGE: UID {uid} body differs ({len(bodies)} bodies)")
        except FAILURES as exc:
            stats.error("FETCH LARGE", f"{type(exc).__name__}: {exc}")
            if client is not None:
                client.abort()
                client = None
        try:
            await asyncio.wait_for(stop.wait(), LARGE_PAUSE)
        except TimeoutError:
            pass
    if client is not None:
        client.abort()


async def _examine(target: Target, mailbox: str) -> ImapClient:
    """A logged-in connection with ``mailbox`` open read-only (EXAMINE
    claims no \\Recent, so the load's own checks see nothing of it)."""
    client = await login(target)
    try:
        require_ok(await client.command(b"EXAMINE " + quote(mailbox)), "EXAMINE")
    except FAILURES:
        client.abort()
        raise
    return client


async def _idle_until_tagged(client: ImapClient, tag: bytes, pushes: list[int], started: asyncio.Event) -> Response:
    """Read one IDLE: the continuation (sets ``started``), the pushes
    (counted), then the tagged reply that DONE brings (RFC 2177 §3)."""
    while True:
        response = await client.read_response()
        if response.kind == "continuation":
            started.set()
        elif response.kind == "tagged":
            if response.tag != tag:
                raise Malformed(f"tagged {response.tag!r} during IDLE {tag!r}")
            return response
        else:
            pushes[0] += 1


async def _first(*waits: asyncio.Future[Any], timeout: float | None) -> None:
    """Wait until one of ``waits`` is done or ``timeout`` passed; never
    raises what they raise (their owner reads them)."""
    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)


async def _one_idle(client: ImapClient, cycle: float, stats: Stats, stop: asyncio.Event, pushes: list[int],
                    on_started: Callable[[], None]) -> None:
    """One IDLE of about ``cycle`` seconds, ended by DONE (RFC 2177 §3)."""
    tag, started = client.new_tag(), asyncio.Event()
    await client.send_raw(tag + b" IDLE\r\n")
    reading = asyncio.ensure_future(_idle_until_tagged(client, tag, pushes, started))
    helpers = [asyncio.ensure_future(started.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await _first(reading, helpers[0], timeout=60)
        if not started.is_set() and not reading.done():
            raise TimeoutError("no continuation for IDLE within 60 s")
        on_started()
        await _first(reading, helpers[1], timeout=cycle)
        began = time.perf_counter()
        if not reading.done():  # the server may have ended it (then DONE would be a stray line)
            await client.send_raw(b"DONE\r\n")
        response = await asyncio.wait_for(reading, 60)
        if response.name != b"OK":
            raise CheckFailed(f"IDLE: {response.raw[:100]!r}")
        stats.record("IDLE DONE", time.perf_counter() - began)
    finally:
        for future in (reading, *helpers):
            future.cancel()
        await asyncio.gather(reading, *helpers, return_exceptions=True)  # reaped: no stray warnings


async def idler(target: Target, mailbox: str, cycle: float, stats: Stats, stop: asyncio.Event,
                pushes: list[int], ready: _Gate) -> None:
    """EXAMINE ``mailbox`` and IDLE on it until ``stop``, a new IDLE every
    ``cycle`` seconds (the DONE round trip recorded as ``IDLE DONE``);
    ``ready`` learns when the first IDLE has started (or given up)."""
    client: ImapClient | None = None
    announced = [False]

    def started() -> None:
        if not announced[0]:
            announced[0] = True
            ready.ready()

    while not stop.is_set():
        try:
            if client is None:
                client = await _examine(target, mailbox)
            await _one_idle(client, cycle, stats, stop, pushes, started)
        except FAILURES as exc:
            stats.error("IDLE", f"{type(exc).__name__}: {exc}")
            if client is not None:
                client.abort()
                client = None
            started()  # counted as an error; the load does not wait for it
            await asyncio.sleep(0.5)
    started()
    if client is not None:
        client.abort()


# --- the run --------------------------------------------------------------------

@dataclass(slots=True)
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    totals: dict[str, list[float]] = field(default_factory=dict)   # command -> latencies (s)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


async def soak(peer: Peer, cfg: SoakConfig) -> SoakResult:
    """Run the soak against ``peer`` (an imapd started by ``imapd_server``)."""
    data = peer.workdir / "imapd-data"
    result = SoakResult()
    result.samples.append(probe(peer, data, "boot", 0.0))
    print(row_text(result.samples[-1]), flush=True)
    target = target_of(peer)
    await prepare_mailboxes(target, PREFIX, cfg.clients, cfg.messages)
    large = await prepare_large(target, cfg)
    stats, stop, begin = Stats(), asyncio.Event(), asyncio.Event()
    workers = [Worker(target, mailbox_name(PREFIX, n), stats, random.Random(cfg.seed * 1000 + n),
                      messages=cfg.messages, append_pool=cfg.messages, session_ops=200, timeout=60.0)
               for n in range(cfg.clients)]
    large_clients = cfg.large_clients if large else 0
    gate, deadline, pushes = _Gate(len(workers) + cfg.idlers + large_clients), [float("inf")], [0]
    tasks = [asyncio.ensure_future(_drive(w, "mixed", gate, begin, deadline, 10**9)) for w in workers]
    tasks += [asyncio.ensure_future(idler(target, mailbox_name(PREFIX, k % max(1, cfg.clients)), cfg.interval,
                                          stats, stop, pushes, gate)) for k in range(cfg.idlers)]
    tasks += [asyncio.ensure_future(large_fetcher(target, large, stats, stop, random.Random(cfg.seed + k), gate,
                                                  begin)) for k in range(large_clients)]
    await asyncio.wait_for(gate.all_ready.wait(), 180)
    result.samples.append(probe(peer, data, "start", 0.0))
    print(row_text(result.samples[-1]), flush=True)
    stats.recording = True
    began = time.monotonic()
    deadline[0] = began + cfg.seconds
    begin.set()
    await _sample_intervals(peer, data, cfg, stats, pushes, began, result)
    stats.recording = False
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 180)
    await asyncio.sleep(QUIET)  # the server notices the closed connections
    result.samples.append(probe(peer, data, "after", time.monotonic() - began))
    print(row_text(result.samples[-1]), flush=True)
    result.errors, result.error_samples = stats.error_count, list(stats.error_samples)
    return result


async def _sample_intervals(peer: Peer, data: Path, cfg: SoakConfig, stats: Stats, pushes: list[int],
                            began: float, result: SoakResult) -> None:
    """Every ``interval`` (the last one cut at ``seconds``): the server's
    state and that interval's commands, taken by swapping the latency lists."""
    last, errors0, cpu0, pushes0 = began, 0, peer.cpu_seconds(), 0
    while last < began + cfg.seconds - 1e-6:
        tick = min(last + cfg.interval, began + cfg.seconds)
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        now = time.monotonic()
        latencies, stats.latencies = stats.latencies, {}
        cpu, errors = peer.cpu_seconds(), stats.error_count
        sample = probe(peer, data, clock(tick - began), now - began)
        interval_figures(sample, latencies, now - last, errors - errors0, cpu - cpu0, pushes[0] - pushes0)
        result.samples.append(sample)
        for name, values in latencies.items():
            result.totals.setdefault(name, []).extend(values)
        print(row_text(sample), flush=True)
        last, errors0, cpu0, pushes0 = now, errors, cpu, pushes[0]


# --- output ---------------------------------------------------------------------

COLUMNS = ("time", "RSS MiB", "WAL MiB", "fds", "commands/s", "p50 ms", "p99 ms", "errors", "srv CPU %",
           "IDLE pushes")


def row_cells(s: Sample) -> list[str]:
    load = s.label not in ("boot", "start", "after")
    figures = [f"{s.commands_per_s:,.0f}", f"{s.p50_ms:.2f}", f"{s.p99_ms:.1f}", str(s.errors),
               f"{s.cpu_pct:.0f}", f"{s.pushes:,}"] if load else ["–"] * 6
    return [s.label, f"{s.rss_kib / 1024:.1f}", f"{s.wal_bytes / MIB:.2f}", str(s.fds), *figures]


def row_text(s: Sample) -> str:
    return "  ".join(f"{name} {cell}" for name, cell in zip(COLUMNS, row_cells(s)))


def command_lines(totals: dict[str, list[float]]) -> list[str]:
    lines = [f"  {'command':<18}{'count':>9}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for name in sorted(totals):
        values = sorted(totals[name])
        lines.append(f"  {name:<18}{len(values):>9}{percentile(values, 0.5) * 1000:>10.2f}"
                     f"{percentile(values, 0.99) * 1000:>10.2f}{values[-1] * 1000 if values else 0:>10.1f}")
    return lines


def markdown(header: dict[str, Any], samples: list[Sample], verdict: Verdict) -> str:
    """The table for docs/benchmarks.md, with what it was measured on."""
    m = header["machine"]
    cfg = header["config"]
    lines = [
        f"Soak of `{header['commit']}` on {header['date']}, {cfg['seconds'] / 60:g} min: "
        f"{cfg['clients']} mixed-load clients ({cfg['messages']} messages each), {cfg['idlers']} IDLE clients, "
        f"{cfg['large_clients']} client(s) fetching {cfg['large_size'] / MIB:g} MiB messages; loopback.",
        f"Machine: {m.get('cores', '?')} cores ({m.get('cpu', '?')}), {m.get('memory', '?')}, "
        f"Linux {m.get('kernel', '?')}; load average {header['load_before']} at the start, "
        f"{header['load_after']} at the end (shared machine: absolute figures move).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row_cells(s)) + " |" for s in samples]
    lines += ["", f"**{verdict.line}**"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_bench", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument("--clients", type=int, default=10, help="mixed-load clients (default 10)")
    parser.add_argument("--messages", type=int, default=60, help="messages per client mailbox (default 60)")
    parser.add_argument("--idlers", type=int, default=10, help="IDLE connections (default 10)")
    parser.add_argument("--large-clients", type=int, default=1, help="clients fetching large messages (default 1)")
    parser.add_argument("--large-size", type=float, default=2.0, help="MiB per large message (default 2)")
    parser.add_argument("--rss-slack-mib", type=float, default=4.0, help="RSS growth after warm-up still flat")
    parser.add_argument("--wal-limit-mib", type=float, default=32.0, help="largest WAL at the end still fine")
    parser.add_argument("--json", type=Path, help="also write the samples and verdict here")
    parser.add_argument("--markdown", action="store_true", help="print a table for docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.clients < 1:
        parser.error("--minutes and --interval must be positive, --clients at least 1")
    return args


def config_of(args: argparse.Namespace) -> SoakConfig:
    return SoakConfig(seconds=args.minutes * 60, interval=args.interval, clients=args.clients,
                      messages=args.messages, idlers=max(0, args.idlers), large_clients=max(0, args.large_clients),
                      large_size=int(args.large_size * MIB), rss_slack_mib=args.rss_slack_mib,
                      wal_limit_mib=args.wal_limit_mib)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_of(args)
    tree = Tree("soak", REPO_ROOT)
    header: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_before": load_now(), "commit": tree.describe(), "config": asdict(cfg),
    }
    print(f"soak {header['date']}: imapd {header['commit']}, {cfg.seconds / 60:g} min, {cfg.clients} clients, "
          f"{cfg.idlers} idlers, {cfg.large_clients} large; load {header['load_before']}", flush=True)
    with imapd_server(tree) as peer:
        try:
            result = asyncio.run(soak(peer, cfg))
        except BaseException:
            print(peer.log_tail(), file=sys.stderr)
            raise
    header["load_after"] = load_now()
    verdict = judge(result.samples, cfg, result.errors)
    print("\n".join(["per command over the run:", *command_lines(result.totals)]))
    for sample in result.error_samples[:10]:
        print(f"  error: {sample[:300]}")
    print(verdict.line, flush=True)
    if args.markdown:
        print("\n" + markdown(header, result.samples, verdict))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "samples": [asdict(s) for s in result.samples],
                                         "verdict": asdict(verdict), "errors": result.errors,
                                         "error_samples": result.error_samples}, indent=1))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())

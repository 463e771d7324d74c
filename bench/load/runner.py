"""Run N concurrent clients for a fixed time and collect figures.

``prepare_mailboxes`` fills ``<prefix>-<n>`` for each client (not timed).
``run_load`` opens every client's session, then measures for
``seconds``: every command's latency (only replies that arrive inside the
window count) and every error (always). A run is bounded by time and by
``max_ops_per_client``.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from bench.load.checks import CheckFailed, WrongData, capabilities_in, require_ok
from bench.load.client import ConnectionLost, ImapClient
from bench.load.stats import CommandFigures, Stats, percentile
from bench.load.wire import Malformed
from bench.load.workload import Target, Worker, quote
from bench import corpus

# The mixed load: operation -> weight (see bench.load.workload).
MIX: dict[str, int] = {
    "fetch-flags": 8, "fetch-envelope": 14, "fetch-bodystructure": 10, "fetch-body": 20,
    "store": 15, "search": 12, "append": 6, "expunge": 6, "noop": 4,
}
SINGLE_MODES = (*MIX, "select", "login")
MODES = ("mixed", *SINGLE_MODES)
FAILURES = (CheckFailed, Malformed, ConnectionLost, TimeoutError, OSError)
PIPELINE_WINDOW = 32


@dataclass(frozen=True, slots=True)
class LoadConfig:
    target: Target
    clients: int = 10
    seconds: float = 30.0
    mode: str = "mixed"
    mailbox_prefix: str = "bench"
    messages: int = 100          # messages per client mailbox
    session_ops: int = 200       # operations before a client logs out and in again
    timeout: float = 60.0        # per command
    seed: int = 1
    max_ops_per_client: int = 1_000_000


@dataclass(slots=True)
class LoadResult:
    mode: str
    clients: int
    window: float
    commands: int
    errors: int
    commands_per_s: float
    figures: list[CommandFigures]
    error_samples: list[str]
    client_cpu_s: float
    p50_ms: float = 0.0          # over every command of the window
    p99_ms: float = 0.0


def mailbox_name(prefix: str, n: int) -> str:
    return f"{prefix}-{n:03d}"


async def login(target: Target, timeout: float = 60.0) -> ImapClient:
    client = await ImapClient.connect(target.host, target.port, timeout)
    text = b"LOGIN " + quote(target.user) + b" " + quote(target.password)
    reply = require_ok(await client.command(text, timeout=timeout), "LOGIN")
    if not capabilities_in(reply):  # they change at login (RFC 3501 §6.2.3)
        require_ok(await client.command(b"CAPABILITY"), "CAPABILITY")
    return client


async def append_pipelined(
    client: ImapClient, mailbox: str, messages: list[bytes], window: int = PIPELINE_WINDOW,
    timeout: float = 300.0,
) -> None:
    """APPEND every message in order; with LITERAL+ up to ``window``
    commands are in flight, otherwise one at a time."""
    header = b"APPEND " + quote(mailbox) + b" {}"
    if b"LITERAL+" not in client.capabilities:
        for data in messages:
            require_ok(await client.command(header, data, timeout=timeout), "APPEND")
        return
    for start in range(0, len(messages), window):
        chunk = messages[start:start + window]
        tags = []
        for data in chunk:
            tag = client.new_tag()
            tags.append(tag)
            client.writer.write(b"".join((
                tag, b" APPEND ", quote(mailbox), b" {%d+}\r\n" % len(data), data, b"\r\n")))
        await client.writer.drain()
        async with asyncio.timeout(timeout):
            pending = set(tags)
            while pending:
                response = await client.read_response()
                if response.kind == "tagged":
                    if response.name != b"OK":
                        raise CheckFailed(f"APPEND: {response.raw[:100]!r}")
                    pending.discard(response.tag)


async def prepare_mailboxes(target: Target, prefix: str, count: int, messages: int, parallel: int = 4) -> None:
    """Create ``count`` mailboxes, each holding corpus messages
    ``0 .. messages-1`` in order (existing mailboxes are recreated)."""
    bodies = [corpus.message(i).data for i in range(messages)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def fill() -> None:
        client = await login(target)
        while not queue.empty():
            name = mailbox_name(prefix, queue.get_nowait())
            await client.command(b"DELETE " + quote(name))  # NO if absent: fine
            require_ok(await client.command(b"CREATE " + quote(name)), f"CREATE {name}")
            await append_pipelined(client, name, bodies)
        await client.command(b"LOGOUT")
        await client.close()

    await asyncio.gather(*(fill() for _ in range(min(parallel, count))))


def _operation(worker: Worker, name: str) -> Callable[[], Awaitable[None]]:
    table: dict[str, Callable[[], Awaitable[None]]] = {
        "fetch-flags": worker.op_fetch_flags, "fetch-envelope": worker.op_fetch_envelope,
        "fetch-bodystructure": worker.op_fetch_bodystructure, "fetch-body": worker.op_fetch_body,
        "store": worker.op_store, "search": worker.op_search, "append": worker.op_append,
        "expunge": worker.op_expunge, "noop": worker.op_noop, "select": worker.op_select,
        "login": worker.op_login_cycle,
    }
    return table[name]


def _choose(worker: Worker, mode: str) -> str:
    if mode != "mixed":
        return mode
    name = worker.rng.choices(list(MIX), weights=list(MIX.values()))[0]
    size = len(worker.model.uids)
    # Keep the mailbox near its initial size: APPENDs and EXPUNGEs balance.
    if name == "append" and size > worker.messages * 3 // 2:
        return "expunge"
    if name == "expunge" and size < worker.messages // 2:
        return "append"
    return name


class _Gate:
    """Counts workers that finished opening their session."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.all_ready = asyncio.Event()
        if count <= 0:
            self.all_ready.set()

    def ready(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.all_ready.set()


async def _drive(
    worker: Worker, mode: str, gate: _Gate, start: asyncio.Event, deadline: list[float], max_ops: int
) -> None:
    stats = worker.stats
    if mode != "login":
        try:
            await worker.open_session()
        except FAILURES as exc:
            stats.error("SESSION", f"{type(exc).__name__}: {exc}")
            worker.abort()
    gate.ready()
    await start.wait()
    done = 0
    while time.monotonic() < deadline[0] and done < max_ops:
        name = _choose(worker, mode)
        try:
            if mode != "login":
                if worker.client is None:
                    await worker.open_session()
                elif worker.ops_in_session >= worker.session_ops:
                    await worker.close_session()
                    await worker.open_session()
            await _operation(worker, name)()
            worker.ops_in_session += 1
        except WrongData as exc:
            stats.error(name, f"{type(exc).__name__}: {exc}")
        except CheckFailed as exc:
            stats.error(name, f"{type(exc).__name__}: {exc}")
            await _resync(worker)
        except FAILURES as exc:
            stats.error(name, f"{type(exc).__name__}: {exc}")
            worker.abort()
            await asyncio.sleep(0.05)
        done += 1
    recording, stats.recording = stats.recording, False
    try:
        await worker.close_session()
    except FAILURES as exc:
        stats.error("LOGOUT", repr(exc))
        worker.abort()
    stats.recording = recording


async def _resync(worker: Worker) -> None:
    """After a wrong answer: relearn the mailbox on the same connection
    (a new session if that fails too)."""
    try:
        if worker.client is not None:
            await worker.sync_all()
    except FAILURES as exc:
        worker.stats.error("SYNC", f"{type(exc).__name__}: {exc}")
        worker.abort()


async def run_load(cfg: LoadConfig) -> LoadResult:
    """Measure ``cfg.mode`` with ``cfg.clients`` clients for ``cfg.seconds``."""
    if cfg.mode not in MODES:
        raise ValueError(f"unknown mode {cfg.mode!r}; one of {', '.join(MODES)}")
    stats = Stats()
    workers = [
        Worker(cfg.target, mailbox_name(cfg.mailbox_prefix, n), stats, random.Random(cfg.seed * 1000 + n),
               messages=cfg.messages, append_pool=cfg.messages, session_ops=cfg.session_ops,
               timeout=cfg.timeout)
        for n in range(cfg.clients)
    ]
    start = asyncio.Event()
    gate = _Gate(len(workers))
    deadline = [float("inf")]
    tasks = [
        asyncio.ensure_future(_drive(w, cfg.mode, gate, start, deadline, cfg.max_ops_per_client))
        for w in workers
    ]
    await asyncio.wait_for(gate.all_ready.wait(), cfg.timeout * 3)
    cpu0 = _cpu_seconds()
    began = time.monotonic()
    stats.recording = True
    deadline[0] = began + cfg.seconds
    start.set()
    await asyncio.sleep(cfg.seconds)
    stats.recording = False
    window = time.monotonic() - began
    cpu = _cpu_seconds() - cpu0
    await asyncio.wait_for(asyncio.gather(*tasks), cfg.timeout * 2)
    every = sorted(v for values in stats.latencies.values() for v in values)
    return LoadResult(
        cfg.mode, cfg.clients, window, len(every), stats.error_count, len(every) / window,
        stats.figures(), list(stats.error_samples), cpu,
        percentile(every, 0.5) * 1000, percentile(every, 0.99) * 1000,
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def format_result(result: LoadResult, title: str = "") -> str:
    lines = [
        f"{title}{result.mode}, {result.clients} clients, {result.window:.1f} s: "
        f"{result.commands_per_s:.1f} commands/s ({result.commands} commands), "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
        f"{result.errors} errors, load-generator CPU {result.client_cpu_s:.1f} s",
        f"  {'command':<18}{'count':>8}{'errors':>8}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for f in result.figures:
        lines.append(
            f"  {f.name:<18}{f.count:>8}{f.errors:>8}{f.p50_ms:>10.2f}{f.p90_ms:>10.2f}"
            f"{f.p99_ms:>10.2f}{f.max_ms:>10.2f}"
        )
    for sample in result.error_samples:
        lines.append(f"  error: {sample[:300]}")
    return "\n".join(lines)

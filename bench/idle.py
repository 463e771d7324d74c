"""Scenario 4: many idle connections, then push latency (RFC 2177 IDLE).

Opens N connections to one server (``Scale.idle_connections``; servers
with one process per connection get ``idle_connections_per_process_servers``),
each LOGIN, SELECT of one shared mailbox, then IDLE when the server
advertises it. Reports server memory per connection (RSS and PSS growth
over the baseline, summed over the server's processes) and, with IDLE,
push latency: a separate connection APPENDs a message; the time from
sending the APPEND until each idler reads ``* n EXISTS``, over
``idle_pushes`` rounds (p50/p99/max, and idlers never notified count as
errors). The latency includes this single asyncio client reading N
sockets on the same 2 cores, which is the same for every server.

A server that does not advertise IDLE gets its memory measured with
selected (not idling) connections, and "skipped: <name> does not
advertise IDLE" for push latency.
"""

from __future__ import annotations

import asyncio
import time

from pathlib import Path

from bench import corpus, profiling
from bench.load import Target, login
from bench.load.checks import CheckFailed, require_ok
from bench.load.client import ConnectionLost, ImapClient
from bench.load.stats import percentile
from bench.load.wire import Malformed
from bench.load.workload import quote
from bench.peers import Peer, PeerOptions, raise_fd_limit, running_peer
from bench.report import Column, PeerFigures, ScenarioReport, progress

MAILBOX = "idle"
OPEN_CONCURRENCY = 64
PUSH_TIMEOUT = 30.0
OPEN_BUDGET = 600.0  # seconds to open the connections; then measure those open
PROCESS_PER_CONNECTION = frozenset({"dovecot"})

COLUMNS = [
    Column("connections", "connections", compared=False), Column("rss_kib_per_conn", "RSS KiB/conn", False),
    Column("pss_kib_per_conn", "PSS KiB/conn", False), Column("open_s", "open s", False),
    Column("push_p50_ms", "push p50 ms", False), Column("push_p99_ms", "push p99 ms", False),
]


async def _open_idler(target: Target, idle: bool) -> ImapClient:
    client = await login(target, timeout=120.0)
    require_ok(await client.command(b"SELECT " + quote(MAILBOX), timeout=120.0), "SELECT")
    if idle:
        tag = client.new_tag()
        await client.send_raw(tag + b" IDLE\r\n")
        async with asyncio.timeout(60.0):
            while (await client.read_response()).kind != "continuation":
                pass
    return client


async def open_idlers(target: Target, count: int, idle: bool, deadline: float) -> tuple[list[ImapClient], int]:
    """Open up to ``count`` idlers (``OPEN_CONCURRENCY`` at a time) before
    ``deadline``; returns them and the number of failures."""
    idlers: list[ImapClient] = []
    failures = 0
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one() -> None:
        nonlocal failures
        async with gate:
            if time.monotonic() > deadline:
                return
            try:
                idlers.append(await _open_idler(target, idle))
            except (CheckFailed, Malformed, ConnectionLost, OSError, TimeoutError):
                failures += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return idlers, failures


async def _await_exists(client: ImapClient, want: int) -> float:
    """Read until ``* n EXISTS`` with n >= want; the perf_counter then."""
    while True:
        response = await client.read_response()
        if response.name == b"EXISTS" and response.number is not None and response.number >= want:
            return time.perf_counter()


async def push_round(idlers: list[ImapClient], pusher: ImapClient, index: int, want: int) -> tuple[list[float], int]:
    """APPEND one message; latency of its EXISTS at every idler (seconds),
    and how many idlers never saw it within ``PUSH_TIMEOUT``."""
    waiters = [asyncio.ensure_future(_await_exists(c, want)) for c in idlers]
    await asyncio.sleep(0.05)  # every waiter is reading before the APPEND leaves
    start = time.perf_counter()
    require_ok(await pusher.command(b"APPEND " + quote(MAILBOX) + b" {}", corpus.message(index, "plain").data), "APPEND")
    done, pending = await asyncio.wait(waiters, timeout=PUSH_TIMEOUT)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)  # reap them: no "never retrieved" noise
    latencies = [t.result() - start for t in done if t.exception() is None]
    return latencies, len(idlers) - len(latencies)


async def _measure(peer: Peer, count: int, pushes: int, row: PeerFigures, profile: Path | None) -> None:
    target = Target(peer.host, peer.port, peer.user, peer.password)
    pusher = await login(target)
    require_ok(await pusher.command(b"CREATE " + quote(MAILBOX)), "CREATE")
    idle = b"IDLE" in pusher.capabilities
    # Warm up one full session so lazily loaded code is not counted per connection.
    warm = await _open_idler(target, False)
    warm.abort()
    await asyncio.sleep(1.0)
    rss0, pss0 = peer.memory_kib()
    began = time.monotonic()
    idlers, failures = await open_idlers(target, count, idle, began + OPEN_BUDGET)
    row.values["open_s"] = time.monotonic() - began
    await asyncio.sleep(2.0)  # let the server settle (Dovecot: processes finish starting)
    rss, pss = peer.memory_kib()
    opened = len(idlers)
    row.values["connections"] = float(opened)
    row.values["rss_kib_per_conn"] = (rss - rss0) / max(1, opened)
    row.values["pss_kib_per_conn"] = (pss - pss0) / max(1, opened)
    row.errors += failures
    if failures:
        row.notes.append(f"{failures} of {count} connections failed to open")
    if opened + failures < count:
        row.notes.append(f"opened {opened:,} of {count:,}: the rest did not fit in the "
                         f"{OPEN_BUDGET:.0f} s budget (opening slows down as connections grow)")
    if not idle:
        row.notes.append(f"push skipped: {peer.name} does not advertise IDLE "
                         "(memory measured with selected, non-idling connections)")
    else:
        latencies: list[float] = []
        spy = profiling.start(peer.process.pid, pushes * 2.0 + 2, profile) if profile else None
        for n in range(pushes):
            got, missed = await push_round(idlers, pusher, 10_000 + n, n + 1)
            latencies += got
            row.errors += missed
            if missed:
                row.notes.append(f"push {n + 1}: {missed} idlers not notified within {PUSH_TIMEOUT:.0f} s")
            await asyncio.sleep(0.5)
        if spy is not None:
            row.notes.append("push " + profiling.finish(spy))
        ordered = sorted(x * 1000 for x in latencies)
        row.values["push_p50_ms"] = percentile(ordered, 0.5)
        row.values["push_p99_ms"] = percentile(ordered, 0.99)
        row.notes.append(f"push max {ordered[-1] if ordered else 0:.0f} ms over {len(ordered)} notifications")
    for client in idlers:
        client.abort()
    await pusher.command(b"LOGOUT")
    await pusher.close()


async def scenario_idle(
    peers: list[str], connections: int, per_process_connections: int, pushes: int,
    profile_dir: Path | None = None,
) -> list[ScenarioReport]:
    limit = raise_fd_limit(max(connections, per_process_connections) * 2 + 2000)
    report = ScenarioReport(f"4. idle connections ({connections:,}; one-process-per-connection servers "
                            f"{per_process_connections:,}), memory and push latency", COLUMNS)
    report.details.append(f"open-files limit of the benchmark (inherited by the servers): {limit}")
    for name in peers:
        count = per_process_connections if name in PROCESS_PER_CONNECTION else connections
        count = min(count, limit - 1000)
        with running_peer(name, PeerOptions(max_connections=count + 100)) as peer:
            row = PeerFigures(name, {}, 0, [])
            try:
                profile = profile_dir / "imapd-push.txt" if profile_dir and name == "imapd" else None
                await _measure(peer, count, pushes, row, profile)
            except (CheckFailed, Malformed, ConnectionLost, OSError, TimeoutError) as exc:
                row.errors += 1
                row.notes.append(f"error: {type(exc).__name__}: {exc}")
            if name in PROCESS_PER_CONNECTION:
                row.notes.append("one process per connection: measured at fewer connections; "
                                 "per-connection memory is what compares")
            report.rows.append(row)
            progress(row)
    return [report]

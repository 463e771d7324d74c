"""The benchmark scenarios of issue 8, each run against every peer.

1. ``mixed``   the checked mixed load (``bench.load``) with 10 and 50
               clients: commands/s, p50/p99 per command, server CPU.
2. ``append``  APPEND throughput, 10 KB and 1 MB messages, durable where
               the server is (see each peer's notes); every APPEND checked,
               the count and one message read back at the end.
3. ``large``   one mailbox of 100k messages: SELECT, ``UID FETCH 1:*
               (FLAGS)``, ``SEARCH TEXT``, QRESYNC resync (RFC 7162) when
               advertised.
4. ``idle``    in ``bench.idle``.
5. ``login``   LOGIN rate with the real argon2id cost (t=3, m=64 MiB, p=4)
               for every peer.

Each function starts each peer in turn (``bench.peers.running_peer``),
measures it and returns ``ScenarioReport``s. Every loop is bounded in count
and time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from bench import corpus, profiling
from bench.load import LoadConfig, Target, format_result, login, prepare_mailboxes, run_load
from bench.load.checks import CheckFailed, require_ok
from bench.load.client import ImapClient
from bench.load.stats import percentile
from bench.load.workload import quote
from bench.peers import Peer, PeerOptions, running_peer
from bench.report import Column, PeerFigures, ScenarioReport


@dataclass(frozen=True, slots=True)
class Scale:
    """How big each scenario is. ``FULL`` is issue 8's; ``QUICK`` is for
    trying the suite out in a minute or two."""

    mixed_clients: tuple[int, ...] = (10, 50)
    mixed_seconds: float = 30.0
    mixed_messages: int = 60
    append_sizes: tuple[int, ...] = (10 * 1024, 1024 * 1024)
    append_clients: int = 4
    append_seconds: float = 15.0
    large_messages: int = 100_000
    large_populate_budget: float = 600.0  # seconds per peer; then measure what is there
    idle_connections: int = 10_000
    idle_connections_per_process_servers: int = 1_000  # Dovecot: one process each
    idle_pushes: int = 5
    login_clients: int = 4
    login_seconds: float = 20.0


FULL = Scale()
QUICK = Scale(
    mixed_clients=(4,), mixed_seconds=5.0, mixed_messages=30, append_clients=2, append_seconds=3.0,
    large_messages=2_000, large_populate_budget=60.0, idle_connections=300,
    idle_connections_per_process_servers=100, idle_pushes=2, login_clients=2, login_seconds=5.0,
)


def target_of(peer: Peer) -> Target:
    return Target(peer.host, peer.port, peer.user, peer.password)


# --- 1. mixed load ------------------------------------------------------------

MIXED_COLUMNS = [
    Column("commands_per_s", "commands/s"), Column("p50_ms", "p50 ms", False),
    Column("p99_ms", "p99 ms", False), Column("cpu_ms_per_command", "srv CPU ms/cmd", False),
]


async def scenario_mixed(peers: list[str], scale: Scale, profile_dir: Path | None) -> list[ScenarioReport]:
    reports = {
        n: ScenarioReport(f"1. mixed load, {n} clients, {scale.mixed_seconds:.0f} s, "
                          f"{scale.mixed_messages} messages per client mailbox", MIXED_COLUMNS)
        for n in scale.mixed_clients
    }
    most = max(scale.mixed_clients)
    for name in peers:
        with running_peer(name) as peer:
            target = target_of(peer)
            await prepare_mailboxes(target, "bench", most, scale.mixed_messages)
            for clients in scale.mixed_clients:
                spy = None
                if profile_dir is not None and name == "imapd":
                    spy = profiling.start(peer.process.pid, scale.mixed_seconds,
                                          profile_dir / f"imapd-mixed-{clients}.txt")
                cpu0 = peer.cpu_seconds()
                result = await run_load(LoadConfig(target, clients=clients, seconds=scale.mixed_seconds,
                                                   messages=scale.mixed_messages))
                cpu = peer.cpu_seconds() - cpu0
                if spy is not None:
                    reports[clients].details.append(profiling.finish(spy))
                reports[clients].rows.append(PeerFigures(name, {
                    "commands_per_s": result.commands_per_s, "p50_ms": result.p50_ms,
                    "p99_ms": result.p99_ms, "cpu_ms_per_command": 1000 * cpu / max(1, result.commands),
                }, result.errors, list(peer.notes)))
                reports[clients].details.append(format_result(result, f"{name}: "))
    return list(reports.values())


# --- 2. APPEND throughput -----------------------------------------------------

APPEND_COLUMNS = [
    Column("messages_per_s", "msg/s"), Column("mb_per_s", "MB/s"),
    Column("p50_ms", "p50 ms", False), Column("p99_ms", "p99 ms", False),
]


async def _append_client(
    target: Target, mailbox: str, pool: list[bytes], deadline: float, latencies: list[float],
) -> int:
    client = await login(target)
    require_ok(await client.command(b"CREATE " + quote(mailbox)), "CREATE")
    count = 0
    while time.monotonic() < deadline and count < 1_000_000:
        reply = await client.command(b"APPEND " + quote(mailbox) + b" {}", pool[count % len(pool)])
        require_ok(reply, "APPEND")
        latencies.append(reply.elapsed)
        count += 1
    status = require_ok(await client.command(b"STATUS " + quote(mailbox) + b" (MESSAGES)"), "STATUS")
    values = status.of(b"STATUS")[0].values
    counts = values[1] if len(values) > 1 and isinstance(values[1], list) else []
    if counts[1:2] != [b"%d" % count]:
        raise CheckFailed(f"STATUS after {count} APPENDs: {counts!r}")
    require_ok(await client.command(b"SELECT " + quote(mailbox)), "SELECT")
    body = require_ok(await client.command(b"FETCH %d (BODY.PEEK[])" % count), "FETCH")
    if pool[(count - 1) % len(pool)] not in body.of(b"FETCH")[0].raw:
        raise CheckFailed("the last appended message reads back different")
    await client.command(b"LOGOUT")
    await client.close()
    return count


async def scenario_append(peers: list[str], scale: Scale) -> list[ScenarioReport]:
    reports: list[ScenarioReport] = []
    for size in scale.append_sizes:
        label = f"{size // 1024} KB" if size < 1024 * 1024 else f"{size // (1024 * 1024)} MB"
        report = ScenarioReport(f"2. APPEND throughput, {label} messages, {scale.append_clients} clients, "
                                f"{scale.append_seconds:.0f} s", APPEND_COLUMNS)
        pool = [corpus.sized_message(i, size) for i in range(8 if size >= 1 << 20 else 64)]
        for name in peers:
            with running_peer(name) as peer:
                latencies: list[float] = []
                began = time.monotonic()
                deadline = began + scale.append_seconds
                errors = 0
                try:
                    counts = await asyncio.gather(*(
                        _append_client(target_of(peer), f"append-{n}", pool, deadline, latencies)
                        for n in range(scale.append_clients)))
                except (CheckFailed, OSError, TimeoutError) as exc:
                    counts, errors = [len(latencies)], 1
                    report.details.append(f"{name}: {type(exc).__name__}: {exc}")
                window = max(time.monotonic() - began, scale.append_seconds)
                ordered = sorted(lat * 1000 for lat in latencies)
                total = sum(counts)
                report.rows.append(PeerFigures(name, {
                    "messages_per_s": total / window, "mb_per_s": total * size / window / 1e6,
                    "p50_ms": percentile(ordered, 0.5), "p99_ms": percentile(ordered, 0.99),
                }, errors, list(peer.notes)))
        reports.append(report)
    return reports


# --- 5. login rate -------------------------------------------------------------

LOGIN_COLUMNS = [
    Column("logins_per_s", "logins/s"), Column("p50_ms", "LOGIN p50 ms", False),
    Column("p99_ms", "LOGIN p99 ms", False),
]


async def scenario_login(peers: list[str], scale: Scale) -> list[ScenarioReport]:
    report = ScenarioReport(
        f"5. login rate, argon2id t=3 m=64MiB p=4 for every server, {scale.login_clients} clients, "
        f"{scale.login_seconds:.0f} s (connect, LOGIN, LOGOUT)", LOGIN_COLUMNS)
    for name in peers:
        with running_peer(name, PeerOptions(hash_cost="real")) as peer:
            result = await run_load(LoadConfig(target_of(peer), clients=scale.login_clients,
                                               seconds=scale.login_seconds, mode="login"))
            figures = {f.name: f for f in result.figures}
            logins = figures.get("LOGIN")
            report.rows.append(PeerFigures(name, {
                "logins_per_s": (logins.count if logins else 0) / result.window,
                "p50_ms": logins.p50_ms if logins else 0.0, "p99_ms": logins.p99_ms if logins else 0.0,
            }, result.errors, []))
            if result.errors:
                report.details.append(format_result(result, f"{name}: "))
    return [report]



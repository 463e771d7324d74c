"""Kill tests over PostgreSQL (issue 14, "Tests and CI").

Two ``imapd serve`` frontends over one PostgreSQL database
(``tests/support/postgres.py``), four clients appending (MULTIAPPEND pairs)
and storing flags through both (``tests/e2e/pg_load.py`` keeps the ledger
of what was acknowledged), and then:

* SIGKILL one frontend under the load: its clients lose their connection
  and carry on through the other one; a frontend started afterwards reads
  the same mailbox;
* stop PostgreSQL (immediate: a crash, WAL replay at the next start) under
  the load, keep it down for a while, start it again: while it is down the
  clients get ``NO [UNAVAILABLE]`` (RFC 5530 §3) or wait, never BAD, never
  a dropped connection; the frontends reconnect by themselves (APPENDs
  succeed again, and IDLE on one frontend hears another's APPEND, so the
  LISTEN connection came back or the periodic catch-up covers it).

After each: every acknowledged APPEND is present at the UID its APPENDUID
named (RFC 4315 §3), nothing is there twice or unasked, UIDs are strictly
ascending, no MULTIAPPEND is half there (RFC 3502 §6.3.11) and no
acknowledged STORE is missing or half applied.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.load.checks import require_ok
from tests.e2e.frontends import (
    Frontend, add_user, frontends, percentiles, session, start_frontend, start_idle, stop_idle,
    store_url, tracebacks, untagged, wait_for, write_figure,
)
from tests.e2e.pg_load import Ledger, Loader, acked_since, message, read_mailbox, run_load, until, verify
from tests.support.pinned_skips import Pin
from tests.support.postgres import MISSING, Cluster, postgres_cluster, postgres_dsn  # noqa: F401 (fixtures)
from tests.support.server import stop_process

PINNED_SKIPS = (Pin.exact(MISSING, "PostgreSQL binaries are a CI dependency (.ci/run)", in_ci=False),)
LOADERS = 4
RECOVERY_BOUND = 15.0  # seconds for every client to get an OK again
PUSH_BOUND = 5.0
OUTAGE = 1.5  # seconds PostgreSQL stays down


def loaders_over(fronts: list[Frontend], ledger: Ledger) -> list[Loader]:
    return [Loader(f"l{i}", fronts, i % len(fronts), ledger) for i in range(LOADERS)]


def test_sigkill_a_frontend_under_load(tmp_path: Path, postgres_dsn: str) -> None:
    url = store_url(postgres_dsn)
    add_user(url, None)
    ledger = Ledger()
    with frontends(tmp_path, url, 2) as (a, b):
        loaders = loaders_over([a, b], ledger)
        on_a = [loader.name for loader in loaders if loader.at == 0]

        async def scenario() -> list[tuple[int, str, set[str]]]:
            stop = asyncio.Event()
            load = asyncio.ensure_future(run_load(loaders, stop))
            await until(lambda: all(acked_since(ledger, n, 0) >= 3 for n in on_a),
                        "the clients on A append through A", RECOVERY_BOUND)
            a.kill()
            killed = time.perf_counter()
            await until(lambda: all(acked_since(ledger, n, killed) >= 3 for n in on_a),
                        "the clients of the killed frontend append through B", RECOVERY_BOUND)
            stop.set()
            await load
            return await read_mailbox(b)

        mailbox = asyncio.run(scenario())
        assert b.alive() and not tracebacks(b), tracebacks(b)
        again = start_frontend(tmp_path, url, "fe-a-again")
        try:
            assert asyncio.run(read_mailbox(again)) == mailbox
        finally:
            stop_process(again.process)
    assert all(ledger.lost[name] >= 1 for name in on_a), ledger.lost
    assert not ledger.errors, ledger.errors[:10]
    assert verify(ledger, mailbox) == []
    write_figure("SIGKILL a frontend under load",
                 f"{len(ledger.acked)} acknowledged messages, {len(ledger.unknown)} unknown, "
                 f"statuses {dict(ledger.statuses)}, connections lost {dict(ledger.lost)}")


async def push_after_restart(idle_at: Frontend, write_at: Frontend, ledger: Ledger) -> float:
    """IDLE on ``idle_at``; an APPEND on ``write_at`` (into ``ledger``);
    seconds until the idler reads the new EXISTS."""
    idler = await session(idle_at)
    tag = await start_idle(idler)
    writer = await session(write_at, None)
    started = time.perf_counter()
    reply = require_ok(await writer.command(b"APPEND INBOX {}", message("after-restart")), "APPEND")
    ledger.acked["after-restart"] = int((reply.code or b"").split()[2])
    try:
        # The load has stopped: any EXISTS now is this APPEND's.
        arrived = await wait_for(idler, untagged(b"EXISTS"), PUSH_BOUND)
    except TimeoutError:
        raise AssertionError(f"after the restart, IDLE on {idle_at.name} did not hear an APPEND "
                             f"on {write_at.name} within {PUSH_BOUND} s") from None
    await stop_idle(idler, tag)
    await idler.close()
    await writer.close()
    return arrived - started


def test_postgres_restart_under_load(tmp_path: Path, postgres_cluster: Cluster, postgres_dsn: str) -> None:
    url = store_url(postgres_dsn)
    add_user(url, None)
    ledger = Ledger()
    with frontends(tmp_path, url, 2) as (a, b):
        loaders = loaders_over([a, b], ledger)
        names = [loader.name for loader in loaders]

        async def scenario() -> tuple[list[tuple[int, str, set[str]]], list[float], float]:
            stop = asyncio.Event()
            load = asyncio.ensure_future(run_load(loaders, stop))
            await until(lambda: all(acked_since(ledger, n, 0) >= 3 for n in names),
                        "every client appends", RECOVERY_BOUND)
            await asyncio.to_thread(postgres_cluster.stop, "immediate")
            await asyncio.sleep(OUTAGE)  # the clients keep sending while it is down
            await asyncio.to_thread(postgres_cluster.start)
            back = time.perf_counter()
            await until(lambda: all(acked_since(ledger, n, back) >= 2 for n in names),
                        "every client appends again after PostgreSQL came back", RECOVERY_BOUND)
            recovery = [min(t for t in ledger.ok_times[n] if t > back) - back for n in names]
            stop.set()
            await load
            push = await push_after_restart(a, b, ledger)
            return await read_mailbox(a), recovery, push

        mailbox, recovery, push = asyncio.run(scenario())
        assert a.alive() and b.alive()
        assert not tracebacks(a, b), tracebacks(a, b)
    assert not ledger.errors, ledger.errors[:10]
    assert sum(ledger.lost.values()) == 0, f"connections dropped: {dict(ledger.lost)}"
    assert verify(ledger, mailbox) == []
    p50, _, top = percentiles(recovery)
    write_figure("PostgreSQL stopped 1.5 s under load",
                 f"statuses {dict(ledger.statuses)}; first OK after the start: p50 {p50:.0f} ms, "
                 f"max {top:.0f} ms; push after restart {1000 * push:.0f} ms; {len(ledger.acked)} acknowledged, "
                 f"{len(ledger.unknown)} unknown")

"""Two sessions of the stress checker's own client on the real server, for
short hand-written scenarios (issue 11): ``tests/e2e/test_stress_sessions.py``
and ``tests/e2e/test_stress.py``.

    async def scenario(pair: Pair) -> None:
        await pair.a.connect()
        await pair.b.connect()
        await pair.b.run([command(b"APPEND INBOX ($New) {5+}\\r\\nhello")])
        await pair.a.run([command(b"NOOP")])

    pair = run_pair(tmp_path, scenario)  # both log out; the checker found nothing
    assert "$new" in pair.a.model.flags_list
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

from tests.support.server import RunningServer
from tests.support.stress import stress_server
from tests.support.stress_client import Command, Stats, StressClient

USER, PASSWORD = "alice", "wonderland"


class Pair:
    """Two sessions of the checker's client; their findings in ``found``."""

    def __init__(self, server: RunningServer) -> None:
        self.found: list[tuple[str, str, str]] = []
        stats = Stats()
        address, credentials = (server.host, server.port), (USER, PASSWORD)
        self.a = StressClient("A", address, credentials, stats, self.sink)
        self.b = StressClient("B", address, credentials, stats, self.sink)

    def sink(self, client: str, kind: str, detail: str) -> None:
        self.found.append((client, kind, detail))


def command(text: bytes) -> Command:
    verb = text.split(b" ", 1)[0].decode()
    return Command(verb, verb, text)


def run_pair(tmp_path: Path, scenario: Callable[[Pair], Awaitable[None]]) -> Pair:
    """Run ``scenario`` on a fresh server, then log both sessions out (a
    session never connected is skipped); fails if the checker's
    per-response rules (``stress_model``) found anything. The pair is
    returned for the test's own assertions on the clients' models."""
    async def scenario_then_logout(pair: Pair) -> None:
        await scenario(pair)
        await pair.a.logout()
        await pair.b.logout()

    with stress_server(tmp_path, USER, PASSWORD) as server:
        pair = Pair(server)
        asyncio.run(scenario_then_logout(pair))
    assert pair.found == []
    return pair

"""Multi-session stress checker over real sockets (issue 11).

N clients (``StressClient``, the checker's own IMAP code) select one
mailbox and run random pipelined commands from a fixed seed
(``stress_ops``); each keeps a model built only from what the server told
it, checked response by response (``stress_model``). Every
``checkpoint_every`` seconds all clients stop and a **checkpoint** runs:

1. every client sends NOOP, so it has been told everything (RFC 3501 §6.1.2);
2. a fresh connection EXAMINEs the mailbox and fetches every UID and flag:
   the store's truth (EXAMINE claims no ``\\Recent``, RFC 3501 §6.3.2);
3. each client's EXISTS, seq→UID map, flags per UID and FLAGS list (which
   must name every keyword in use, RFC 3501 §7.2.6) are compared with it;
4. every client fetches ``1:* (UID FLAGS)``; then the messages it sees with
   ``\\Recent`` must number its RECENT (§7.3.2), no message may be recent
   in two read-write sessions (§2.3.2), their RECENT counts add up to at
   most the mailbox size, and the fresh EXAMINE saw RECENT 0 when a
   read-write session had been told about every message; the comparison of
   step 3 is repeated.

With ``qresync`` the clients ENABLE QRESYNC (VANISHED instead of EXPUNGE)
and some disconnect and come back with ``SELECT INBOX (QRESYNC (...))``
(RFC 7162 §3.2.5), which must give them the same state.

    report = run_stress("127.0.0.1", port, StressConfig(clients=10, seconds=5))
    assert not report.inconsistencies, report.summary()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from tests.support.server import RunningServer, run_cli, running_server
from tests.support.stress_checks import compare_with_truth, recent_checks
from tests.support.stress_client import ClientFailed, Command, Stats, StressClient, seeded
from tests.support.stress_ops import Chooser, Special, StressConfig

MAX_DETAILS = 300
CHEAP_ARGON2 = "t=1,m=64,p=1"  # clients log in often (QRESYNC reconnects); hashing is not under test


@dataclass
class Inconsistency:
    client: str
    kind: str
    detail: str
    phase: str

    def __str__(self) -> str:
        return f"[{self.phase}] {self.client}: {self.kind}: {self.detail}"


@dataclass
class Report:
    """What a run did and found. ``inconsistencies`` keeps the first
    ``MAX_DETAILS``; ``kinds`` counts all of them by kind."""

    config: StressConfig
    stats: Stats = field(default_factory=Stats)
    inconsistencies: list[Inconsistency] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    checkpoints: int = 0
    elapsed: float = 0.0
    failed_clients: list[str] = field(default_factory=list)

    @property
    def total_inconsistencies(self) -> int:
        return sum(self.kinds.values())

    @property
    def operations(self) -> int:
        return sum(self.stats.operations.values())

    def ops_per_second(self) -> float:
        return self.operations / self.elapsed if self.elapsed else 0.0

    def percentiles(self) -> dict[str, tuple[float, float]]:
        """Per command name: (p50, p99) latency in seconds."""
        out: dict[str, tuple[float, float]] = {}
        for name, values in sorted(self.stats.latencies.items()):
            ordered = sorted(values)
            out[name] = (ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])
        return out

    def examples(self, per_kind: int = 3) -> list[Inconsistency]:
        """The first few inconsistencies of each kind."""
        shown: Counter[str] = Counter()
        out: list[Inconsistency] = []
        for item in self.inconsistencies:
            shown[item.kind] += 1
            if shown[item.kind] <= per_kind:
                out.append(item)
        return out

    def summary(self) -> str:
        config = self.config
        lines = [
            f"{config.clients} clients, {self.elapsed:.1f} s, seed {config.seed}, "
            f"qresync {config.qresync}: {self.operations} commands ({self.ops_per_second():.0f}/s), "
            f"{self.checkpoints} checkpoints, {self.total_inconsistencies} inconsistencies",
            "by kind: " + ", ".join(f"{kind} {count}" for kind, count in self.kinds.most_common()),
            "rejected (NO/BAD): " + ", ".join(f"{k} {v}" for k, v in self.stats.rejected.most_common()),
        ]
        lines += [f"  {name}: {self.stats.operations[name]} ops, p50 {p50 * 1000:.1f} ms, "
                  f"p99 {p99 * 1000:.1f} ms" for name, (p50, p99) in self.percentiles().items()]
        lines += [f"  {item}" for item in self.examples()]
        lines += [f"  sample rejection: {text}" for text in self.stats.rejection_samples[:5]]
        if self.failed_clients:
            lines.append("failed clients: " + ", ".join(self.failed_clients))
        return "\n".join(lines)


class StressRun:
    """One run against a server at ``address``."""

    def __init__(self, address: tuple[str, int], config: StressConfig) -> None:
        self.address = address
        self.config = config
        self.report = Report(config)
        self.phase = "setup"
        self.clients: list[StressClient] = []

    def sink(self, client: str, kind: str, detail: str) -> None:
        self.report.kinds[kind] += 1
        if len(self.report.inconsistencies) < MAX_DETAILS:
            self.report.inconsistencies.append(Inconsistency(client, kind, detail, self.phase))

    def new_client(self, name: str, qresync: bool, stats: Stats | None = None) -> StressClient:
        """A client; ``stats``: where its commands count (default: the report's)."""
        credentials = (self.config.user, self.config.password)
        return StressClient(name, self.address, credentials, stats or self.report.stats, self.sink,
                            qresync=qresync)

    async def main(self) -> Report:
        started = time.perf_counter()
        await self.fill()
        config = self.config
        self.clients = [self.new_client(f"c{i}", config.qresync) for i in range(config.clients)]
        await asyncio.gather(*(self.connect(client) for client in self.clients))
        choosers = [Chooser(c.name, seeded(config.seed, i), config) for i, c in enumerate(self.clients)]
        end = time.perf_counter() + config.seconds
        while (now := time.perf_counter()) < end:
            self.phase = f"run {self.report.checkpoints + 1}"
            deadline = min(end, now + config.checkpoint_every)
            await asyncio.gather(*(self.drive(c, ch, deadline) for c, ch in zip(self.clients, choosers)))
            await self.checkpoint()
        await asyncio.gather(*(client.logout() for client in self.live()))
        self.report.failed_clients = [client.name for client in self.clients if client.failed]
        self.report.elapsed = time.perf_counter() - started
        return self.report

    async def connect(self, client: StressClient) -> None:
        """Connect a client; one that cannot is left out (and reported)."""
        try:
            await client.connect()
        except ClientFailed:
            client.failed = True
        except OSError as error:
            client.failed = True
            self.sink(client.name, "connection-lost", repr(error))

    def live(self) -> list[StressClient]:
        return [client for client in self.clients if not client.failed]

    async def fill(self) -> None:
        """The mailbox starts with ``initial_messages`` (appended)."""
        setup = self.new_client("setup", False, Stats())
        await setup.connect()
        chooser = Chooser("setup", seeded(self.config.seed, -1), self.config)
        appends = [chooser.command("APPEND", setup.model) for _ in range(self.config.initial_messages)]
        await setup.run(appends)
        await setup.logout()

    async def drive(self, client: StressClient, chooser: Chooser, deadline: float) -> None:
        """Random steps until the deadline (the step under way finishes)."""
        while not client.failed and time.perf_counter() < deadline:
            try:
                await self.perform(client, chooser.step(client.model))
            except ClientFailed:
                return
            except (ConnectionError, OSError) as error:
                client.failed = True
                self.sink(client.name, "connection-lost", repr(error))

    async def perform(self, client: StressClient, step: list[Command] | Special) -> None:
        if isinstance(step, list):
            await client.run(step)
        elif step.kind == "idle":
            await client.idle(step.seconds)
        elif step.kind == "select":
            await client.select(examine=step.examine)
        else:
            await self.reconnect(client, step.seconds, "known" if step.known_uids else "all")

    async def reconnect(self, client: StressClient, offline: float, resync: str) -> None:
        """Learn every UID, go away for ``offline`` seconds while the others
        work, come back with SELECT (QRESYNC ...) (RFC 7162 §3.2.5)."""
        for _ in range(3):
            unknown = [str(seq) for seq, m in enumerate(client.model.messages, 1) if m.uid is None]
            if not unknown:
                break
            await client.run([Command("FETCH", "FETCH", f"FETCH {','.join(unknown)} (UID FLAGS)".encode())])
        await client.logout()
        await asyncio.sleep(offline)
        await client.connect(resync=resync)
        client.stats.operations["reconnect"] += 1

    async def checkpoint(self) -> None:
        """See the module docstring."""
        self.report.checkpoints += 1
        self.phase = f"checkpoint {self.report.checkpoints}"
        # Named apart so the random commands' latencies stay their own.
        await self._all(lambda c: [Command("checkpoint NOOP", "NOOP", b"NOOP")])
        truth = await self.truth()
        models = {client.name: client.model for client in self.live()}
        for name, model in models.items():
            for kind, detail in compare_with_truth(model, truth.model):
                self.sink(name, kind, detail)
        refetch = [Command("checkpoint FETCH", "FETCH", b"FETCH 1:* (UID FLAGS)")]
        await self._all(lambda c: refetch if c.model.messages else [])
        for name, kind, detail in recent_checks(models, truth.model):
            self.sink(name, kind, detail)
        for name, model in models.items():
            for kind, detail in compare_with_truth(model, truth.model):
                self.sink(name, kind + "-after-refetch", detail)

    async def _all(self, commands: Callable[[StressClient], list[Command]]) -> None:
        """Every live client runs its batch, concurrently."""

        async def one(client: StressClient) -> None:
            batch = commands(client)
            if batch:
                try:
                    await client.run(batch)
                except ClientFailed:
                    pass
        await asyncio.gather(*(one(client) for client in self.live()))

    async def truth(self) -> StressClient:
        """The mailbox as a fresh session sees it (EXAMINE + UID FETCH 1:*)."""
        truth = self.new_client("truth", False, Stats())
        await truth.connect(examine=True)
        await truth.logout()
        return truth


def run_stress(host: str, port: int, config: StressConfig) -> Report:
    """Run the checker against a server (see the module docstring)."""
    return asyncio.run(StressRun((host, port), config).main())


@contextlib.contextmanager
def stress_server(tmp_path: Path, user: str = "alice", password: str = "wonderland") -> Iterator[RunningServer]:
    """The real server on a loopback port, its one user with a cheap hash."""
    data = tmp_path / "imapd-data"
    run_cli("user", "add", user, "--password-stdin", "--argon2", CHEAP_ARGON2, "--data", str(data),
            stdin=password + "\n")
    # Room for many clients of one user from one address (defaults: 32, 64).
    limits = ["--max-connections-per-user", "1000", "--max-connections-per-ip", "1000"]
    with running_server(tmp_path, {}, limits) as server:
        yield server

"""Several ``imapd serve`` processes over one store, for the issue 14 e2e tests.

Each frontend is a real ``python -m imapd serve`` subprocess with its own
data directory (standing for a machine) and its own loopback port; with
``store`` they all share one PostgreSQL database (``--store
postgresql://...``), without it they use the SQLite store in their data
directory (``--workers N`` shares one directory between N processes).
Users are made with ``imapd user add --store URL`` (in PostgreSQL) or
``--data DIR``.

The async helpers drive sessions with the benchmark's checked client
(``bench.load.client.ImapClient``: every response is parsed under the
RFC 3501 §9 grammar), so a malformed answer fails the test.

    url = store_url(postgres_dsn)
    add_user(url, None)
    with frontends(tmp_path, url, 2) as (a, b):
        client = await session(a)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from bench.load.checks import require_ok
from bench.load.client import ImapClient
from bench.load.wire import Response
from tests.support.server import (
    LOOPBACK_ENDPOINT, _pump_output, _wait_for_listening, imapd_command, run_cli, stop_process,
    subprocess_env,
)
from tests.support.stress import CHEAP_ARGON2

USER, PASSWORD = "alice", "wonderland"
# Room for many sessions of one user from one address (defaults: 32, 64).
LIMITS = ("--max-connections-per-user", "1000", "--max-connections-per-ip", "1000")
Predicate = Callable[[Response], bool]


def store_url(dsn: str) -> str:
    """A libpq key=value DSN (the cluster fixture's) as the
    ``postgresql://user@host:port/dbname`` URL ``--store`` takes."""
    parts = dict(item.split("=", 1) for item in dsn.split())
    return f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"


def add_user(store: str | None, data: Path | None, name: str = USER, password: str = PASSWORD) -> None:
    """``imapd user add`` in the PostgreSQL store ``store`` or the SQLite
    store of ``data`` (cheap argon2id: logins are not under test)."""
    where = ["--store", store] if store else ["--data", str(data)]
    run_cli("user", "add", name, "--password-stdin", "--argon2", CHEAP_ARGON2, *where, stdin=password + "\n")


@dataclass
class Frontend:
    """One ``imapd serve`` process (with its workers, if any)."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL the process (a machine that dies: no shutdown at all)."""
        self.process.kill()
        self.process.wait(30)

    def alive(self) -> bool:
        return self.process.poll() is None


def start_frontend(workdir: Path, store: str | None, name: str, *, port: int = 0,
                   extra: Sequence[str] = (), timeout: float = 30.0) -> Frontend:
    """Start ``imapd serve`` with its data directory under ``workdir/name``
    on 127.0.0.1:``port`` (0: an ephemeral one, learnt from the log)."""
    data = workdir / name
    data.mkdir(parents=True, exist_ok=True)
    endpoint = LOOPBACK_ENDPOINT.replace("tcp:0:", f"tcp:{port}:")
    argv = imapd_command("serve", "--data", str(data), "--imap", endpoint, "--imaps", "none", *LIMITS,
                         *(["--store", store] if store else []), *extra)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=subprocess_env(), cwd=workdir)
    lines: list[str] = []
    events: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump_output, args=(process, lines, events), daemon=True).start()
    try:
        host, bound = _wait_for_listening(process, events, lines, timeout)
    except BaseException:
        stop_process(process)
        raise
    return Frontend(name, host, bound, process, lines)


@contextlib.contextmanager
def frontends(workdir: Path, store: str | None, count: int, *,
              extra: Sequence[str] = ()) -> Iterator[list[Frontend]]:
    """``count`` frontends (``fe-a``, ``fe-b``, ...) over ``store``;
    SIGTERM for each at the end (a killed one is already gone)."""
    started: list[Frontend] = []
    try:
        for i in range(count):
            started.append(start_frontend(workdir, store, f"fe-{'abcdefgh'[i]}", extra=extra))
        yield started
    finally:
        for frontend in started:
            stop_process(frontend.process)


def tracebacks(*fronts: Frontend) -> str:
    """The log lines of ``fronts`` from the first ``Traceback`` on, if any."""
    out = []
    for frontend in fronts:
        text = frontend.log()
        if "Traceback" in text:
            out.append(f"--- {frontend.name}:\n" + text[text.index("Traceback") - 400:][:3000])
    return "\n".join(out)


# --- sessions ---------------------------------------------------------------

async def session(frontend: Frontend, select: str | None = "INBOX", *, user: str = USER,
                  password: str = PASSWORD, timeout: float = 30.0) -> ImapClient:
    """A logged-in session on ``frontend`` with ``select`` selected."""
    client = await ImapClient.connect(frontend.host, frontend.port, timeout)
    require_ok(await client.command(f"LOGIN {user} {password}".encode(), timeout=timeout), "LOGIN")
    if select is not None:
        require_ok(await client.command(b"SELECT " + select.encode(), timeout=timeout), "SELECT")
    return client


async def start_idle(client: ImapClient, timeout: float = 30.0) -> bytes:
    """Send IDLE (RFC 2177 §3) and wait for the continuation; returns the tag."""
    tag = client.new_tag()
    await client.send_raw(tag + b" IDLE\r\n")
    async with asyncio.timeout(timeout):
        while (await client.read_response()).kind != "continuation":
            pass
    return tag


async def stop_idle(client: ImapClient, tag: bytes, timeout: float = 30.0) -> list[Response]:
    """DONE, and the untagged responses up to IDLE's tagged OK."""
    await client.send_raw(b"DONE\r\n")
    seen: list[Response] = []
    async with asyncio.timeout(timeout):
        while True:
            response = await client.read_response()
            if response.kind == "tagged" and response.tag == tag:
                assert response.name == b"OK", response.raw
                return seen
            seen.append(response)


async def wait_for(client: ImapClient, wanted: Predicate, timeout: float) -> float:
    """Read responses until one satisfies ``wanted``; its arrival time
    (``time.perf_counter``). TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            response = await client.read_response()
            if wanted(response):
                return time.perf_counter()


def untagged(name: bytes, number: int | None = None, contains: bytes = b"") -> Predicate:
    """``* [number] NAME ...`` whose raw text contains ``contains``."""
    def match(response: Response) -> bool:
        return (response.kind == "untagged" and response.name == name
                and (number is None or response.number == number) and contains in response.raw)
    return match


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in milliseconds (nearest rank)."""
    ordered = sorted(1000 * s for s in seconds)
    if not ordered:
        return 0.0, 0.0, 0.0
    return (ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            ordered[-1])


def write_figure(name: str, text: str) -> None:
    """Print a measured figure (``pytest -s`` shows it) and append it to
    ``$IMAPD_FIGURES`` when set, for the report."""
    print(f"\n[{name}] {text}")
    target = os.environ.get("IMAPD_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as sink:
            sink.write(f"{name}: {text}\n")

"""Several frontends (issue 14): imapd on SQLite and PostgreSQL, 1 and 2
worker processes, against Dovecot, in one run.

    .venv/bin/python -m bench.frontends_bench                 # full (~10 min)
    .venv/bin/python -m bench.frontends_bench --quick         # small (~2 min)
    .venv/bin/python -m bench.frontends_bench --update-doc docs/benchmarks.md --json /tmp/frontends.json

(a) The checked mixed load of issue 8 (``bench.load``) against each of:
``sqlite-1`` (``imapd serve``, SQLite in its data directory, one
process), ``sqlite-2`` (``--workers 2``: two processes sharing the port
and the data directory), ``postgres-2`` (``--workers 2 --store
postgresql://...``) and Dovecot (``bench.peers``): commands/s, p50/p99,
server CPU per command (all processes of a server), and the ratios to
Dovecot and to ``sqlite-1``.

(b) Cross-frontend push latency: two separate ``imapd serve`` processes
on two ports over one store (standing for two machines); ``--idlers``
sessions IDLE (RFC 2177) on frontend B; APPENDs on frontend A; the time
from sending each APPEND to each idler's ``* n EXISTS`` (``bench.idle``'s
code), p50/p99/max, for PostgreSQL (LISTEN/NOTIFY doorbell) and for SQLite
(two processes on one data directory: the ``PRAGMA data_version`` poller).

PostgreSQL is a throwaway cluster made for the run (``initdb`` in a temp
directory with Debian's binaries, fsync on; the helper of
tests/support/postgres.py), one fresh database per measurement. The
machine's 2 cores are shared by the load generator, the servers and
PostgreSQL; figures move with the load, ratios within a run hold better.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from bench import idle
from bench.load import LoadConfig, Target, login, prepare_mailboxes, run_load
from bench.load.checks import CheckFailed, require_ok
from bench.load.client import ConnectionLost
from bench.load.stats import percentile
from bench.load.wire import Malformed
from bench.load.workload import quote
from bench.peers import (
    HASH_COSTS, REPO_ROOT, Peer, PeerOptions, _children, _stat_fields, _wait_for_port, free_port,
    running_peer, stop_process, unavailable, versions,
)
from bench.hallway_report import fmt, ratio
from bench.report import machine

FAILURES = (CheckFailed, Malformed, ConnectionLost, OSError, TimeoutError)
IMAPD_SETUPS = ("sqlite-1", "sqlite-2", "postgres-2")
BEGIN_MARK = "<!-- frontends-bench:latest:begin -->"
END_MARK = "<!-- frontends-bench:latest:end -->"
SECTION = "## Several frontends (issue 14)"
PUSH_STORES = ("postgres", "sqlite")


@dataclass(frozen=True, slots=True)
class Scale:
    mixed_clients: tuple[int, ...] = (10, 50)
    mixed_seconds: float = 30.0
    mixed_messages: int = 60
    idlers: int = 200
    push_rounds: int = 20


FULL = Scale()
QUICK = Scale(mixed_clients=(4,), mixed_seconds=5.0, mixed_messages=30, idlers=20, push_rounds=5)


# --- PostgreSQL -----------------------------------------------------------------

class Postgres:
    """A throwaway cluster for the run (tests/support/postgres.py's
    ``Cluster``: initdb in a temp dir, as ``postgres`` when root)."""

    def __init__(self) -> None:
        from tests.support.postgres import Cluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not installed (apt-get install postgresql)")
        self.cluster = Cluster(bindir)
        self.cluster.create()
        self.version = bindir.parent.name

    def fresh_url(self) -> str:
        """A new database with the imapd schema, as a ``postgresql://`` URL."""
        parts = dict(item.split("=", 1) for item in self.cluster.fresh_database().split())
        return f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"

    def cpu_seconds(self) -> float:
        """CPU time of the postmaster and its backends (live ones, and the
        reaped ones through the postmaster's cutime/cstime)."""
        try:
            pid = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        main = _stat_fields(pid)
        total = sum(int(v) for v in main[11:15]) if main else 0
        for child in _children(pid):
            fields = _stat_fields(child)
            if fields:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def destroy(self) -> None:
        self.cluster.destroy()


# --- imapd servers --------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), IMAPD_ALLOW_ROOT="1")
    env.pop("IMAPD_DATA", None)
    return env


def add_user(options: PeerOptions, data: Path, store: str | None) -> None:
    t, m, p = HASH_COSTS[options.hash_cost]
    where = ["--store", store] if store else ["--data", str(data)]
    subprocess.run([sys.executable, "-m", "imapd", "user", "add", options.user, "--password-stdin",
                    "--argon2", f"t={t},m={m},p={p}", *where], input=options.password + "\n", text=True,
                   env=_env(), check=True, capture_output=True, timeout=120)


def start_imapd(workdir: Path, name: str, data: Path, store: str | None, workers: int,
                options: PeerOptions) -> Peer:
    """``python -m imapd serve`` (this checkout) on a fresh loopback port;
    the log goes to ``workdir/name.log``."""
    port, limit, log = free_port(), str(options.max_connections), workdir / f"{name}.log"
    argv = [sys.executable, "-m", "imapd", "serve", "--data", str(data),
            "--imap", f"tcp:{port}:interface=127.0.0.1", "--imaps", "none", "--log-level", "warn",
            "--max-connections", limit, "--max-connections-per-ip", limit, "--max-connections-per-user", limit]
    argv += (["--store", store] if store else []) + (["--workers", str(workers)] if workers > 1 else [])
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=_env(), cwd=workdir)
    try:
        _wait_for_port(process, port, log)
    except BaseException:
        stop_process(process)
        raise
    store_note = "PostgreSQL (fsync on, synchronous_commit on)" if store else "SQLite, synchronous=FULL"
    return Peer(name, "127.0.0.1", port, options.user, options.password, versions().get("imapd", "?"),
                workdir, process, [f"{store_note}, {workers} worker process(es)"])


@contextlib.contextmanager
def imapd_setup(name: str, pg: Postgres | None, options: PeerOptions = PeerOptions()) -> Iterator[Peer]:
    """One of ``IMAPD_SETUPS`` on a fresh data directory / database."""
    workdir = Path(tempfile.mkdtemp(prefix=f"imapd-frontends-{name}-"))
    peer: Peer | None = None
    try:
        store = None
        if name.startswith("postgres"):
            if pg is None:
                raise RuntimeError("PostgreSQL unavailable")
            store = pg.fresh_url()
        data = workdir / "data"
        add_user(options, data, store)
        peer = start_imapd(workdir, name, data, store, int(name.rsplit("-", 1)[1]), options)
        yield peer
    finally:
        if peer is not None:
            stop_process(peer.process)
        shutil.rmtree(workdir, ignore_errors=True)


def server(name: str, pg: Postgres | None) -> Any:
    return imapd_setup(name, pg) if name in IMAPD_SETUPS else running_peer(name, PeerOptions())


def load_now() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# --- (a) mixed load ---------------------------------------------------------------

async def mixed(name: str, pg: Postgres | None, scale: Scale) -> dict[str, dict[str, Any]]:
    """The checked mixed load for each client count; figures by count."""
    out: dict[str, dict[str, Any]] = {}
    with server(name, pg) as peer:
        target = Target(peer.host, peer.port, peer.user, peer.password)
        try:
            await prepare_mailboxes(target, "bench", max(scale.mixed_clients), scale.mixed_messages)
        except CheckFailed:
            # Dovecot, on a loaded machine, answered "Mailbox already exists"
            # to CREATEs of a fresh directory made by 4 connections at once
            # (a race in its mailbox list, it seems); one connection at a
            # time does not race.
            await prepare_mailboxes(target, "bench", max(scale.mixed_clients), scale.mixed_messages,
                                    parallel=1)
        for clients in scale.mixed_clients:
            on_pg = pg is not None and name.startswith("postgres")
            load0, cpu0, db0 = load_now(), peer.cpu_seconds(), pg.cpu_seconds() if on_pg and pg else 0.0
            result = await run_load(LoadConfig(target, clients=clients, seconds=scale.mixed_seconds,
                                               messages=scale.mixed_messages))
            cpu = peer.cpu_seconds() - cpu0
            db = pg.cpu_seconds() - db0 if on_pg and pg else None
            notes = [*peer.notes, f"load {load0} → {load_now()}"]
            notes += [f"error sample: {s}" for s in list(dict.fromkeys(result.error_samples))[:2]]
            out[str(clients)] = {
                "commands_per_s": result.commands_per_s, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
                "cpu_ms_per_command": 1000 * cpu / max(1, result.commands), "errors": result.errors,
                "notes": notes,
            }
            if db is not None:
                out[str(clients)]["db_cpu_ms_per_command"] = 1000 * db / max(1, result.commands)
            print(f"  .. mixed {clients} clients {name}: {out[str(clients)]}", flush=True)
    return out


# --- (b) cross-frontend push ----------------------------------------------------------

async def push_between(writer: Peer, reader: Peer, scale: Scale) -> dict[str, Any]:
    """IDLE sessions on ``reader``, APPENDs on ``writer`` (``bench.idle``)."""
    pusher = await login(Target(writer.host, writer.port, writer.user, writer.password))
    require_ok(await pusher.command(b"CREATE " + quote(idle.MAILBOX)), "CREATE")
    target = Target(reader.host, reader.port, reader.user, reader.password)
    idlers, failures = await idle.open_idlers(target, scale.idlers, True, time.monotonic() + 120)
    await asyncio.sleep(1.0)
    latencies: list[float] = []
    missed = failures
    for n in range(scale.push_rounds):
        got, lost = await idle.push_round(idlers, pusher, 20_000 + n, n + 1)
        latencies += got
        missed += lost
        await asyncio.sleep(0.3)
    for client in idlers:
        client.abort()
    pusher.abort()
    ordered = sorted(1000 * x for x in latencies)
    return {"idlers": float(len(idlers)), "push_p50_ms": percentile(ordered, 0.5),
            "push_p99_ms": percentile(ordered, 0.99), "push_max_ms": ordered[-1] if ordered else 0.0,
            "notifications": float(len(ordered)), "errors": missed, "notes": []}


async def push(store: str, pg: Postgres | None, scale: Scale, options: PeerOptions = PeerOptions()) -> dict[str, Any]:
    """Two frontends over one store (PostgreSQL, or SQLite: one data
    directory for both processes)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"imapd-frontends-push-{store}-"))
    peers: list[Peer] = []
    try:
        url = None
        if store == "postgres":
            if pg is None:
                raise RuntimeError("PostgreSQL unavailable")
            url = pg.fresh_url()
        data = workdir / "data"
        add_user(options, data, url)
        for name in ("frontend-a", "frontend-b"):
            peers.append(start_imapd(workdir, name, data if url is None else workdir / name, url, 1, options))
        figures = await push_between(peers[0], peers[1], scale)
        figures["notes"] = [f"{'PostgreSQL LISTEN/NOTIFY' if url else 'SQLite, one data directory, data_version poller'}"
                            f"; load {load_now()}"]
        return figures
    finally:
        for peer in peers:
            stop_process(peer.process)
        shutil.rmtree(workdir, ignore_errors=True)


# --- the run ----------------------------------------------------------------------

async def run(setups: list[str], peers: list[str], pg: Postgres | None, scale: Scale,
              parts: set[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "mixed" in parts:
        results["mixed"] = {str(c): {} for c in scale.mixed_clients}
        for name in [*setups, *peers]:
            try:
                for clients, figures in (await mixed(name, pg, scale)).items():
                    results["mixed"][clients][name] = figures
            except (RuntimeError, subprocess.SubprocessError, *FAILURES) as exc:
                failed = {"errors": 1, "notes": [f"{type(exc).__name__}: {str(exc)[-300:]}"]}
                for clients in results["mixed"]:
                    results["mixed"][clients][name] = failed
    if "push" in parts:
        results["push"] = {}
        for store in PUSH_STORES:
            try:
                results["push"][store] = await push(store, pg, scale)
            except (RuntimeError, subprocess.SubprocessError, *FAILURES) as exc:
                results["push"][store] = {"errors": 1, "notes": [f"{type(exc).__name__}: {str(exc)[-300:]}"]}
            print(f"  .. push {store}: {results['push'][store]}", flush=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.frontends_bench",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (~2 min)")
    parser.add_argument("--parts", default="mixed,push", help="comma-separated: mixed,push")
    parser.add_argument("--setups", default=",".join(IMAPD_SETUPS), help="imapd setups for the mixed load")
    parser.add_argument("--peers", default="dovecot", help="peers for the mixed load ('' for none)")
    parser.add_argument("--mixed-clients", help="comma-separated client counts (default 10,50; quick 4)")
    parser.add_argument("--mixed-seconds", type=float)
    parser.add_argument("--idlers", type=int, help="IDLE sessions on frontend B (default 200; quick 20)")
    parser.add_argument("--push-rounds", type=int)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--update-doc", type=Path, help="write the Markdown between the frontends-bench markers")
    args = parser.parse_args(argv)
    unknown = (set(args.parts.split(",")) - {"mixed", "push"}) | (set(filter(None, args.setups.split(",")))
                                                                 - set(IMAPD_SETUPS))
    if unknown:
        parser.error(f"unknown part(s) or setup(s): {', '.join(sorted(unknown))}")
    return args


def scale_of(args: argparse.Namespace) -> Scale:
    base = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.mixed_clients:
        changes["mixed_clients"] = tuple(int(c) for c in args.mixed_clients.split(","))
    for key in ("mixed_seconds", "idlers", "push_rounds"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    return Scale(**{**asdict(base), **changes})


# --- the report ------------------------------------------------------------------------

MIXED_COLUMNS = (("commands_per_s", "commands/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                 ("cpu_ms_per_command", "srv CPU ms/cmd"), ("db_cpu_ms_per_command", "PostgreSQL CPU ms/cmd"))
PUSH_COLUMNS = (("idlers", "idlers on B"), ("push_p50_ms", "push p50 ms"), ("push_p99_ms", "push p99 ms"),
                ("push_max_ms", "push max ms"), ("notifications", "notifications"))


def _mixed_table(clients: str, rows: dict[str, Any]) -> list[str]:
    names = [n for n in (*IMAPD_SETUPS, "dovecot") if n in rows] + [n for n in rows if n not in (*IMAPD_SETUPS, "dovecot")]
    head = [label for _, label in MIXED_COLUMNS] + ["errors", "cmd/s ÷ sqlite-1", "cmd/s ÷ dovecot"]
    out = [f"Mixed load, {clients} clients:", "", "| server | " + " | ".join(head) + " |",
           "|---" * (len(head) + 1) + "|"]
    for name in names:
        figures = rows[name]
        cells = [fmt(figures.get(key)) for key, _ in MIXED_COLUMNS] + [str(figures.get("errors", 0))]
        for base in ("sqlite-1", "dovecot"):
            r = ratio(figures, rows.get(base), "commands_per_s")
            cells.append("–" if r is None else f"{r:.2f}×")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("")
    out += [f"* {name}: {'; '.join(rows[name].get('notes', []))}" for name in names if rows[name].get("notes")]
    return out + [""]


def render(results: dict[str, Any]) -> str:
    """The Markdown block for docs/benchmarks.md."""
    h = results["header"]
    lines = [f"Run {h['date']} ({'--quick' if h['quick'] else 'full'}, {h.get('minutes', '?')} min), "
             f"imapd {h['imapd']}; {h['machine'].get('cores', '?')} cores, {h['machine'].get('cpu', '')}; "
             f"load {h['load_before']} → {h.get('load_after', '?')}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in h["versions"].items()) + ".",
             f"Settings: {h['settings']}.", ""]
    lines += [f"Skipped: {name}: {why}" for name, why in h["skipped"].items()] + ([""] if h["skipped"] else [])
    for clients, rows in results.get("mixed", {}).items():
        lines += _mixed_table(clients, rows)
    if results.get("push"):
        head = [label for _, label in PUSH_COLUMNS] + ["errors"]
        lines += [f"Cross-frontend push: APPEND on frontend A, IDLE on frontend B (two processes, two ports), "
                  f"{h['scale']['push_rounds']} rounds:", "",
                  "| store | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
        for store, figures in results["push"].items():
            cells = [fmt(figures.get(key)) for key, _ in PUSH_COLUMNS] + [str(figures.get("errors", 0))]
            lines.append(f"| {store} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"* {store}: {'; '.join(f['notes'])}" for store, f in results["push"].items() if f.get("notes")]
    return "\n".join(lines).rstrip() + "\n"


def update_doc(text: str, block: str) -> str:
    """``text`` with the block between the frontends markers replaced;
    without the markers, a new section with them is appended at the end
    (the other sections are left as they are)."""
    if BEGIN_MARK not in text or END_MARK not in text:
        text = (text.rstrip("\n") + f"\n\n{SECTION}\n\n`bench/frontends_bench.py` (bench/README.md): the mixed "
                "load on imapd with SQLite (1 and 2 worker processes) and PostgreSQL (2 workers) against "
                "Dovecot in one run, and the push latency from one frontend to IDLE sessions on another. "
                f"The latest run is between the markers.\n\n{BEGIN_MARK}\n{END_MARK}\n")
    head, _, rest = text.partition(BEGIN_MARK)
    _, _, tail = rest.partition(END_MARK)
    return f"{head}{BEGIN_MARK}\n{block.rstrip()}\n{END_MARK}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = scale_of(args)
    requested = [p for p in args.peers.split(",") if p]
    skipped = {name: why for name in requested if (why := unavailable(name))}
    started = time.monotonic()
    pg: Postgres | None = None
    try:
        pg = Postgres()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        skipped["postgres"] = str(exc)[-300:]
    header: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_before": load_now(), "quick": args.quick, "skipped": skipped,
        "imapd": _describe(), "versions": {**{k: v for k, v in versions().items() if k != "imapd"},
                                            "postgresql": pg.version if pg else "–"},
        "scale": asdict(scale),
        "settings": "every server: one user, argon2id t=1 m=64 KiB p=1; imapd SQLite synchronous=FULL; "
                    "PostgreSQL fsync=on synchronous_commit=on shared_buffers=32MB (throwaway cluster, "
                    "same machine); Dovecot Maildir mail_fsync=optimized",
    }
    print(f"frontends bench {header['date']}: imapd {header['imapd']}; {header['machine']}", flush=True)
    try:
        results = asyncio.run(run([s for s in args.setups.split(",") if s],
                                  [p for p in requested if p not in skipped], pg, scale,
                                  set(args.parts.split(","))))
    finally:
        if pg is not None:
            pg.destroy()
    header["load_after"] = load_now()
    header["minutes"] = round((time.monotonic() - started) / 60, 1)
    results = {"header": header, **results}
    block = render(results)
    print("\n" + block, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.update_doc:
        args.update_doc.write_text(update_doc(args.update_doc.read_text(), block))
    return 0


def _describe() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *a], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "?"
    return f"{head} + uncommitted changes in imapd/" if git("status", "--porcelain", "--", "imapd") else head


if __name__ == "__main__":
    sys.exit(main())

"""The hallway benchmark (issue 12): imapd before and after, in one run.

    .venv/bin/python -m bench.hallway_bench                     # full (~20-30 min)
    .venv/bin/python -m bench.hallway_bench --quick             # small (< 5 min)
    .venv/bin/python -m bench.hallway_bench --update-doc docs/benchmarks.md --json /tmp/hallway.json

BEFORE is the tree at ``--before-commit`` (6e81f84, the last commit before
the hallway), checked out as a git worktree at ``--before-tree``
(``/tmp/hallway-before``; made with ``git worktree add`` if missing);
AFTER is this checkout's working tree (``--after-tree``), labelled with its
HEAD (and "+ uncommitted" when imapd/ has local changes). Each is served
by ``python -m imapd serve`` with PYTHONPATH=that tree and this venv's
Python, on a fresh data directory and a loopback ephemeral port. Dovecot
and pymap come from ``bench.peers`` (``python -m bench.peers install``).

(a) the checked mixed load of issue 8 (``bench.load``) against before,
after, Dovecot and pymap-dict: commands/s and the ratios imapd/peer;
(b) one client's NOOP and UID STORE latency (p50/p99) while
``--appenders`` (8) other clients APPEND 10 KB messages back to back;
(c) server memory (RSS/PSS growth) per connection in IDLE, N
``--idle-connections`` (10,000; fewer if the open-files limit is lower);
(d) push latency p50/p99 of one APPEND to those N idlers over
``--push-rounds`` rounds (``bench.idle``).

Prints each figure as measured, then the Markdown block; ``--update-doc``
writes it between the hallway markers of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from bench import corpus, idle
from bench.hallway_report import AFTER, BEFORE, render, update_doc
from bench.load import LoadConfig, Target, login, prepare_mailboxes, run_load
from bench.load.checks import CheckFailed, require_ok
from bench.load.client import ConnectionLost, ImapClient
from bench.load.stats import percentile
from bench.load.wire import Malformed
from bench.load.workload import quote
from bench.peers import (
    HASH_COSTS, REPO_ROOT, Peer, PeerOptions, _wait_for_port, free_port, raise_fd_limit, running_peer,
    stop_process, unavailable, versions,
)
from bench.report import PeerFigures, machine

BEFORE_COMMIT = "6e81f84"
BEFORE_TREE = Path("/tmp/hallway-before")
PEER_NAMES = ("dovecot", "pymap-dict")
FAILURES = (CheckFailed, Malformed, ConnectionLost, OSError, TimeoutError)
APPEND_SIZE = 10 * 1024


@dataclass(frozen=True, slots=True)
class Scale:
    mixed_clients: tuple[int, ...] = (10, 50)
    mixed_seconds: float = 30.0
    mixed_messages: int = 60
    appenders: int = 8
    latency_seconds: float = 30.0
    idle_connections: int = 10_000
    push_rounds: int = 20
    open_budget: float = 600.0


FULL = Scale()
QUICK = Scale(mixed_clients=(4,), mixed_seconds=5.0, mixed_messages=30, latency_seconds=8.0,
              idle_connections=500, push_rounds=5, open_budget=60.0)


@dataclass(frozen=True, slots=True)
class Tree:
    """One imapd source tree to serve: ``label`` is before/after."""

    label: str
    path: Path

    def describe(self) -> str:
        """Short HEAD hash, with "+ uncommitted" when imapd/ differs from it."""
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(self.path), *args], capture_output=True,
                                  text=True, timeout=30).stdout.strip()
        head = git("rev-parse", "--short", "HEAD") or "?"
        dirty = git("status", "--porcelain", "--", "imapd")
        return f"{head} + uncommitted changes in imapd/" if dirty else head


def ensure_worktree(path: Path, commit: str) -> None:
    """A detached worktree of ``commit`` at ``path`` (this checkout is untouched)."""
    if (path / "imapd" / "__main__.py").exists():
        return
    subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(path), commit],
                   check=True, capture_output=True, timeout=120)


def after_tree(args: argparse.Namespace) -> Path:
    """``--after-tree``, or with ``--after-commit`` a worktree of that
    commit (a consistent snapshot while others edit this checkout)."""
    if not args.after_commit:
        return Path(args.after_tree)
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", args.after_commit],
                            capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    path = Path(f"/tmp/hallway-after-{commit}")
    ensure_worktree(path, commit)
    return path


# --- servers -------------------------------------------------------------------

def _tree_env(tree: Tree) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree.path), IMAPD_ALLOW_ROOT="1")
    env.pop("IMAPD_DATA", None)
    return env


@contextlib.contextmanager
def imapd_server(tree: Tree, options: PeerOptions = PeerOptions()) -> Iterator[Peer]:
    """``python -m imapd serve`` from ``tree`` on a fresh data dir and a
    loopback port; stopped and removed on exit. It inherits this process's
    open-files limit (raised by ``raise_fd_limit`` beforehand)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"imapd-hallway-{tree.label}-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        data = workdir / "imapd-data"
        t, m, p = HASH_COSTS[options.hash_cost]
        subprocess.run([sys.executable, "-m", "imapd", "user", "add", options.user, "--password-stdin",
                        "--data", str(data), "--argon2", f"t={t},m={m},p={p}"],
                       input=options.password + "\n", text=True, env=_tree_env(tree), check=True,
                       capture_output=True, timeout=120, cwd=workdir)
        port, limit, log = free_port(), str(options.max_connections), workdir / "server.log"
        argv = [sys.executable, "-m", "imapd", "serve", "--data", str(data),
                "--imap", f"tcp:{port}:interface=127.0.0.1", "--imaps", "none", "--log-level", "warn",
                "--max-connections", limit, "--max-connections-per-ip", limit,
                "--max-connections-per-user", limit]
        with log.open("wb") as sink:
            process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=_tree_env(tree), cwd=workdir)
        _wait_for_port(process, port, log)
        yield Peer(tree.label, "127.0.0.1", port, options.user, options.password, tree.describe(),
                   workdir, process, [])
    finally:
        if process is not None:
            stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


def server(name: str, trees: dict[str, Tree], options: PeerOptions = PeerOptions()) -> Any:
    """A context manager for ``name``: a tree label or a peer name."""
    return imapd_server(trees[name], options) if name in trees else running_peer(name, options)


def target_of(peer: Peer) -> Target:
    return Target(peer.host, peer.port, peer.user, peer.password)


def load_now() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# --- (a) mixed load -------------------------------------------------------------

async def mixed(name: str, trees: dict[str, Tree], scale: Scale) -> dict[str, dict[str, Any]]:
    """The checked mixed load for each client count; figures by count."""
    out: dict[str, dict[str, Any]] = {}
    with server(name, trees) as peer:
        target = target_of(peer)
        await prepare_mailboxes(target, "bench", max(scale.mixed_clients), scale.mixed_messages)
        for clients in scale.mixed_clients:
            load0, cpu0 = load_now(), peer.cpu_seconds()
            result = await run_load(LoadConfig(target, clients=clients, seconds=scale.mixed_seconds,
                                               messages=scale.mixed_messages))
            cpu = peer.cpu_seconds() - cpu0
            notes = [*peer.notes, f"load {load0} → {load_now()}"]
            notes += [f"error sample: {sample}" for sample in list(dict.fromkeys(result.error_samples))[:2]]
            out[str(clients)] = {
                "commands_per_s": result.commands_per_s, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
                "cpu_ms_per_command": 1000 * cpu / max(1, result.commands), "errors": result.errors,
                "notes": notes,
            }
            print(f"  .. mixed {clients} clients {name}: {out[str(clients)]}", flush=True)
    return out


# --- (b) NOOP / STORE latency under APPEND load -------------------------------------

async def _appender(target: Target, mailbox: str, stop: asyncio.Event, counts: list[int], slot: int) -> None:
    """APPEND 10 KB messages one after another until ``stop``."""
    client = await login(target)
    require_ok(await client.command(b"CREATE " + quote(mailbox)), "CREATE")
    pool = [corpus.sized_message(slot * 1000 + i, APPEND_SIZE) for i in range(16)]
    while not stop.is_set():
        require_ok(await client.command(b"APPEND " + quote(mailbox) + b" {}", pool[counts[slot] % 16]), "APPEND")
        counts[slot] += 1
    client.abort()


async def _probe(client: ImapClient, uids: int, seconds: float, samples: dict[str, list[float]]) -> None:
    """NOOP and UID STORE ±FLAGS (\\Flagged) alternately, one at a time;
    every STORE changes the flag, so it commits (RFC 3501 §6.4.6)."""
    rng = random.Random(12)
    flagged: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reply = require_ok(await client.command(b"NOOP"), "NOOP")
        samples["noop"].append(reply.elapsed)
        uid = rng.randint(1, uids)
        sign = b"-" if uid in flagged else b"+"
        flagged ^= {uid}
        reply = require_ok(await client.command(b"UID STORE %d %sFLAGS (\\Flagged)" % (uid, sign)), "STORE")
        samples["store"].append(reply.elapsed)


async def latency_under_appends(peer: Peer, scale: Scale) -> dict[str, Any]:
    target = target_of(peer)
    probe = await login(target)
    require_ok(await probe.command(b"CREATE probe"), "CREATE")
    for i in range(20):
        require_ok(await probe.command(b"APPEND probe {}", corpus.message(i, "plain").data), "APPEND")
    require_ok(await probe.command(b"SELECT probe"), "SELECT")
    stop, counts = asyncio.Event(), [0] * scale.appenders
    tasks = [asyncio.ensure_future(_appender(target, f"load-{k}", stop, counts, k)) for k in range(scale.appenders)]
    await asyncio.sleep(1.0)  # the appenders are logged in and appending
    samples: dict[str, list[float]] = {"noop": [], "store": []}
    errors, notes, load0 = 0, [f"load {load_now()}"], load_now()
    start_count, began = sum(counts), time.monotonic()
    try:
        await _probe(probe, 20, scale.latency_seconds, samples)
    except FAILURES as exc:
        errors += 1
        notes.append(f"probe error: {type(exc).__name__}: {exc}")
    appends = sum(counts) - start_count
    window = time.monotonic() - began
    stop.set()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException):
            errors += 1
            notes.append(f"appender error: {type(result).__name__}: {result}")
    probe.abort()
    notes[0] = f"load {load0} → {load_now()}"
    noop, store = (sorted(1000 * x for x in samples[k]) for k in ("noop", "store"))
    return {"noop_p50_ms": percentile(noop, 0.5), "noop_p99_ms": percentile(noop, 0.99),
            "store_p50_ms": percentile(store, 0.5), "store_p99_ms": percentile(store, 0.99),
            "appends_per_s": appends / window if window > 0 else 0.0,
            "samples": float(len(noop) + len(store)), "errors": errors, "notes": notes}


# --- (c, d) IDLE memory and push latency ------------------------------------------

async def idle_and_push(peer: Peer, scale: Scale, count: int) -> dict[str, Any]:
    """``bench.idle``'s measurement (memory growth over a warmed-up
    baseline, then ``push_rounds`` APPENDs timed to each idler's EXISTS)."""
    idle.OPEN_BUDGET = scale.open_budget  # read by bench.idle._measure at call time
    row = PeerFigures(peer.name, {}, 0, [])
    load0 = load_now()
    try:
        await idle._measure(peer, count, scale.push_rounds, row, None)
    except FAILURES as exc:
        row.errors += 1
        row.notes.append(f"error: {type(exc).__name__}: {exc}")
    notes = [f"load {load0} → {load_now()}", *row.notes]
    pushes = [n for n in row.notes if n.startswith("push max ")]
    values: dict[str, Any] = dict(row.values)
    if pushes:  # "push max X ms over N notifications"
        words = pushes[0].split()
        values["push_max_ms"] = float(words[2].replace(",", ""))
        values["notifications"] = float(words[5])
        notes.remove(pushes[0])
    return {**values, "errors": row.errors, "notes": notes}


# --- the run -------------------------------------------------------------------

def idle_count(wanted: int) -> tuple[int, str | None]:
    """N for the idle test: the client holds N sockets and the server (which
    inherits the limit) N more; returns N and a note if it had to shrink."""
    limit = raise_fd_limit(wanted + 1000)
    if limit - 500 >= wanted:
        return wanted, None
    usable = max(1, limit - 500)
    return usable, f"open-files limit {limit}: measured {usable:,} connections instead of {wanted:,}"


async def guarded(measure: Any, tree: Tree, options: PeerOptions, *args: Any) -> dict[str, Any]:
    """``measure(peer, *args)`` on a fresh server of ``tree``; a server
    that does not start (a tree mid-refactor) is an error row, not a crash."""
    try:
        with imapd_server(tree, options) as peer:
            figures: dict[str, Any] = await measure(peer, *args)
            return figures
    except (RuntimeError, subprocess.SubprocessError, *FAILURES) as exc:
        return {"errors": 1, "notes": [f"{type(exc).__name__}: {str(exc)[-300:]}"]}


async def run(trees: dict[str, Tree], peers: list[str], scale: Scale, parts: set[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "mixed" in parts:
        results["mixed"] = {str(c): {} for c in scale.mixed_clients}
        for name in [*trees, *peers]:
            try:
                for clients, figures in (await mixed(name, trees, scale)).items():
                    results["mixed"][clients][name] = figures
            except (RuntimeError, subprocess.SubprocessError, *FAILURES) as exc:
                failed = {"errors": 1, "notes": [f"{type(exc).__name__}: {str(exc)[-300:]}"]}
                for clients in results["mixed"]:
                    results["mixed"][clients][name] = failed
    if "latency" in parts:
        results["latency"] = {}
        for label, tree in trees.items():
            results["latency"][label] = await guarded(latency_under_appends, tree, PeerOptions(), scale)
            print(f"  .. latency {label}: {results['latency'][label]}", flush=True)
    if "idle" in parts:
        count, note = idle_count(scale.idle_connections)
        results["idle"] = {}
        for label, tree in trees.items():
            figures = await guarded(idle_and_push, tree, PeerOptions(max_connections=count + 100), scale, count)
            if note:
                figures["notes"].append(note)
            results["idle"][label] = figures
            print(f"  .. idle {label}: {figures}", flush=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hallway_bench",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (< 5 min)")
    parser.add_argument("--parts", default="mixed,latency,idle", help="comma-separated: mixed,latency,idle")
    parser.add_argument("--peers", default=",".join(PEER_NAMES), help="peers for the mixed load ('' for none)")
    parser.add_argument("--before-commit", default=BEFORE_COMMIT)
    parser.add_argument("--before-tree", type=Path, default=BEFORE_TREE)
    parser.add_argument("--after-tree", type=Path, default=REPO_ROOT)
    parser.add_argument("--after-commit", help="measure this commit (a worktree in /tmp) instead of --after-tree")
    parser.add_argument("--mixed-clients", help="comma-separated client counts (default 10,50; quick 4)")
    parser.add_argument("--mixed-seconds", type=float)
    parser.add_argument("--appenders", type=int, help="K clients appending during (b) (default 8)")
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--idle-connections", type=int, help="N idlers (default 10000; quick 500)")
    parser.add_argument("--push-rounds", type=int)
    parser.add_argument("--open-budget", type=float, help="seconds to open the idlers (default 600)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--update-doc", type=Path, help="write the Markdown between the hallway markers")
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - {"mixed", "latency", "idle"}
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    return args


def scale_of(args: argparse.Namespace) -> Scale:
    """The base scale (full or quick) with every explicit option applied."""
    base = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.mixed_clients:
        changes["mixed_clients"] = tuple(int(c) for c in args.mixed_clients.split(","))
    for key in ("mixed_seconds", "appenders", "latency_seconds", "idle_connections", "push_rounds", "open_budget"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    return Scale(**{**asdict(base), **changes})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = scale_of(args)
    ensure_worktree(args.before_tree, args.before_commit)
    trees = {BEFORE: Tree(BEFORE, args.before_tree), AFTER: Tree(AFTER, after_tree(args))}
    requested = [p for p in args.peers.split(",") if p]
    skipped = {name: why for name in requested if (why := unavailable(name))}
    started = time.monotonic()
    header: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_before": load_now(), "quick": args.quick, "skipped": skipped,
        "before": trees[BEFORE].describe(), "after": trees[AFTER].describe(), "appenders": scale.appenders,
        "versions": {k: v for k, v in versions().items() if k != "imapd"}, "scale": asdict(scale),
        "settings": "every server: one user, argon2id t=1 m=64 KiB p=1; imapd SQLite synchronous=FULL; "
                    "Dovecot Maildir mail_fsync=optimized; pymap-dict in memory (not durable)",
    }
    print(f"hallway bench {header['date']}: before {header['before']}, after {header['after']}; "
          f"{header['machine']}", flush=True)
    results = asyncio.run(run(trees, [p for p in requested if p not in skipped], scale, set(args.parts.split(","))))
    header["load_after"] = load_now()
    header["minutes"] = round((time.monotonic() - started) / 60, 1)
    header["shared"] = (f"The machine was shared with other work during the run ({header['minutes']} min), "
                        "so absolute figures move; before and after ran back to back in the same run.")
    results = {"header": header, **results}
    block = render(results)
    print("\n" + block, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.update_doc:
        args.update_doc.write_text(update_doc(args.update_doc.read_text(), block))
    return 0


if __name__ == "__main__":
    sys.exit(main())

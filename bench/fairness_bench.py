"""Fairness under a flood (issue 11): a normal client's NOOP latency and a
new client's greeting while another connection floods the server, and the
pipelined throughput of one connection.

    .venv/bin/python -m bench.fairness_bench                 # this tree
    .venv/bin/python -m bench.fairness_bench --repo /tmp/old # another checkout
    .venv/bin/python -m bench.fairness_bench --json

Scenarios (all on 127.0.0.1, a fresh data directory, one server process):

* ``deflate``: after LOGIN and COMPRESS DEFLATE (RFC 4978), one write of
  about 22 KiB of raw DEFLATE that inflates to ``--deflate-noops`` (2 M)
  pipelined ``n NOOP``; the flooder reads (and inflates) every reply.
* ``plain``: ``--plain-noops`` (100k) pipelined NOOPs sent as fast as the
  socket takes them; the flooder reads every reply.
* While the flood runs, a second client, logged in beforehand, sends one
  NOOP at a time and times each reply (p50/p99/max over the samples taken
  until the flood is answered or ``--samples`` are taken), and a third
  connection is opened once and timed until its greeting arrives.
* ``throughput``: one connection sends ``--burst`` (10k) pipelined NOOPs in
  one write and times the last reply; the median of ``--repeat`` runs.

Every loop is bounded in count and time (``--timeout``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on IMAP (\S+):(\d+)")
NOOP = b"n NOOP\r\n"
NOOP_OK = b"n OK NOOP completed\r\n"


class Server:
    """``python -m imapd serve`` from ``repo`` on a loopback port."""

    def __init__(self, repo: Path, workdir: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(repo), IMAPD_ALLOW_ROOT="1")
        data = workdir / "data"
        subprocess.run(
            [sys.executable, "-m", "imapd", "user", "add", "alice", "--password-stdin", "--data", str(data)],
            input=b"wonderland\n", env=env, cwd=workdir, check=True, capture_output=True)
        self.log = open(workdir / "server.log", "w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imapd", "serve", "--data", str(data),
             "--imap", "tcp:0:interface=127.0.0.1"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir)
        self.port = self._wait_for_port(workdir / "server.log")

    def _wait_for_port(self, log: Path) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = LISTENING.search(log.read_text(errors="replace"))
            if match:
                return int(match.group(2))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("server did not start: " + log.read_text(errors="replace"))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Conn:
    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buffer)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"

    def tagged(self, tag: bytes) -> bytes:
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return line

    def login(self) -> None:
        assert self.line().startswith(b"* OK")
        self.sock.sendall(b"a LOGIN alice wonderland\r\n")
        assert self.tagged(b"a").startswith(b"a OK"), "login failed"


class Flooder:
    """Sends the flood in a thread and counts the replies as they come."""

    def __init__(self, port: int, count: int, compressed: bool, timeout: float) -> None:
        self.conn = Conn(port, timeout)
        self.conn.login()
        self.count = count
        self.answered = 0
        self.done = threading.Event()
        self.sent = threading.Event()
        inflate = None
        if compressed:
            self.conn.sock.sendall(b"c COMPRESS DEFLATE\r\n")
            assert self.conn.tagged(b"c").startswith(b"c OK"), "COMPRESS refused"
            stream = zlib.compressobj(9, zlib.DEFLATED, -15)
            self.payload = stream.compress(NOOP * count) + stream.flush(zlib.Z_SYNC_FLUSH)
            inflate = zlib.decompressobj(-15)
        else:
            self.payload = NOOP * count
        self.start = time.perf_counter()
        self.elapsed = 0.0
        threading.Thread(target=self._read, args=(inflate,), daemon=True).start()
        threading.Thread(target=self._send, daemon=True).start()

    def _send(self) -> None:
        try:
            self.conn.sock.sendall(self.payload)
        except OSError:
            pass
        self.sent.set()

    def _read(self, inflate: Any) -> None:
        tail = b""
        try:
            while self.answered < self.count:
                chunk = self.conn.sock.recv(1 << 16)
                if not chunk:
                    break
                if inflate is not None:
                    chunk = inflate.decompress(chunk)
                data = tail + chunk
                self.answered += data.count(NOOP_OK)
                tail = data[1 - len(NOOP_OK):]
        except (OSError, zlib.error):
            pass
        self.elapsed = time.perf_counter() - self.start
        self.done.set()

    def close(self) -> None:
        self.conn.sock.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def sample_latencies(normal: Conn, flood: Flooder, samples: int, timeout: float, out: list[float]) -> None:
    """One NOOP at a time until the flood is answered (or enough samples)."""
    deadline = time.monotonic() + timeout
    while len(out) < samples and not flood.done.is_set() and time.monotonic() < deadline:
        start = time.perf_counter()
        normal.sock.sendall(b"x NOOP\r\n")
        normal.tagged(b"x")
        out.append(time.perf_counter() - start)


def flood_scenario(port: int, compressed: bool, count: int, samples: int, timeout: float) -> dict[str, Any]:
    normal = Conn(port, timeout)
    normal.login()
    flood = Flooder(port, count, compressed, timeout)
    # Not "until the first reply": a server that runs the whole flood in
    # one turn sends none before the end. Until the flood is sent (at most
    # a second: a server that reads slowly holds the sender), then 0.2 s.
    flood.sent.wait(1.0)
    time.sleep(0.2)
    latencies: list[float] = []
    sampler = threading.Thread(
        target=sample_latencies, args=(normal, flood, samples, timeout, latencies), daemon=True)
    sampler.start()
    greet_start = time.perf_counter()
    newcomer = Conn(port, timeout)
    newcomer.line()
    greeting = time.perf_counter() - greet_start
    newcomer.sock.close()
    sampler.join(timeout)
    answered_while_measuring = flood.answered
    flood.done.wait(timeout)
    normal.sock.close()
    flood.close()
    return {
        "scenario": "deflate" if compressed else "plain", "noops": count,
        "payload_bytes": len(flood.payload), "samples": len(latencies),
        "p50_ms": 1000 * percentile(latencies, 0.5) if latencies else None,
        "p99_ms": 1000 * percentile(latencies, 0.99) if latencies else None,
        "max_ms": 1000 * max(latencies) if latencies else None,
        "greeting_ms": 1000 * greeting,
        "flood_answered_while_measuring": answered_while_measuring,
        "flood_seconds": flood.elapsed if flood.done.is_set() else None,
    }


def throughput(port: int, burst: int, repeat: int, timeout: float) -> dict[str, Any]:
    """``burst`` pipelined NOOPs in one write; the time until the last
    reply (found by scanning, not by splitting lines: the client must not
    be the bottleneck)."""
    conn = Conn(port, timeout)
    conn.login()
    times = []
    for run in range(repeat):
        tag = b"z%d OK" % run
        data = NOOP * (burst - 1) + b"z%d NOOP\r\n" % run
        start = time.perf_counter()
        conn.sock.sendall(data)
        tail = b""
        while tag not in tail:
            chunk = conn.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("closed")
            tail = tail[-len(tag):] + chunk
        times.append(time.perf_counter() - start)
    conn.sock.close()
    median = statistics.median(times)
    return {"scenario": "throughput", "noops": burst, "runs": repeat,
            "median_s": median, "noops_per_s": burst / median}


def run(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="imapd-fair-") as workdir:
        server = Server(Path(args.repo), Path(workdir))
        try:
            yield throughput(server.port, args.burst, args.repeat, args.timeout)
            yield flood_scenario(server.port, False, args.plain_noops, args.samples, args.timeout)
            yield flood_scenario(server.port, True, args.deflate_noops, args.samples, args.timeout)
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", default=str(REPO), help="the imapd checkout to run (PYTHONPATH)")
    parser.add_argument("--deflate-noops", type=int, default=2_000_000)
    parser.add_argument("--plain-noops", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    print(f"# load {open('/proc/loadavg').read().strip()}  repo {args.repo}", file=sys.stderr)
    for result in run(args):
        if args.json:
            print(json.dumps(result))
        else:
            print("  ".join(f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}"
                            for key, value in result.items()), flush=True)
    print(f"# load {open('/proc/loadavg').read().strip()}", file=sys.stderr)


if __name__ == "__main__":
    main()

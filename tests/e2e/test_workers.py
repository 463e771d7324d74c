"""``imapd serve --workers 2`` with real processes and real sockets
(``imapd.net.workers``): both workers accept on the one port, a change made
through one worker reaches an IDLE client of the other, a killed worker is
restarted while the port keeps serving, SIGTERM to the parent stops every
worker, and workers do not outlive a parent killed with SIGKILL. Each test
runs on SQLite (one data directory, WAL) and on PostgreSQL.

Which worker holds a connection is read from /proc: the server side of
the client's TCP connection (``/proc/net/tcp``) is a socket inode, found
among one worker's descriptors (``/proc/PID/fd``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.frontends import store_url
from tests.support.raw import RawClient
from tests.support.server import (
    RunningServer, imapd_command, run_cli, running_server, subprocess_env,
)
from tests.support.stress import CHEAP_ARGON2
from tests.support.waiting import wait_until

STARTED = re.compile(r"started worker (\d+)/\d+ \(pid (\d+)\)")
LIMITS = ("--max-connections-per-ip", "1000", "--max-connections-per-user", "1000")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: SQLite in the data directory; else a fresh PostgreSQL store."""
    if request.param == "sqlite":
        yield None
        return
    from tests.support.postgres import shared_cluster

    cluster = shared_cluster()
    dsn = cluster.fresh_database()
    yield store_url(dsn)
    cluster.drop_database(dsn)


@contextlib.contextmanager
def two_workers(tmp_path: Path, store: str | None) -> Iterator[RunningServer]:
    store_args = ["--store", store] if store else []
    if store:
        run_cli("user", "add", "alice", "--password-stdin", "--argon2", CHEAP_ARGON2,
                *store_args, stdin="wonderland\n")
    users = {} if store else {"alice": "wonderland"}
    with running_server(tmp_path, users=users,
                        extra_args=["--workers", "2", *store_args, *LIMITS]) as server:
        # The first "listening on" line (the one test harnesses wait for) is
        # the parent's, once both workers accept: workers say "sharing".
        first = next(line for line in server.lines if "listening on" in line)
        assert "(2 workers)" in first and server.log().count("sharing IMAP") == 2
        yield server


def worker_pids(server: RunningServer) -> dict[int, int]:
    """Worker number -> its current PID (the latest start of each)."""
    return {int(m.group(1)): int(m.group(2)) for m in STARTED.finditer(server.log())}


def _socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as handle:
            for row in handle.readlines()[1:]:
                fields = row.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if (int(local.rsplit(":", 1)[1], 16) == server_port
                        and int(remote.rsplit(":", 1)[1], 16) == client_port and inode != "0"):
                    return inode
    return None


def owner_of(client: RawClient, server: RunningServer) -> int | None:
    """The PID of the worker holding the server side of ``client``."""
    inode = _socket_inode(server.port, client.sock.getsockname()[1])
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in worker_pids(server).values():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None


def greeted(server: RunningServer) -> RawClient:
    client = RawClient.for_server(server, timeout=30)
    assert client.line().startswith(b"* OK"), "no greeting"
    return client


def one_on_each(server: RunningServer, limit: int = 300) -> tuple[dict[int, RawClient], list[RawClient]]:
    """Open connections until both workers hold one; returns one client per
    PID and every client opened."""
    by_pid: dict[int, RawClient] = {}
    opened: list[RawClient] = []
    while len(by_pid) < 2 and len(opened) < limit:
        client = greeted(server)
        opened.append(client)
        pid = wait_until(lambda: owner_of(client, server), "the connection's worker")
        by_pid.setdefault(pid, client)
    assert len(by_pid) == 2, f"{len(opened)} connections all went to {list(by_pid)}"
    return by_pid, opened


def login(client: RawClient) -> None:
    client.send(b"L LOGIN alice wonderland\r\n")
    assert client.until_tagged(b"L")[-1].startswith(b"L OK")


def test_both_workers_serve_and_an_idle_client_sees_the_other_worker(
    tmp_path: Path, store: str | None
) -> None:
    with two_workers(tmp_path, store) as server:
        by_pid, opened = one_on_each(server)
        assert set(by_pid) == set(worker_pids(server).values())
        writer, idler = by_pid.values()
        for client in (writer, idler):
            login(client)
        idler.send(b"S SELECT INBOX\r\n")
        assert idler.until_tagged(b"S")[-1].startswith(b"S OK")
        idler.send(b"I IDLE\r\n")
        assert idler.line().startswith(b"+")
        message = b"Subject: hop\r\n\r\nacross workers\r\n"
        writer.send(b"A APPEND INBOX {%d+}\r\n%s\r\n" % (len(message), message))
        assert writer.until_tagged(b"A")[-1].startswith(b"A OK")
        assert idler.line() == b"* 1 EXISTS\r\n"  # pushed by the other process
        idler.send(b"DONE\r\n")
        assert idler.until_tagged(b"I")[-1].startswith(b"I OK")
        for client in opened:
            client.close()


def test_a_killed_worker_is_restarted_and_the_port_keeps_serving(
    tmp_path: Path, store: str | None
) -> None:
    with two_workers(tmp_path, store) as server:
        victim = worker_pids(server)[1]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: worker_pids(server)[1] != victim, "worker 1 restarted")
        assert "worker 1 (pid %d) was killed by SIGKILL" % victim in server.log()
        for _ in range(20):  # the port answers throughout and afterwards
            client = greeted(server)
            login(client)
            client.close()
        wait_until(lambda: server.log().count("serving") >= 3, "the new worker serving")
        by_pid, opened = one_on_each(server)
        assert victim not in by_pid
        for client in opened:
            client.close()
        assert server.process.poll() is None


def test_sigterm_to_the_parent_stops_every_worker(tmp_path: Path) -> None:
    with two_workers(tmp_path, None) as server:
        pids = list(worker_pids(server).values())
        client = greeted(server)
        server.process.send_signal(signal.SIGTERM)
        assert b"BYE" in client.line()  # the worker said goodbye (RFC 3501 §7.1.5)
        assert server.process.wait(30) == 0
        for pid in pids:
            assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} still running"
        wait_until(lambda: "all workers stopped" in server.log(), "the parent's last line")


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    with two_workers(tmp_path, None) as server:
        pids = list(worker_pids(server).values())
        server.process.kill()
        server.process.wait(10)

        def gone() -> bool:
            return not any(_alive(pid) for pid in pids)

        wait_until(gone, "workers stopped after their parent died")
        wait_until(lambda: "supervising process is gone" in server.log(), "the workers' line")
        with pytest.raises(OSError):  # nobody accepts any more
            socket.create_connection((server.host, server.port), timeout=5).recv(1)


def _alive(pid: int) -> bool:
    """Running (an exited worker whose parent died is reaped by init)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_parent_reports_an_unusable_store_once(tmp_path: Path) -> None:
    done = subprocess.run(
        imapd_command("serve", "--workers", "2", "--data", str(tmp_path / "d"),
                      "--imap", "tcp:0:interface=127.0.0.1",
                      "--store", "postgresql://imapd:hunter2@127.0.0.1:1/mail"),
        capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    assert "started worker" not in done.stderr  # checked once, by the parent


def test_sighup_to_the_parent_reloads_every_worker(tmp_path: Path) -> None:
    with two_workers(tmp_path, None) as server:
        server.process.send_signal(signal.SIGHUP)
        wait_until(lambda: server.log().count("reloaded TLS certificate") == 2,
                   "both workers reloaded their certificate")
        assert server.process.poll() is None

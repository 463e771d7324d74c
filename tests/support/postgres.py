"""A throwaway PostgreSQL cluster for the tests (Debian's ``postgresql``).

``shared_cluster()`` starts one cluster per test process on first use, with
the newest ``/usr/lib/postgresql/*/bin`` (``initdb``, ``pg_ctl``), in a
temporary directory, listening on 127.0.0.1 on a free port and on a unix
socket in that directory, with ``fsync`` on (durability is what the kill
tests check). It is stopped when the session ends (the ``postgres_cluster``
fixture, and ``atexit`` for users outside fixtures such as the contract
suite's ``make_site``).

``initdb`` refuses to run as root, and CI runs as root: then every server
command runs as the ``postgres`` system user (the Debian package creates
it) through ``runuser``, with the directory chowned to it.

Without the binaries the tests SKIP with ``MISSING`` (pinned with
``in_ci=False`` in tests/support/pinned_skips.py); under CI (``CI=true``),
which installs the package (.ci/run), they FAIL instead.

    dsn = shared_cluster().fresh_database()      # schema initialised
    dsn = shared_cluster().fresh_database(initialised=False)   # empty
    shared_cluster().restart()                   # kill tests (immediate stop)
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.pinned_skips import require_tool

PG_ROOT = Path("/usr/lib/postgresql")
MISSING = ("PostgreSQL server binaries (Debian package postgresql) are not installed; "
           ".ci/run installs them")
SUPERUSER = "imapd"
TEMPLATE = "imapd_template"


def find_bindir() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` with
    ``initdb`` and ``pg_ctl``, or None."""
    found: list[tuple[int, Path]] = []
    for version_dir in PG_ROOT.glob("*"):
        bindir = version_dir / "bin"
        if version_dir.name.isdigit() and (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            found.append((int(version_dir.name), bindir))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """One throwaway cluster (see the module docstring)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="imapd-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.running = False
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._free: list[str] = []  # initialised databases emptied for reuse
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}\n{log}")

    def create(self) -> None:
        """initdb (trust auth, superuser ``imapd``), configure, start, and
        build the template database with the imapd schema."""
        # --no-sync: initdb's own fsyncs only protect the fresh cluster from
        # a power loss during the test run; the server keeps fsync on.
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "on",
            "synchronous_commit": "on",
            "shared_buffers": "32MB",
            "max_connections": "300",
            "logging_collector": "off",
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self.start()
        self.admin(f"CREATE DATABASE {TEMPLATE}")
        from imapd.storage.postgres import schema

        schema.init(self.dsn_for(TEMPLATE))

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` is a crash (no checkpoint: recovery
        replays the WAL at the next start)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")
            self.running = False

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def dsn_for(self, dbname: str) -> str:
        """A libpq DSN for ``dbname`` over TCP (as a remote server is reached)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname} connect_timeout=5"

    def socket_dsn_for(self, dbname: str) -> str:
        return f"host={self.root} port={self.port} user={SUPERUSER} dbname={dbname}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.socket_dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def fresh_database(self, initialised: bool = True) -> str:
        """A database with the imapd schema and no data (a copy of the
        template, or one given back with ``release_database``), or an empty
        one; returns its DSN."""
        with self._lock:
            if initialised and self._free:
                return self._free.pop()
            name = f"t{os.getpid()}_{next(self._names)}"
        template = TEMPLATE if initialised else "template0"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.dsn_for(name)

    def release_database(self, dsn: str) -> None:
        """Give back a database made by ``fresh_database()``: its clients are
        cut off and its rows deleted (8 ms against ~100-300 ms for CREATE
        DATABASE on a loaded box); the next ``fresh_database()`` reuses it.
        Sequences go on (mailbox ids are never reused anyway)."""
        import psycopg

        if not self.running:
            return
        name = dict(part.split("=", 1) for part in dsn.split())["dbname"]
        self.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
        tables = ("mail_users", "provisioned", "mailboxes", "bodies", "body_chunks", "messages",
                  "expunged", "keywords", "subscriptions", "users")
        with psycopg.connect(dsn, autocommit=True) as conn:
            with conn.transaction():
                for table in tables:
                    conn.execute(f"DELETE FROM {table}".encode())
                conn.execute("DELETE FROM settings WHERE key <> 'schema_version'")
        with self._lock:
            self._free.append(dsn)

    def drop_database(self, dsn: str) -> None:
        """Drop a database made by ``fresh_database`` (its clients are cut off)."""
        name = dict(part.split("=", 1) for part in dsn.split())["dbname"]
        if self.running:
            self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def destroy(self) -> None:
        try:
            self.stop("fast")
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


_shared: Cluster | None = None
_shared_lock = threading.Lock()


def shared_cluster() -> Cluster:
    """This process's cluster, started on first use; skips (fails under CI)
    without the binaries."""
    global _shared
    bindir = find_bindir()
    require_tool(None if bindir is None else str(bindir), MISSING)
    assert bindir is not None
    with _shared_lock:
        if _shared is None:
            cluster = Cluster(bindir)
            try:
                cluster.create()
            except BaseException:
                cluster.destroy()
                raise
            atexit.register(cluster.destroy)
            _shared = cluster
        if not _shared.running:
            _shared.start()  # a kill test that failed half-way
        return _shared


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    yield shared_cluster()


@pytest.fixture
def postgres_dsn(postgres_cluster: Cluster) -> Iterator[str]:
    """A database with the imapd schema and no data, given back after the test."""
    dsn = postgres_cluster.fresh_database()
    yield dsn
    postgres_cluster.release_database(dsn)


# Module-level shortcuts on this process's cluster (for helpers that are
# not fixtures, e.g. frontends started as subprocesses by other tests).

def dsn_for(dbname: str) -> str:
    return shared_cluster().dsn_for(dbname)


def fresh_database(initialised: bool = True) -> str:
    return shared_cluster().fresh_database(initialised)


def _cluster() -> Cluster:
    """The cluster as it is (``shared_cluster`` would start a stopped one)."""
    return _shared if _shared is not None else shared_cluster()


def stop(mode: str = "immediate") -> None:
    _cluster().stop(mode)


def start() -> None:
    cluster = _cluster()
    if not cluster.running:
        cluster.start()


def restart(mode: str = "immediate") -> None:
    _cluster().restart(mode)

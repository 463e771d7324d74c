"""PostgreSQL restarted (crash: immediate stop, WAL recovery) under load:
calls meanwhile fail with ``Unavailable`` (IMAP NO [UNAVAILABLE]), never
anything else; the backend recovers by itself (pool and listener
reconnect); every acknowledged change is there afterwards; UIDs are unique
and ascending. Also: the server's disk full is ``StorageFull``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from psycopg import errors as pgerrors
from twisted.internet.defer import ensureDeferred

from imapd.mail.errors import StorageFull, Unavailable
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.storage.postgres import PostgresBackend
from imapd.storage.postgres import runner
from imapd.storage.postgres.runner import mail_error
from tests.storage.postgres.helpers import Bell, WAIT, close, inbox, open_pg, run, subscribe
from tests.support.postgres import Cluster
from tests.support.reactor_thread import reactor


class Load:
    """APPENDs and STOREs in a loop on the reactor until stopped."""

    def __init__(self, backend: PostgresBackend, ref: Any) -> None:
        self.backend, self.ref = backend, ref
        self.acked: list[int] = []
        self.flagged: set[int] = set()
        self.failures: list[BaseException] = []
        self.stop = threading.Event()
        self.done = threading.Event()

    async def _loop(self) -> None:
        from twisted.internet.task import deferLater

        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                result = await self.backend.append(self.ref, [AppendItem(b"load %d" % i)])
                self.acked.extend(result.uids)
                if self.acked and i % 3 == 0:
                    uid = self.acked[-1]
                    await self.backend.store_flags(self.ref, [uid], FlagOp.ADD, ["\\Flagged"])
                    self.flagged.add(uid)
            except Exception as error:  # noqa: BLE001 - what the test checks
                self.failures.append(error)
                await deferLater(reactor(), 0.02, lambda: None)

    def start(self) -> None:
        def go() -> None:
            ensureDeferred(self._loop()).addBoth(lambda _: self.done.set())

        reactor().callFromThread(go)

    def wait_for_acks(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.acked) < count:
            assert time.monotonic() < deadline, (len(self.acked), self.failures[-3:])
            time.sleep(0.01)


def test_restart_under_load_then_recovery_without_loss(
    postgres_dsn: str, postgres_cluster: Cluster
) -> None:
    backend = open_pg(postgres_dsn, poll_interval=0.5)
    try:
        ref = inbox(backend)
        bell = Bell()
        subscribe(backend, ref.id, bell)
        load = Load(backend, ref)
        load.start()
        load.wait_for_acks(20)
        postgres_cluster.restart("immediate")
        after = len(load.acked)
        load.wait_for_acks(after + 20)  # it recovered by itself
        load.stop.set()
        assert load.done.wait(WAIT)
        # (Calls in flight at the crash fail; later ones wait for a
        # connection, up to runner.POOL_WAIT, and may well succeed.)
        assert all(isinstance(f, Unavailable) for f in load.failures), load.failures
        # One line of fixed text for the client (the server's messages span
        # lines and name hosts: they go to the log).
        assert all(f.text == "mail store temporarily unavailable, try again later"
                   for f in load.failures if isinstance(f, Unavailable))
        assert load.acked == sorted(set(load.acked))
        # A fresh backend (another process) sees every acknowledged change.
        fresh = open_pg(postgres_dsn)
        try:
            records = run(lambda: fresh.fetch_records(ref))
        finally:
            close(fresh)
        present = [r.uid for r in records]
        assert present == sorted(set(present))
        assert set(load.acked) <= set(present)
        flagged = {r.uid for r in records if "\\Flagged" in r.flags}
        assert load.flagged <= flagged
        # The listener came back too: another node's change rings here.
        bell.clear()
        other = open_pg(postgres_cluster.socket_dsn_for(postgres_dsn.split("dbname=")[1].split()[0]))
        try:
            run(lambda: other.append(ref, [AppendItem(b"from another node")]))
        finally:
            close(other)
        assert bell.wait_for(lambda rings: bool(rings)), "no ring after the restart"
    finally:
        close(backend)
        if not postgres_cluster.running:
            postgres_cluster.start()


def test_server_down_is_unavailable_then_recovers_by_itself(
    postgres_dsn: str, postgres_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "POOL_WAIT", 0.5)
    backend = open_pg(postgres_dsn)
    try:
        ref = inbox(backend)
        postgres_cluster.stop("immediate")
        try:
            for call in (lambda: backend.status(ref),
                         lambda: backend.append(ref, [AppendItem(b"refused")])):
                try:
                    run(call)
                except Unavailable as refused:
                    assert "\n" not in refused.text and "127.0.0.1" not in refused.text
                else:
                    raise AssertionError("a call succeeded with the server down")
        finally:
            postgres_cluster.start()
        # Back by itself: the pool reconnects (within a few seconds of
        # backoff; meanwhile calls may still be refused, as Unavailable).
        deadline = time.monotonic() + WAIT
        while True:
            try:
                result = run(lambda: backend.append(ref, [AppendItem(b"accepted")]))
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the backend never recovered"
                time.sleep(0.1)
        assert result.uids == (1,)  # the refused APPEND made no change
        assert run(lambda: backend.status(ref)).messages == 1
    finally:
        close(backend)
        if not postgres_cluster.running:
            postgres_cluster.start()


def test_unavailable_text_is_one_line_without_server_details() -> None:
    """The text goes to the IMAP client in a NO response line: libpq's
    messages span lines and name the server's address."""
    import psycopg

    error = mail_error(psycopg.OperationalError(
        'connection to server at "10.0.0.5", port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"))
    assert isinstance(error, Unavailable)
    assert "\n" not in error.text and "10.0.0.5" not in error.text


def test_server_disk_full_is_storage_full() -> None:
    assert isinstance(mail_error(pgerrors.DiskFull("could not extend file")), StorageFull)
    assert isinstance(mail_error(pgerrors.AdminShutdown("terminating")), Unavailable)

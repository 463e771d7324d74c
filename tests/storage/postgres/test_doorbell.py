"""Doorbells across frontends (``MailBackend``: other nodes' changes ring
"within a short, bounded delay"): NOTIFY delivers them; when the LISTEN
connection is killed the listener reconnects, and a change whose NOTIFY
never came rings through the periodic catch-up."""

from __future__ import annotations

import time

import psycopg

from imapd.mail.records import AppendItem
from imapd.storage.postgres.feed import PgFeed
from tests.storage.postgres.helpers import (
    Bell, close, inbox, open_pg, other_node_dsn, run, subscribe,
)
from tests.support.postgres import Cluster


def test_notify_rings_another_node_within_a_second(
    postgres_dsn: str, postgres_cluster: Cluster
) -> None:
    # A catch-up every 60 s: only NOTIFY can ring within the second.
    here = open_pg(postgres_dsn, poll_interval=60.0)
    there = open_pg(other_node_dsn(postgres_dsn, postgres_cluster), poll_interval=60.0)
    try:
        ref = inbox(here)
        assert here.listener.connected.wait(10)
        bell = Bell()
        subscribe(here, ref.id, bell)
        bell.wait_for(lambda rings: True, timeout=0.3)  # the subscribe-time catch-up, if any
        bell.clear()
        latencies = []
        for i in range(5):
            started = time.monotonic()
            result = run(lambda: there.append(ref, [AppendItem(b"m%d" % i)]))
            modseq = i + 2
            assert bell.wait_for(lambda rings: (ref.id, modseq) in rings), bell.rings
            latencies.append(time.monotonic() - started)
            assert result.uids == (i + 1,)
        assert max(latencies) < 1.0, latencies
        assert here.listener.catch_ups == 1  # the one at connect: the rings were NOTIFYs
    finally:
        close(here, there)


def _kill_listener(cluster: Cluster, backend_pid: int) -> None:
    with psycopg.connect(cluster.socket_dsn_for("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid,)).fetchone()
        assert row is not None and row[0] is True


def test_killed_listen_connection_reconnects_and_still_rings(
    postgres_dsn: str, postgres_cluster: Cluster
) -> None:
    here = open_pg(postgres_dsn, poll_interval=0.5)
    there = open_pg(other_node_dsn(postgres_dsn, postgres_cluster), poll_interval=60.0)
    try:
        ref = inbox(here)
        bell = Bell()
        subscribe(here, ref.id, bell)
        # The listener's first look at the new subscription rings once
        # (modseq 0: "look"); after it, it knows the mailbox's state.
        assert bell.wait_for(lambda rings: bool(rings)), "the first look never rang"
        bell.clear()
        connection = here.listener.connection
        assert connection is not None
        _kill_listener(postgres_cluster, connection.info.backend_pid)
        # Committed right after the kill: its NOTIFY is most likely lost;
        # the catch-up at reconnect or the periodic one rings it anyway.
        run(lambda: there.append(ref, [AppendItem(b"after the kill")]))
        assert bell.wait_for(lambda rings: (ref.id, 2) in rings), bell.rings
        deadline = time.monotonic() + 20
        while here.listener.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert here.listener.connects >= 2
        # And NOTIFY works again on the new connection.
        run(lambda: there.append(ref, [AppendItem(b"later")]))
        assert bell.wait_for(lambda rings: (ref.id, 3) in rings), bell.rings
    finally:
        close(here, there)


def test_periodic_catch_up_rings_a_change_without_notify(
    postgres_dsn: str, postgres_cluster: Cluster
) -> None:
    """NOTIFY can be lost (across a reconnect); the periodic comparison of
    the subscribed mailboxes' rows is the fallback. Here the change comes
    with no NOTIFY at all."""
    here = open_pg(postgres_dsn, poll_interval=0.3)
    try:
        ref = inbox(here)
        bell = Bell()
        subscribe(here, ref.id, bell)
        assert here.listener.connected.wait(10)
        bell.wait_for(lambda rings: bool(rings), timeout=2)  # the first look rings it once
        bell.clear()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE mailboxes SET highestmodseq=highestmodseq+1 WHERE id=%s",
                         (ref.id,))
        assert bell.wait_for(lambda rings: (ref.id, 2) in rings), bell.rings
    finally:
        close(here)


def test_own_change_heard_back_through_notify_is_not_rung_again() -> None:
    """This process rang its own change (before the call returned); the
    same MODSEQ heard back through NOTIFY (or a catch-up) is dropped; a
    higher one, or a tree change (0), rings. (If the NOTIFY's hop beats the
    commit's own, the change rings twice: allowed, rings may repeat.)"""
    feed = PgFeed()
    bell = Bell()
    feed.subscribe(7, bell)
    feed.ring(7, 2)
    feed.remote(7, 2)
    feed.remote(7, 1)
    assert bell.rings == [(7, 2)]
    feed.remote(7, 3)
    feed.remote(7, 0)
    assert bell.rings == [(7, 2), (7, 3), (7, 0)]
    feed.remote(8, 5)  # nobody subscribed
    assert bell.rings == [(7, 2), (7, 3), (7, 0)]

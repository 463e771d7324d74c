"""Commit order equals UID order across frontends (RFC 3501 §2.3.1.1;
``MailBackend``: "a lower UID never becomes visible after a higher one"):
two backends over one database (two nodes) append concurrently while a
third connection keeps reading the mailbox's UIDs; every read must be
1..n with no gap, and n never goes down."""

from __future__ import annotations

import threading

import psycopg
from twisted.internet.defer import DeferredList, ensureDeferred

from imapd.mail.backend import MailboxRef
from imapd.mail.records import AppendItem
from imapd.storage.postgres import PostgresBackend
from tests.storage.postgres.helpers import close, inbox, open_pg, other_node_dsn, run
from tests.support.postgres import Cluster

WRITERS_PER_NODE = 3
APPENDS = 15


def _reader(dsn: str, mailbox_id: int, stop: threading.Event, seen: list[list[int]]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            seen.append([int(r[0]) for r in conn.execute(
                "SELECT uid FROM messages WHERE mailbox_id=%s ORDER BY uid",
                (mailbox_id,)).fetchall()])


async def _writer(backend: PostgresBackend, ref: MailboxRef, name: str) -> list[int]:
    uids: list[int] = []
    for i in range(APPENDS):
        result = await backend.append(ref, [AppendItem(b"%s-%d" % (name.encode(), i))])
        uids.extend(result.uids)
    return uids


def test_concurrent_appends_from_two_nodes_commit_in_uid_order(
    postgres_dsn: str, postgres_cluster: Cluster
) -> None:
    nodes = [open_pg(postgres_dsn), open_pg(other_node_dsn(postgres_dsn, postgres_cluster))]
    try:
        ref = inbox(nodes[0])
        stop = threading.Event()
        seen: list[list[int]] = []
        reader = threading.Thread(target=_reader, args=(postgres_dsn, ref.id, stop, seen))
        reader.start()

        async def race() -> list[list[int]]:
            calls = [ensureDeferred(_writer(nodes[n % 2], ref, f"w{n}"))
                     for n in range(2 * WRITERS_PER_NODE)]
            results = await DeferredList(calls, fireOnOneErrback=True, consumeErrors=True)
            return [value for _, value in results]

        try:
            per_writer = run(race)
        finally:
            stop.set()
            reader.join()
        total = 2 * WRITERS_PER_NODE * APPENDS
        assert sorted(u for uids in per_writer for u in uids) == list(range(1, total + 1))
        for uids in per_writer:
            assert uids == sorted(uids)
        assert len(seen) > 10, "the reader hardly ran"
        highest = 0
        for uids in seen:
            assert uids == list(range(1, len(uids) + 1)), f"a gap was visible: {uids}"
            assert len(uids) >= highest
            highest = len(uids)
    finally:
        close(*nodes)

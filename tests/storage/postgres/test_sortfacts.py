"""PostgreSQL's SORT/THREAD facts (``imapd.storage.postgres.sortfacts``,
schema v3): stored at APPEND, gone with the body, and ``imapd doctor
--reindex`` (a real ``python -m imapd``) stores them for older mail."""

from __future__ import annotations

from typing import Any

import psycopg

from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.message import sortfacts
from tests.e2e.frontends import store_url
from tests.storage.postgres.helpers import close, inbox, open_pg, run
from tests.support.server import run_cli

FIRST = b"Subject: Re: one\r\nMessage-ID: <a@x>\r\n\r\ntext\r\n"
SECOND = b"Subject: two\r\nReferences: <a@x>\r\n\r\nmore\r\n"


def _rows(dsn: str) -> list[bytes]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows: Any = conn.execute("SELECT facts FROM sort_facts ORDER BY body_id").fetchall()
        return [bytes(row[0]) for row in rows]


def test_facts_follow_the_bodies_and_reindex_fills_them(postgres_dsn: str) -> None:
    backend = open_pg(postgres_dsn)
    try:
        ref = inbox(backend)
        uids = run(lambda: backend.append(ref, [AppendItem(FIRST), AppendItem(SECOND)])).uids
        stored = run(lambda: backend.sort_facts(ref, uids))
        assert sortfacts.decode(stored[uids[0]]).message_id == b"a@x"
        assert sortfacts.decode(stored[uids[1]]).parents == (b"a@x",)
        run(lambda: backend.store_flags(ref, [uids[0]], FlagOp.ADD, ["\\Deleted"]))
        run(lambda: backend.expunge(ref))
        assert _rows(postgres_dsn) == [stored[uids[1]]]
    finally:
        close(backend)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # as before v3
        conn.execute("DELETE FROM sort_facts")
    done = run_cli("doctor", "--reindex", "--store", store_url(postgres_dsn))
    assert "imapd doctor: sort facts 1/1" in done.stderr, done.stderr
    assert "stored SORT/THREAD facts of 1 message bodies" in done.stdout
    assert _rows(postgres_dsn) == [stored[uids[1]]]

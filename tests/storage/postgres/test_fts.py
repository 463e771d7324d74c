"""The PostgreSQL full-text index (``imapd.storage.postgres.fts``, schema
v2, ``pg_trgm``): exact candidates for a rare word, copies share the row,
an expunge takes it away with the body, and ``imapd doctor --reindex``
indexes what was stored before the index (a real ``python -m imapd``)."""

from __future__ import annotations

from typing import Any

import psycopg

from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.message.casemap import fold
from tests.e2e.frontends import store_url
from tests.storage.postgres.helpers import close, inbox, open_pg, run
from tests.support.server import run_cli

RARE = b"From: a@b.example\r\nSubject: 100%_done\r\n\r\nthe word quokka is rare\r\n"
PLAIN = b"From: a@b.example\r\nSubject: hello\r\n\r\nnothing to see\r\n"


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row: Any = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0])


def test_index_follows_the_bodies_and_reindex_fills_it(postgres_dsn: str) -> None:
    backend = open_pg(postgres_dsn)
    try:
        ref = inbox(backend)
        uids = run(lambda: backend.append(ref, [AppendItem(PLAIN), AppendItem(RARE)])).uids
        assert run(lambda: backend.text_candidates(ref, "TEXT", fold("QUOKKA"))) == {uids[1]}
        # LIKE's wildcards in the needle are plain characters.
        assert run(lambda: backend.text_candidates(ref, "HEADER", fold("0%_d"))) == {uids[1]}
        assert run(lambda: backend.text_candidates(ref, "HEADER", fold("0%%d"))) == frozenset()
        assert run(lambda: backend.text_candidates(ref, "BODY", fold("qu"))) is None
        # TEXT's LIKE hits are sure matches; BODY's and headers' stay maybe.
        assert run(lambda: backend.text_matches(ref, "TEXT", fold("QUOKKA"))) == (
            {uids[1]}, frozenset())
        assert run(lambda: backend.text_matches(ref, "BODY", fold("QUOKKA"))) == (
            frozenset(), {uids[1]})
        assert _count(postgres_dsn, "body_text") == 2
        run(lambda: backend.store_flags(ref, [uids[0]], FlagOp.ADD, ["\\Deleted"]))
        run(lambda: backend.expunge(ref))
        assert _count(postgres_dsn, "body_text") == 1
    finally:
        close(backend)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # as before v2
        conn.execute("DELETE FROM body_text")
        conn.execute("INSERT INTO body_unindexed(body_id) SELECT id FROM bodies")
    backend = open_pg(postgres_dsn)
    try:
        assert run(lambda: backend.text_candidates(ref, "TEXT", fold("nothing"))) == {uids[1]}
        assert run(lambda: backend.text_matches(ref, "TEXT", fold("nothing"))) == (
            frozenset(), {uids[1]})  # unindexed: to be confirmed
    finally:
        close(backend)
    done = run_cli("doctor", "--reindex", "--store", store_url(postgres_dsn))
    assert "imapd doctor: reindexing 1/1" in done.stderr
    assert "reindexed 1 message bodies" in done.stdout
    assert _count(postgres_dsn, "body_unindexed") == 0
    backend = open_pg(postgres_dsn)
    try:
        assert run(lambda: backend.text_candidates(ref, "TEXT", fold("nothing"))) == frozenset()
        assert run(lambda: backend.text_candidates(ref, "TEXT", fold("quokka"))) == {uids[1]}
    finally:
        close(backend)

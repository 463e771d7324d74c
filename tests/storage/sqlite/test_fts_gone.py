"""Deferred deletion of the SQLite full-text index's rows (schema v5).

An expunge only lists the deleted bodies in ``fts_gone``; their FTS5 rows
(whose deletion re-tokenizes the text: ~11 ms per 50 KB body) are deleted
later by ``fts.purge_gone``, which the writer thread runs in bounded
transactions of its own when idle, and at start-up for a crash's leftovers.
Meanwhile searches must answer as if the rows were gone, also when SQLite
gives a deleted body's id to a new body.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from imapd.mail.backend import MailboxRef
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.message.casemap import fold
from imapd.storage.sqlite import SqliteBackend, fts, schema
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import call, inbox, inline, run, threaded

WAIT = 30.0  # generous: only reached when the purge never runs


def _raw(word: str) -> bytes:
    return (f"From: a@b.example\r\nSubject: note {word}\r\n\r\n"
            f"the word {word} is here\r\n").encode()


WORDS = ["quokka", "wombat", "numbat", "dingo", "bilby"]
NEEDLES = ["quokka", "wombat", "word", "note", "bilby", "here"]


def _counts(path: Path) -> tuple[int, ...]:
    """Rows of body_fts, head_fts and fts_gone."""
    conn = sqlite3.connect(path / DB_FILENAME)
    try:
        return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("body_fts", "head_fts", "fts_gone"))
    finally:
        conn.close()


def _answers(backend: SqliteBackend, ref: MailboxRef) -> list[object]:
    """Every lookup the index answers, for the NEEDLES."""
    out: list[object] = []
    for needle in NEEDLES:
        for scope in ("TEXT", "BODY", "HEADER"):
            out.append(run(backend.text_candidates(ref, scope, fold(needle))))
        out.append(run(backend.text_matches(ref, "TEXT", fold(needle))))
    return out


def _purge_all(path: Path) -> int:
    conn = sqlite3.connect(path / DB_FILENAME, isolation_level=None)
    try:
        total = 0
        while (done := fts.purge_gone(conn, batch=2)) > 0:
            assert done <= 2  # bounded per transaction
            total += done
        return total
    finally:
        conn.close()


def test_expunge_defers_index_deletion_and_searches_ignore_ghost_rows(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("u"))
        box = run(backend.lookup("u", "INBOX"))
        assert box is not None
        uids = run(backend.append(box.ref, [AppendItem(_raw(w)) for w in WORDS])).uids
        gone = uids[:3]
        run(backend.store_flags(box.ref, gone, FlagOp.ADD, ["\\Deleted"]))
        run(backend.expunge(box.ref))
        # The expunge's transaction left the index rows alone: listed only.
        assert _counts(tmp_path) == (5, 5, 3)
        before = _answers(backend, box.ref)
        nothing = (frozenset(), frozenset())
        assert run(backend.text_matches(box.ref, "TEXT", fold("quokka"))) == nothing
        assert run(backend.text_candidates(box.ref, "TEXT", fold("word"))) == set(uids[3:])
        assert run(backend.text_matches(box.ref, "TEXT", fold("here"))) == (
            frozenset(uids[3:]), frozenset())
        assert _purge_all(tmp_path) == 3
        assert _counts(tmp_path) == (2, 2, 0)
        assert _answers(backend, box.ref) == before  # identical before and after the purge
    finally:
        run(backend.close())


@pytest.mark.parametrize("indexed", [True, False])
def test_a_reused_body_id_never_meets_its_predecessors_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexed: bool
) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("u"))
        box = run(backend.lookup("u", "INBOX"))
        assert box is not None
        run(backend.append(box.ref, [AppendItem(_raw("wombat")), AppendItem(_raw("quokka"))]))
        conn = backend.conn
        (old_id,) = conn.execute("SELECT max(id) FROM bodies").fetchone()
        run(backend.store_flags(box.ref, [2], FlagOp.ADD, ["\\Deleted"]))
        run(backend.expunge(box.ref))
        assert _counts(tmp_path)[2] == 1  # quokka's rows pending
        if not indexed:  # the new body too large to index at APPEND
            monkeypatch.setattr(fts, "INDEX_MAX_BYTES", 10)
        new_uid = run(backend.append(box.ref, [AppendItem(_raw("numbat"))])).uids[0]
        (new_id,) = conn.execute("SELECT body_id FROM messages WHERE uid=?", (new_uid,)).fetchone()
        assert new_id == old_id  # SQLite reused the id: the case under test
        sure, maybe = run(backend.text_matches(box.ref, "TEXT", fold("quokka")))
        assert new_uid not in sure  # the old body's text is not the new one's
        if indexed:
            assert (sure, maybe) == (frozenset(), frozenset())
            assert run(backend.text_candidates(box.ref, "TEXT", fold("numbat"))) == {new_uid}
        else:
            assert maybe == {new_uid}  # unindexed: a candidate of everything
        assert _counts(tmp_path)[2] == 0
        assert _purge_all(tmp_path) == 0
        if indexed:  # the purge did not take the new body's rows
            assert run(backend.text_candidates(box.ref, "TEXT", fold("numbat"))) == {new_uid}
    finally:
        run(backend.close())


def _wait_purged(path: Path) -> None:
    deadline = time.monotonic() + WAIT
    while _counts(path)[2] and time.monotonic() < deadline:
        time.sleep(0.05)


def test_writer_thread_purges_after_the_expunge_commit(tmp_path: Path) -> None:
    backend = threaded(tmp_path)
    try:
        ref = inbox(backend)
        uids = call(lambda: backend.append(ref, [AppendItem(_raw(w)) for w in WORDS])).uids
        call(lambda: backend.store_flags(ref, uids[:4], FlagOp.ADD, ["\\Deleted"]))
        call(lambda: backend.expunge(ref))
        _wait_purged(tmp_path)
        assert _counts(tmp_path) == (1, 1, 0)
        assert call(lambda: backend.text_candidates(ref, "TEXT", fold("word"))) == {uids[4]}
    finally:
        call(backend.close)


def test_leftovers_of_a_crash_are_purged_at_start(tmp_path: Path) -> None:
    # Inline mode never purges: its store after an expunge is what a
    # kill -9 between the expunge's COMMIT and the purge leaves on disk.
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("alice"))
        box = run(backend.lookup("alice", "INBOX"))
        assert box is not None
        run(backend.append(box.ref, [AppendItem(_raw(w)) for w in WORDS]))
        run(backend.store_flags(box.ref, [1, 2], FlagOp.ADD, ["\\Deleted"]))
        run(backend.expunge(box.ref))
    finally:
        run(backend.close())
    assert _counts(tmp_path) == (5, 5, 2)
    backend = threaded(tmp_path)
    try:
        ref = inbox(backend)
        _wait_purged(tmp_path)
        assert _counts(tmp_path) == (3, 3, 0)
        assert call(lambda: backend.text_candidates(ref, "TEXT", fold("word"))) == {3, 4, 5}
    finally:
        call(backend.close)


def test_version_4_store_gets_the_deferred_trigger(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    for version in range(1, 5):
        schema._run_script(conn, schema._DDL if version == 1 else schema._MIGRATIONS[version])
    conn.execute("INSERT INTO bodies VALUES(1, 1, x'', x'00')")
    conn.execute("DELETE FROM body_unindexed")
    conn.execute("INSERT INTO body_fts(rowid, text) VALUES(1, 'hello there')")
    conn.execute("PRAGMA user_version=4")
    conn.close()
    conn = schema.connect(tmp_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        conn.execute("DELETE FROM bodies WHERE id=1")
        assert conn.execute("SELECT body_id FROM fts_gone").fetchall() == [(1,)]
        assert conn.execute("SELECT count(*) FROM body_fts").fetchone() == (1,)
        assert fts.purge_gone(conn) == 1
        assert conn.execute("SELECT count(*) FROM body_fts").fetchone() == (0,)
        assert fts.purge_gone(conn) == 0
    finally:
        conn.close()

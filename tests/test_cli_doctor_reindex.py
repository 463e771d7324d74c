"""``imapd doctor --reindex`` (a real ``python -m imapd`` process): the
messages of a store made before SEARCH's full-text index existed get their
index rows, with the progress on stderr, and the store stays sound."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from imapd.mail.records import AppendItem
from imapd.message.casemap import fold
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import inline, run
from tests.support.server import run_cli

MESSAGES = [b"Subject: one\r\n\r\nplain text\r\n", b"Subject: two\r\n\r\nthe quokka\r\n",
            b"Subject: three\r\n\r\nmore plain text\r\n"]


def test_reindex_indexes_the_bodies_stored_before_the_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    backend = inline(data)
    try:
        run(backend.ensure_user("alice"))
        inbox = run(backend.lookup("alice", "INBOX"))
        assert inbox is not None
        uids = run(backend.append(inbox.ref, [AppendItem(m) for m in MESSAGES])).uids
    finally:
        run(backend.close())
    # What the v4 migration leaves: every body listed as not yet indexed.
    conn = sqlite3.connect(data / DB_FILENAME, isolation_level=None)
    conn.execute("DELETE FROM body_fts")
    conn.execute("INSERT INTO body_unindexed(body_id) SELECT id FROM bodies")
    conn.close()

    done = run_cli("doctor", "--reindex", "--data", str(data))
    assert done.returncode == 0, done.stderr
    assert "imapd doctor: reindexing 3/3" in done.stderr
    assert "imapd doctor: reindexed 3 message bodies for SEARCH" in done.stdout
    assert done.stdout.strip().endswith("sound")

    backend = inline(data)
    try:
        assert run(backend.text_candidates(inbox.ref, "TEXT", fold("Quokka"))) == {uids[1]}
    finally:
        run(backend.close())
    again = run_cli("doctor", "--reindex", "--data", str(data))
    assert "reindexed 0 message bodies" in again.stdout

"""``imapd doctor --reindex`` (a real ``python -m imapd`` process) stores
the SORT/THREAD facts (schema v5, ``imapd.storage.sqlite.sortfacts``) of
messages stored before the store kept them: the same bytes delivery
computes, with the progress on stderr; a second run finds nothing to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from imapd.mail.records import AppendItem
from imapd.mail.service import analysis_blob
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import inline, run
from tests.support.server import run_cli

MESSAGES = [b"Subject: Re: one\r\nMessage-ID: <a@x>\r\n\r\ntext\r\n",
            b"Subject: two\r\nReferences: <a@x>\r\n\r\nmore\r\n", b"no header\r\n"]


def _facts(data: Path) -> list[tuple[int, bytes]]:
    conn = sqlite3.connect(data / DB_FILENAME, isolation_level=None)
    try:
        return [(int(b), bytes(f)) for b, f in
                conn.execute("SELECT body_id, facts FROM sort_facts ORDER BY body_id")]
    finally:
        conn.close()


def test_reindex_stores_the_facts_of_older_mail(tmp_path: Path) -> None:
    data = tmp_path / "data"
    backend = inline(data)
    try:
        run(backend.ensure_user("alice"))
        inbox = run(backend.lookup("alice", "INBOX"))
        assert inbox is not None
        run(backend.append(inbox.ref, [AppendItem(m, meta=analysis_blob(m)) for m in MESSAGES]))
    finally:
        run(backend.close())
    delivered = _facts(data)
    assert len(delivered) == len(MESSAGES)
    conn = sqlite3.connect(data / DB_FILENAME, isolation_level=None)
    conn.execute("DELETE FROM sort_facts")  # as a store from before v5
    conn.close()

    done = run_cli("doctor", "--reindex", "--data", str(data))
    assert done.returncode == 0, done.stderr
    assert "imapd doctor: sort facts 3/3" in done.stderr
    assert "imapd doctor: stored SORT/THREAD facts of 3 message bodies" in done.stdout
    assert done.stdout.strip().endswith("sound")
    assert _facts(data) == delivered
    again = run_cli("doctor", "--reindex", "--data", str(data))
    assert "stored SORT/THREAD facts of 0 message bodies" in again.stdout

"""Records of many UIDs spread thin over a large mailbox (a rare word's
matches from the full-text index, issue 18) are looked up by key, not
read as the whole UID range and filtered: the cost follows the UIDs
wanted, not the mailbox (counted in SQLite VM steps, not wall-clock)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from imapd.mail.records import AppendItem
from imapd.storage.sqlite import messages as msgs
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import inline, run

PLAIN = b"From: a@b.example\r\nSubject: hello\r\n\r\nnothing to see\r\n"


def _vm_steps(conn: sqlite3.Connection, query: Callable[[], object]) -> int:
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        query()
    finally:
        conn.set_progress_handler(None, 1)
    return steps[0]


def test_sparse_uids_cost_what_they_fetch(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("u"))
        inbox = run(backend.lookup("u", "INBOX"))
        assert inbox is not None
        uids = run(backend.append(inbox.ref, [AppendItem(PLAIN)] * 6000)).uids
    finally:
        run(backend.close())
    sparse = list(uids[::10])  # 600: above the IN-list limit, a tenth of the range
    dense = list(uids[:600])
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    try:
        got = msgs.records(conn, inbox.ref.id, sparse, False)
        assert [r.uid for r in got] == sparse  # every one, in UID order
        thin = _vm_steps(conn, lambda: msgs.records(conn, inbox.ref.id, sparse, False))
        thick = _vm_steps(conn, lambda: msgs.records(conn, inbox.ref.id, dense, False))
        assert thin < 3 * thick, (thin, thick)
    finally:
        conn.close()

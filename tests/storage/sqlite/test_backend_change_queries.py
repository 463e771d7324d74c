"""Catching up costs O(changes), not O(mailbox): the ``changes_since``
queries of ``SqliteBackend`` over ``messages`` and ``expunged`` by MODSEQ
(RFC 7162 §3.1.4.1, §3.2.5) go through the ``*_by_modseq`` indexes.

Ported from the retired store's contract suite: with ``ORDER BY uid``
SQLite planned the change query through the primary key, a scan of the
whole mailbox on every catch-up (docs/storage.md)."""

from __future__ import annotations

from pathlib import Path

from imapd.mail.records import AppendItem
from tests.storage.sqlite.backend_helpers import USER, inline, run


def test_change_queries_use_the_modseq_index(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user(USER))
        entry = run(backend.lookup(USER, "INBOX"))
        assert entry is not None
        run(backend.append(entry.ref, [AppendItem(b"x\r\n") for _ in range(20)]))
        statements: list[str] = []
        backend.conn.set_trace_callback(statements.append)
        try:
            run(backend.changes_since(entry.ref, 1, 5))
        finally:
            backend.conn.set_trace_callback(None)
        by_modseq = [s for s in statements if "modseq>" in s.replace(" ", "")]
        assert len(by_modseq) == 2, statements  # flag changes and expunges
        for statement in by_modseq:
            plan = " ".join(str(row[3]) for row in backend.conn.execute(
                "EXPLAIN QUERY PLAN " + statement))
            assert "_by_modseq" in plan, (statement, plan)
    finally:
        run(backend.close())

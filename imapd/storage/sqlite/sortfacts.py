"""SORT and THREAD facts beside each body (schema version 5).

``sort_facts`` holds one row per body (``body_id``; copies share it, as
they share the body): ``imapd.message.sortfacts.facts_for``'s bytes,
computed with SEARCH's index texts before the write lock is taken and
inserted in the APPEND's transaction. A table of its own rather than a
column of ``bodies``: a column after ``data`` would make every read walk the
body's overflow pages, and SORT over 100,000 messages reads one narrow row
per message (RFC 5256 §3).

Bodies stored before version 5 (and spooled literals, whose bytes are not
in memory at APPEND) have no row: SORT and THREAD compute their facts from
the analysis as before; ``imapd doctor --reindex`` fills the table
(``reindex``). A trigger drops a body's row when the body is deleted.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Sequence

from imapd.message.sortfacts import facts_for
from imapd.storage.sqlite.messages import uid_filtered
from imapd.storage.sqlite.transactions import write_transaction

MIGRATION = """
CREATE TABLE sort_facts(body_id INTEGER PRIMARY KEY, facts BLOB NOT NULL);
CREATE TRIGGER bodies_sort_facts_gone AFTER DELETE ON bodies BEGIN
    DELETE FROM sort_facts WHERE body_id = OLD.id;
END
"""

_READ = ("SELECT uid, facts FROM messages JOIN sort_facts ON sort_facts.body_id = "
         "messages.body_id WHERE mailbox_id=?")


def store(conn: sqlite3.Connection, body_id: int, facts: bytes | None) -> None:
    """Keep a new body's facts in the caller's transaction (None: none)."""
    if facts is not None:
        conn.execute("INSERT OR REPLACE INTO sort_facts(body_id, facts) VALUES(?, ?)",
                     (body_id, facts))


def read(conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
    """The stored facts of those ``uids`` that have them."""
    return {int(uid): bytes(facts) for uid, facts in uid_filtered(conn, _READ, mailbox_id, uids)}


Progress = Callable[[int, int], None]  # (bodies done, bodies to do)
REINDEX_BATCH = 500


def reindex(conn: sqlite3.Connection, progress: Progress | None = None) -> int:
    """Compute the facts of every body that has none (``imapd doctor
    --reindex``), a batch per write transaction so delivery goes on
    meanwhile; returns how many bodies got facts."""
    missing = "FROM bodies WHERE id > ? AND id NOT IN (SELECT body_id FROM sort_facts)"
    (total,) = conn.execute(f"SELECT count(*) {missing}", (-1,)).fetchone()
    done = 0
    after = -1
    while True:
        with write_transaction(conn):
            rows = conn.execute(
                f"SELECT id, meta, data {missing} ORDER BY id LIMIT ?", (after, REINDEX_BATCH)
            ).fetchall()
            for body_id, meta, data in rows:
                store(conn, int(body_id), facts_for(bytes(data), bytes(meta)))
        if not rows:
            return done
        after = int(rows[-1][0])
        done += len(rows)
        if progress is not None:
            progress(done, max(total, done))

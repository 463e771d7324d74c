"""SORT and THREAD facts beside each body (schema version 3).

As in the SQLite engine (``imapd.storage.sqlite.sortfacts``): one
``sort_facts`` row per body (copies share it), holding
``imapd.message.sortfacts.facts_for``'s bytes, inserted in the APPEND's
transaction, so SORT and THREAD over a large mailbox read one narrow row
per message (RFC 5256 §3). Rows go with their body (``ON DELETE CASCADE``).
Bodies stored before version 3 (and spooled literals) have none: the
commands compute their facts from the analysis as before, and ``imapd
doctor --reindex`` fills them in (``reindex``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from imapd.mail.records import AppendItem
from imapd.message.sortfacts import facts_for

if TYPE_CHECKING:  # runner imports schema, which imports this module
    from imapd.storage.postgres.runner import Conn

# The index on messages(body_id) serves the full-text lookups too: their
# matches are bodies, joined back to the mailbox's messages; without it
# PostgreSQL scanned all of a mailbox's messages for each SEARCH TEXT (a
# 100,000-message mailbox: 24-38 ms of a 53 ms rare-word search).
MIGRATION = """
CREATE TABLE sort_facts(
    body_id BIGINT PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
    facts BYTEA NOT NULL
);
CREATE INDEX messages_by_body ON messages(body_id)
"""


def store_bodies(conn: Conn, body_ids: Sequence[int], items: Sequence[AppendItem]) -> None:
    """The facts of new bodies, in the caller's transaction (one batch)."""
    rows = [(body_id, facts) for body_id, facts in
            ((body_id, facts_for(item.message, item.meta)) for body_id, item in zip(body_ids, items))
            if facts is not None]
    if rows:
        conn.cursor().executemany("INSERT INTO sort_facts(body_id, facts) VALUES(%s, %b)", rows)


def read(conn: Conn, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
    """The stored facts of those ``uids`` that have them."""
    if not uids:
        return {}
    # A correlated lookup by the primary key, not a join: for a batch of
    # 2,048 UIDs the planner hashed the whole sort_facts table (every body
    # of every user) once per batch, quadratic over a large mailbox.
    rows = conn.execute(
        "SELECT m.uid, (SELECT f.facts FROM sort_facts f WHERE f.body_id = m.body_id) "
        "FROM messages m WHERE m.mailbox_id = %s AND m.uid = ANY(%s)",
        (mailbox_id, list(uids))).fetchall()
    return {int(str(uid)): bytes(facts) for uid, facts in rows if facts is not None}


Progress = Callable[[int, int], None]
REINDEX_BATCH = 200


def reindex(conn: Conn, read_body: Callable[[Conn, int], bytes],
            progress: Progress | None = None) -> int:
    """Compute the facts of every body without (``imapd doctor
    --reindex``), a batch per transaction (an autocommit connection);
    ``read_body`` gives a body's bytes."""
    missing = "FROM bodies b WHERE NOT EXISTS (SELECT 1 FROM sort_facts f WHERE f.body_id = b.id)"
    counted = conn.execute(f"SELECT count(*) {missing}").fetchone()
    total = int(str(counted[0])) if counted is not None else 0
    done, after = 0, -1
    while True:
        with conn.transaction():
            found = conn.execute(
                f"SELECT b.id, b.meta {missing} AND b.id > %s ORDER BY b.id LIMIT %s "
                "FOR UPDATE SKIP LOCKED", (after, REINDEX_BATCH)).fetchall()
            for body_id, meta in found:
                assert isinstance(meta, bytes)
                facts = facts_for(read_body(conn, int(str(body_id))), meta)
                if facts is not None:
                    conn.execute("INSERT INTO sort_facts(body_id, facts) VALUES(%s, %b) "
                                 "ON CONFLICT (body_id) DO NOTHING", (body_id, facts))
        if not found:
            return done
        after = int(str(found[-1][0]))
        done += len(found)
        if progress is not None:
            progress(done, max(total, done))

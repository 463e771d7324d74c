"""The full-text index behind SEARCH's string keys (schema version 2).

As in the SQLite engine (``imapd.storage.sqlite.fts``, which explains the
two texts): each body gets one ``body_text`` row holding the text SEARCH
compares (RFC 3501 §6.4.4), already folded with ``i;unicode-casemap``
(RFC 5051): ``text`` for TEXT and BODY, ``hdr`` for the header keys. Each
column has a ``pg_trgm`` GIN index, which PostgreSQL uses for ``LIKE
'%needle%'``; the LIKE itself is then an exact, case-sensitive substring
test on the folded text, so the candidates are exactly the messages whose
text contains the (folded) needle. Needles under three characters give no
trigram to look up: no answer (None), the caller scans.

Rows go with their body (``ON DELETE CASCADE``): expunge, mailbox and
account removal need nothing more. Bodies without a row (stored before
version 2, or too large to index at APPEND time) are listed in
``body_unindexed`` and are always candidates; ``imapd doctor --reindex``
indexes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from imapd.mail.records import AppendItem
from imapd.storage.sqlite.fts import INDEX_MAX_BYTES, MIN_NEEDLE, SCOPES, index_texts

if TYPE_CHECKING:  # runner imports schema, which imports this module
    from imapd.storage.postgres.runner import Conn

MIGRATION = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE body_text(
    body_id BIGINT PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    hdr TEXT NOT NULL
);
CREATE INDEX body_text_text ON body_text USING gin (text gin_trgm_ops);
CREATE INDEX body_text_hdr ON body_text USING gin (hdr gin_trgm_ops);
CREATE TABLE body_unindexed(
    body_id BIGINT PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE
);
INSERT INTO body_unindexed(body_id) SELECT id FROM bodies
"""


def _texts(raw: object, meta: bytes) -> tuple[str, str] | None:
    """The two columns, or None when the body is not indexed now (too large
    for an APPEND's transaction, or a spooled literal)."""
    if not isinstance(raw, bytes) or len(raw) > INDEX_MAX_BYTES:
        return None
    return _storable(*index_texts(raw, meta))


def _storable(text: str, hdr: str) -> tuple[str, str]:
    # PostgreSQL text holds no NUL. A search string never holds one (IMAP
    # strings cannot, RFC 3501 §9 CHAR8), so no occurrence spans one and
    # replacing it keeps every match.
    return text.replace("\0", "\ufffd"), hdr.replace("\0", "\ufffd")


def index_bodies(conn: Conn, body_ids: Sequence[int], items: Sequence[AppendItem]) -> None:
    """Index new bodies in the caller's transaction (one batch per table)."""
    rows: list[tuple[int, str, str]] = []
    skipped: list[tuple[int]] = []
    for body_id, item in zip(body_ids, items):
        texts = _texts(item.message, item.meta)
        if texts is None:
            skipped.append((body_id,))
        else:
            rows.append((body_id, *texts))
    cursor = conn.cursor()
    if rows:
        cursor.executemany("INSERT INTO body_text(body_id, text, hdr) VALUES(%s, %s, %s)", rows)
    if skipped:
        cursor.executemany("INSERT INTO body_unindexed(body_id) VALUES(%s) "
                           "ON CONFLICT DO NOTHING", skipped)


def usable(scope: str, folded: str) -> bool:
    """Can the index narrow this search at all?"""
    return scope in SCOPES and len(folded) >= MIN_NEEDLE and "\0" not in folded


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped + "%"


def candidates(conn: Conn, mailbox_id: int, scope: str, folded: str) -> frozenset[int] | None:
    """UIDs of the mailbox whose ``scope`` text contains ``folded``, plus
    those not indexed; None when the index cannot tell."""
    if not usable(scope, folded):
        return None
    column = "hdr" if scope == "HEADER" else "text"
    rows = conn.execute(
        "SELECT m.uid FROM messages m JOIN body_text t ON t.body_id = m.body_id "
        f"WHERE m.mailbox_id = %s AND t.{column} LIKE %s "
        "UNION SELECT m.uid FROM messages m JOIN body_unindexed u ON u.body_id = m.body_id "
        "WHERE m.mailbox_id = %s",
        (mailbox_id, _like(folded), mailbox_id)).fetchall()
    return frozenset(int(uid) for (uid,) in rows)


def matches(conn: Conn, mailbox_id: int, scope: str,
            folded: str) -> tuple[frozenset[int], frozenset[int]] | None:
    """``(sure, maybe)`` as ``imapd.storage.sqlite.fts.matches``: ``LIKE``
    on ``text`` is already SEARCH TEXT's exact test (the column is the
    evaluator's folded text, RFC 3501 §6.4.4 / RFC 5051), so TEXT's hits are
    sure; BODY and the header keys, unindexed bodies, and a needle holding
    U+FFFD (which may stand for a NUL in the stored text, ``_storable``)
    stay ``maybe``."""
    if not usable(scope, folded):
        return None
    if scope != "TEXT" or "\ufffd" in folded:
        found = candidates(conn, mailbox_id, scope, folded)
        return None if found is None else (frozenset(), found)
    rows = conn.execute(
        "SELECT m.uid, false FROM messages m JOIN body_text t ON t.body_id = m.body_id "
        "WHERE m.mailbox_id = %s AND t.text LIKE %s "
        "UNION ALL SELECT m.uid, true FROM messages m JOIN body_unindexed u "
        "ON u.body_id = m.body_id WHERE m.mailbox_id = %s",
        (mailbox_id, _like(folded), mailbox_id)).fetchall()
    sure = frozenset(int(uid) for uid, unindexed in rows if not unindexed)
    return sure, frozenset(int(uid) for uid, unindexed in rows if unindexed)


Progress = Callable[[int, int], None]
REINDEX_BATCH = 200


def reindex(conn: Conn, read_body: Callable[[Conn, int], bytes],
            progress: Progress | None = None) -> int:
    """Index every body listed as unindexed, a batch per transaction (an
    autocommit connection); ``read_body`` gives a body's bytes."""
    counted = conn.execute("SELECT count(*) FROM body_unindexed").fetchone()
    total = int(str(counted[0])) if counted is not None else 0
    done, after = 0, -1
    while True:
        with conn.transaction():
            ids = [int(b) for (b,) in conn.execute(
                "SELECT body_id FROM body_unindexed WHERE body_id > %s ORDER BY body_id "
                "LIMIT %s FOR UPDATE SKIP LOCKED", (after, REINDEX_BATCH)).fetchall()]
            for body_id in ids:
                found = conn.execute("SELECT meta FROM bodies WHERE id=%s", (body_id,)).fetchone()
                if found is None:
                    continue  # gone meanwhile (its unindexed row went with it)
                meta = found[0]
                assert isinstance(meta, bytes)
                text, hdr = _storable(*index_texts(read_body(conn, body_id), meta))
                conn.execute("INSERT INTO body_text(body_id, text, hdr) VALUES(%s, %s, %s) "
                             "ON CONFLICT (body_id) DO UPDATE SET text=excluded.text, "
                             "hdr=excluded.hdr", (body_id, text, hdr))
                conn.execute("DELETE FROM body_unindexed WHERE body_id=%s", (body_id,))
        if not ids:
            return done
        after = ids[-1]
        done += len(ids)
        if progress is not None:
            progress(done, max(total, done))

"""The full-text index behind SEARCH's string keys (schema version 4).

SEARCH TEXT/BODY/SUBJECT/FROM/... match substrings of decoded text under
``i;unicode-casemap`` (RFC 3501 §6.4.4, RFC 5051). Scanning every message
costs seconds at 100,000 messages, so each body gets a row in two FTS5
tables (rowid = ``bodies.id``; copies share it; two tables because FTS5
without positions cannot filter by column) holding the text the evaluator
compares, already folded with ``casemap.fold``:

* ``body_fts.text``: what SEARCH TEXT searches (``searchable_text(..., "TEXT")``).
  BODY's text is a substring of it (the same chunks after the header; the
  fold maps code point by code point and never reorders across the line
  break that joins them), so BODY uses this column too;
* ``head_fts.hdr``: every top-level header field's folded value, plus for
  FROM/TO/CC/BCC the addresses written plainly (``folded_header_texts``),
  one per line: SUBJECT, FROM, TO, CC, BCC and HEADER look here.

The tokenizer is ``trigram`` with ``case_sensitive 1``: the text is already
folded (trigram's own folding covers ASCII only), and the needle is folded
the same way by the caller. ``detail=none`` keeps no positions (the index
is less than half the size: 4.3 KB instead of 9.4 KB per ~2.5 KB message
of the bench corpus, docs/benchmarks.md § Search), so a lookup asks for rows holding every trigram of the needle (up
to ``MAX_TRIGRAMS`` of them) rather than for them in a row: a *superset*
of the messages containing the needle, which is all the index promises —
the caller confirms each candidate with the exact evaluator (``matches``
confirms TEXT's in SQL instead, from the stored column). Needles under
three characters have no trigram: no answer (None), the caller scans.

Bodies without a row (stored before version 4, or too large to index at
APPEND time) are listed in ``body_unindexed`` and are always candidates;
``imapd doctor --reindex`` indexes them.

Deleting a body's rows is deferred (schema v5). The tables keep their
text, so an FTS5 DELETE re-tokenizes it to write the delete markers: about
11 ms per 50 KB body, 2.2 s for a 200-message POP3 QUIT or EXPUNGE, inside
the expunging transaction under the store's one write lock (SQLite 3.40
here: no ``contentless_delete``, which needs 3.43). So the trigger on
``bodies`` only lists a deleted body's id in ``fts_gone``, and
``purge_gone`` deletes the rows of a few of them per write transaction,
run by the writer thread when it has nothing else to do (after a commit,
and at start-up for leftovers of a crash). Meanwhile the ghost rows are
harmless: every lookup joins the FTS rowid to ``messages.body_id``, and no
message refers to a deleted body. Only an id SQLite reuses for a new body
(``bodies.id`` is not AUTOINCREMENT) could meet its predecessor's rows, so
``index_body`` purges a listed id first, in the inserting transaction.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Callable

from imapd.message import analyze
from imapd.message.headers import split_fields
from imapd.message.infocache import decode_info
from imapd.message.model import MessageInfo
from imapd.message.searchtext import ADDRESS_FIELDS, folded_header_texts, searchable_text
from imapd.storage.sqlite.transactions import write_transaction

# Bodies above this size are not indexed at APPEND (their decoding would hold
# the store's one write lock too long); they stay candidates of every search.
INDEX_MAX_BYTES = 4 * 1024 * 1024
# The scopes a caller may ask about (``MailBackend.text_candidates``).
SCOPES = frozenset({"TEXT", "BODY", "HEADER"})
# FTS5 trigram needs at least three characters to look anything up.
MIN_NEEDLE = 3

MIGRATION = """
CREATE VIRTUAL TABLE body_fts USING fts5(
    text, tokenize='trigram case_sensitive 1', detail=none);
CREATE VIRTUAL TABLE head_fts USING fts5(
    hdr, tokenize='trigram case_sensitive 1', detail=none);
CREATE TABLE body_unindexed(body_id INTEGER PRIMARY KEY);
INSERT INTO body_unindexed(body_id) SELECT id FROM bodies;
CREATE TRIGGER bodies_fts_gone AFTER DELETE ON bodies BEGIN
    DELETE FROM body_fts WHERE rowid = OLD.id;
    DELETE FROM head_fts WHERE rowid = OLD.id;
    DELETE FROM body_unindexed WHERE body_id = OLD.id;
END
"""

# Schema v5: deletion deferred to ``purge_gone`` (module docstring). An
# unindexed body has no rows, so it is not listed.
GONE_MIGRATION = """
CREATE TABLE fts_gone(body_id INTEGER PRIMARY KEY);
DROP TRIGGER bodies_fts_gone;
CREATE TRIGGER bodies_fts_gone AFTER DELETE ON bodies BEGIN
    INSERT OR IGNORE INTO fts_gone(body_id) SELECT OLD.id
        WHERE NOT EXISTS (SELECT 1 FROM body_unindexed WHERE body_id = OLD.id);
    DELETE FROM body_unindexed WHERE body_id = OLD.id;
END
"""
# One purge transaction deletes at most this many bodies' rows, and stops
# starting new ones past this many seconds: with the last body (~11 ms per
# 50 KB) and the COMMIT a step holds the write lock ~45-65 ms (measured,
# docs/benchmarks.md § POP3), which is what a client's write may wait.
PURGE_BATCH = 20
PURGE_SECONDS = 0.035


def _info(raw: bytes, meta: bytes) -> MessageInfo:
    try:
        return decode_info(meta)
    except ValueError:
        return analyze(raw)  # missing or foreign analysis


def index_texts(raw: bytes, meta: bytes) -> tuple[str, str]:
    """The folded (RFC 5051) ``text`` and ``hdr`` columns of one message."""
    info = _info(raw, meta)
    text = searchable_text(raw, info, "TEXT")
    block = bytes(raw[info.root.header_start:info.root.body_start])
    names: dict[str, None] = {}
    for field in split_fields(block)[0]:
        if field.name:
            name = field.name.decode("utf-8", "replace")
            names[name.upper() if name.upper() in ADDRESS_FIELDS else name.lower()] = None
    values = [value for name in names for value in folded_header_texts(raw, info, name)]
    return text, "\n".join(values)


Texts = tuple[str, str]


def texts_for(raw: object, meta: bytes) -> Texts | None:
    """``index_texts`` of a body, or None for one that is too large (or not
    in memory: a spooled literal) and stays unindexed. CPU-bound (decoding):
    the backend runs it before the write is queued, not under the lock."""
    if not isinstance(raw, bytes) or len(raw) > INDEX_MAX_BYTES:
        return None
    return index_texts(raw, meta)


def index_body(conn: sqlite3.Connection, body_id: int, texts: Texts | None) -> None:
    """Index one new body in the caller's transaction (``texts`` from
    ``texts_for``; None records it as unindexed). A reused id's leftover
    rows (``fts_gone``) go first: they would otherwise be found as this
    body's, and TEXT's sure matches would be wrong."""
    _drop_gone(conn, body_id)
    if texts is None:
        conn.execute("INSERT OR IGNORE INTO body_unindexed(body_id) VALUES(?)", (body_id,))
        return
    _insert(conn, body_id, *texts)


def _drop_gone(conn: sqlite3.Connection, body_id: int) -> None:
    if conn.execute("DELETE FROM fts_gone WHERE body_id=?", (body_id,)).rowcount:
        _delete_rows(conn, body_id)


def _delete_rows(conn: sqlite3.Connection, body_id: int) -> None:
    conn.execute("DELETE FROM body_fts WHERE rowid=?", (body_id,))
    conn.execute("DELETE FROM head_fts WHERE rowid=?", (body_id,))


def purge_gone(conn: sqlite3.Connection, batch: int = PURGE_BATCH,
               seconds: float = PURGE_SECONDS) -> int:
    """Delete the index rows of up to ``batch`` deleted bodies (stopping
    early past ``seconds``) in one write transaction of its own; how many
    were done (0: none left). For the writer thread between client writes,
    never inside a client's transaction."""
    if not conn.execute("SELECT EXISTS(SELECT 1 FROM fts_gone)").fetchone()[0]:
        return 0
    started = time.monotonic()
    done = 0
    with write_transaction(conn):
        ids = [int(b) for (b,) in conn.execute(
            "SELECT body_id FROM fts_gone ORDER BY body_id LIMIT ?", (batch,))]
        for body_id in ids:
            conn.execute("DELETE FROM fts_gone WHERE body_id=?", (body_id,))
            # A listed id that is a body again was purged by index_body.
            if not conn.execute("SELECT 1 FROM bodies WHERE id=?", (body_id,)).fetchone():
                _delete_rows(conn, body_id)
            done += 1
            if time.monotonic() - started > seconds:
                break
    return done


def _insert(conn: sqlite3.Connection, body_id: int, text: str, hdr: str) -> None:
    conn.execute("INSERT INTO body_fts(rowid, text) VALUES(?, ?)", (body_id, text))
    conn.execute("INSERT INTO head_fts(rowid, hdr) VALUES(?, ?)", (body_id, hdr))


# Trigrams of a long needle looked up (spread over it): enough to be rare.
MAX_TRIGRAMS = 16


def _query(needle: str) -> str:
    """FTS5 query: every (distinct) trigram of the needle, each an FTS5
    string (quotes doubled), ANDed."""
    grams = list(dict.fromkeys(needle[i:i + 3] for i in range(len(needle) - 2)))
    if len(grams) > MAX_TRIGRAMS:
        step = (len(grams) - 1) / (MAX_TRIGRAMS - 1)
        grams = [grams[round(i * step)] for i in range(MAX_TRIGRAMS)]
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def usable(scope: str, folded: str) -> bool:
    """Can the index narrow this search at all?"""
    return scope in SCOPES and len(folded) >= MIN_NEEDLE and "\0" not in folded


def candidates(
    conn: sqlite3.Connection, mailbox_id: int, scope: str, folded: str
) -> frozenset[int] | None:
    """UIDs of the mailbox whose ``scope`` text may contain ``folded``: every
    message that does, plus perhaps some that do not; None when the index
    cannot tell (see the module docstring)."""
    if not usable(scope, folded):
        return None
    table = "head_fts" if scope == "HEADER" else "body_fts"
    rows = conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id=? AND body_id IN "
        f"(SELECT rowid FROM {table} WHERE {table} MATCH ?)",
        (mailbox_id, _query(folded)),
    ).fetchall()
    return frozenset(int(uid) for (uid,) in rows) | _unindexed(conn, mailbox_id)


def matches(
    conn: sqlite3.Connection, mailbox_id: int, scope: str, folded: str
) -> tuple[frozenset[int], frozenset[int]] | None:
    """``(sure, maybe)``: UIDs whose ``scope`` text certainly contains
    ``folded``, and UIDs still to be confirmed by the caller; the others do
    not match. None when the index cannot tell. Only TEXT is decided here:
    ``body_fts.text`` IS the text SEARCH TEXT compares (``index_texts``), so
    ``instr`` on it is the evaluator's own substring test (RFC 3501 §6.4.4
    under RFC 5051: both sides already folded) and a message matched this
    way is never read. BODY's text is only part of that column and the
    header keys compare field by field, so those candidates stay ``maybe``;
    unindexed bodies are always ``maybe``."""
    if not usable(scope, folded):
        return None
    if scope != "TEXT":
        found = candidates(conn, mailbox_id, scope, folded)
        return None if found is None else (frozenset(), found)
    # The MATCH in a subquery: run once, not once per message of the mailbox
    # (a join lets the planner probe the FTS table per row: 1 s at 2,000).
    rows = conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id=? AND body_id IN "
        "(SELECT rowid FROM body_fts WHERE body_fts MATCH ? AND instr(text, ?) > 0)",
        (mailbox_id, _query(folded), folded),
    ).fetchall()
    sure = frozenset(int(uid) for (uid,) in rows)
    return sure, _unindexed(conn, mailbox_id)


def _unindexed(conn: sqlite3.Connection, mailbox_id: int) -> frozenset[int]:
    if not conn.execute("SELECT EXISTS(SELECT 1 FROM body_unindexed)").fetchone()[0]:
        return frozenset()
    return frozenset(int(uid) for (uid,) in conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id=? AND body_id IN "
        "(SELECT body_id FROM body_unindexed)", (mailbox_id,)))


Progress = Callable[[int, int], None]  # (bodies done, bodies to do)
REINDEX_BATCH = 200


def reindex(conn: sqlite3.Connection, progress: Progress | None = None) -> int:
    """Index every body listed as unindexed (``imapd doctor --reindex``), a
    batch per write transaction so that delivery goes on meanwhile; returns
    how many were indexed. Bodies above ``INDEX_MAX_BYTES`` are indexed
    too: this runs offline, not under an APPEND."""
    (total,) = conn.execute("SELECT count(*) FROM body_unindexed").fetchone()
    done = 0
    after = -1
    while True:
        with write_transaction(conn):
            ids = [int(b) for (b,) in conn.execute(
                "SELECT body_id FROM body_unindexed WHERE body_id > ? ORDER BY body_id LIMIT ?",
                (after, REINDEX_BATCH))]
            for body_id in ids:
                _reindex_one(conn, body_id)
        if not ids:
            return done
        after = ids[-1]
        done += len(ids)
        if progress is not None:
            progress(done, max(total, done))


def _reindex_one(conn: sqlite3.Connection, body_id: int) -> None:
    row = conn.execute("SELECT meta, data FROM bodies WHERE id=?", (body_id,)).fetchone()
    conn.execute("DELETE FROM body_unindexed WHERE body_id=?", (body_id,))
    if row is None:
        return
    conn.execute("DELETE FROM fts_gone WHERE body_id=?", (body_id,))
    _delete_rows(conn, body_id)
    _insert(conn, body_id, *index_texts(bytes(row[1]), bytes(row[0])))

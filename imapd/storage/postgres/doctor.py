"""``imapd doctor`` for the PostgreSQL store: the SQLite engine's checks
(``imapd.storage.sqlite.doctor``, which runs them) in this schema's terms.

Differences: bodies keep their length in ``bodies.size`` and their bytes in
``body_chunks``, so a body whose chunks do not add up to its size is
reported (not repaired: bytes are missing) and chunks of no body are
deleted; quota usage is summed from the messages at each check (no
``usage`` table), so it cannot drift. The checks read one REPEATABLE READ
snapshot (servers keep running); a repair locks the mail tables against
writes (EXCLUSIVE: reads go on) for its one transaction, so servers' writes
wait for it, as with SQLite's write lock.
"""

from __future__ import annotations

from typing import Any

from imapd.mail.flags import decode_keywords
from imapd.storage.sqlite.doctor import Check, Report, examine as _examine

READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
WRITE = (
    "BEGIN",
    "SET LOCAL lock_timeout = '30s'",
    "LOCK TABLE mailboxes, messages, expunged, bodies, body_chunks, keywords IN EXCLUSIVE MODE",
)

_TOPS = """
SELECT b.id, coalesce(u.name, '#' || b.user_id) || '/' || b.name AS label, b.uidnext,
    b.highestmodseq,
    GREATEST(coalesce((SELECT max(uid) FROM messages WHERE mailbox_id = b.id), 0),
             coalesce((SELECT max(uid) FROM expunged WHERE mailbox_id = b.id), 0)) AS top_uid,
    GREATEST(coalesce((SELECT max(modseq) FROM messages WHERE mailbox_id = b.id), 0),
             coalesce((SELECT max(modseq) FROM expunged WHERE mailbox_id = b.id), 0)) AS top_modseq
FROM mailboxes b LEFT JOIN mail_users u ON u.id = b.user_id
"""
_BODY_USE = """
WITH used AS (SELECT body_id, count(*) AS n FROM messages GROUP BY body_id)
SELECT b.id, b.refs, coalesce(used.n, 0) AS n FROM bodies b LEFT JOIN used ON used.body_id = b.id
"""
_CHUNKED = """
WITH c AS (SELECT body_id, sum(octet_length(data)) AS n FROM body_chunks GROUP BY body_id)
SELECT b.id, b.size, coalesce(c.n, 0) FROM bodies b LEFT JOIN c ON c.body_id = b.id
WHERE b.size != coalesce(c.n, 0)
"""
_WRONG_SIZE = "FROM messages m JOIN bodies d ON d.id = m.body_id WHERE m.size != d.size"


def _rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql).fetchall())


def _uidnext_find(conn: Any) -> list[str]:
    return [f"{label}: UID {top} given but UIDNEXT is {uidnext}" for label, top, uidnext in
            _rows(conn, f"SELECT label, top_uid, uidnext FROM ({_TOPS}) t WHERE top_uid >= uidnext")]


def _uidnext_fix(conn: Any) -> str:
    rows = _rows(conn, f"SELECT id, top_uid FROM ({_TOPS}) t WHERE top_uid >= uidnext")
    for mailbox, top in rows:
        conn.execute("UPDATE mailboxes SET uidnext = GREATEST(uidnext, %s) WHERE id = %s",
                     (top + 1, mailbox))
    return f"raised UIDNEXT above the highest UID in {len(rows)} mailbox(es)"


def _modseq_find(conn: Any) -> list[str]:
    return [f"{label}: MODSEQ {top} given but HIGHESTMODSEQ is {high}" for label, top, high in
            _rows(conn, f"SELECT label, top_modseq, highestmodseq FROM ({_TOPS}) t "
                        "WHERE top_modseq > highestmodseq")]


def _modseq_fix(conn: Any) -> str:
    rows = _rows(conn, f"SELECT id, top_modseq FROM ({_TOPS}) t WHERE top_modseq > highestmodseq")
    for mailbox, top in rows:
        conn.execute("UPDATE mailboxes SET highestmodseq = GREATEST(highestmodseq, %s) "
                     "WHERE id = %s", (top, mailbox))
    return f"raised HIGHESTMODSEQ to the highest MODSEQ in {len(rows)} mailbox(es)"


def _expunged_find(conn: Any) -> list[str]:
    lines = [f"mailbox #{mailbox}: UID {uid} is both a message and expunged" for mailbox, uid in
             _rows(conn, "SELECT e.mailbox_id, e.uid FROM expunged e "
                         "JOIN messages m ON m.mailbox_id = e.mailbox_id AND m.uid = e.uid")]
    lines += [f"mailbox #{mailbox}: {n} expunged UID(s) of a mailbox that does not exist"
              for mailbox, n in _rows(conn, "SELECT mailbox_id, count(*) FROM expunged WHERE "
                                            "mailbox_id NOT IN (SELECT id FROM mailboxes) "
                                            "GROUP BY mailbox_id")]
    return lines


def _expunged_fix(conn: Any) -> str:
    both = conn.execute("DELETE FROM expunged WHERE (mailbox_id, uid) IN "
                        "(SELECT mailbox_id, uid FROM messages)").rowcount
    gone = conn.execute("DELETE FROM expunged WHERE mailbox_id NOT IN "
                        "(SELECT id FROM mailboxes)").rowcount
    return f"dropped {both + gone} stale expunged row(s)"


def _missing_bodies_find(conn: Any) -> list[str]:
    return [f"mailbox #{mailbox}: UID {uid} points at missing body #{body}"
            for mailbox, uid, body in _rows(conn, "SELECT m.mailbox_id, m.uid, m.body_id "
                                                  "FROM messages m WHERE NOT EXISTS "
                                                  "(SELECT 1 FROM bodies WHERE id = m.body_id)")]


def _lost_mailbox_find(conn: Any) -> list[str]:
    return [f"mailbox #{mailbox}: {n} message(s) of a mailbox that does not exist"
            for mailbox, n in _rows(conn, "SELECT mailbox_id, count(*) FROM messages WHERE "
                                          "mailbox_id NOT IN (SELECT id FROM mailboxes) "
                                          "GROUP BY mailbox_id")]


def _chunks_find(conn: Any) -> list[str]:
    return [f"body #{body}: size {size} but its chunks hold {n} bytes"
            for body, size, n in _rows(conn, _CHUNKED)]


def _refs_find(conn: Any) -> list[str]:
    return [f"body #{body}: refs {refs} but {n} message(s) point at it" for body, refs, n in
            _rows(conn, f"SELECT * FROM ({_BODY_USE}) u WHERE n > 0 AND n != refs")]


def _refs_fix(conn: Any) -> str:
    rows = _rows(conn, f"SELECT id, n FROM ({_BODY_USE}) u WHERE n > 0 AND n != refs")
    for body, n in rows:
        conn.execute("UPDATE bodies SET refs = %s WHERE id = %s", (n, body))
    return f"recounted the references of {len(rows)} body(ies)"


def _orphans_find(conn: Any) -> list[str]:
    lines = [f"body #{body}: no message points at it (refs {refs})" for body, refs in
             _rows(conn, f"SELECT id, refs FROM ({_BODY_USE}) u WHERE n = 0")]
    lines += [f"body #{body}: {n} chunk(s) of a body that does not exist" for body, n in
              _rows(conn, "SELECT body_id, count(*) FROM body_chunks WHERE body_id NOT IN "
                          "(SELECT id FROM bodies) GROUP BY body_id")]
    return lines


def _orphans_fix(conn: Any) -> str:
    ids = [body for (body,) in _rows(conn, f"SELECT id FROM ({_BODY_USE}) u WHERE n = 0")]
    conn.execute("DELETE FROM body_chunks WHERE body_id = ANY(%s)", (ids,))
    conn.execute("DELETE FROM bodies WHERE id = ANY(%s)", (ids,))
    chunks = conn.execute("DELETE FROM body_chunks WHERE body_id NOT IN "
                          "(SELECT id FROM bodies)").rowcount
    return f"deleted {len(ids)} orphaned body(ies) and {chunks} stray chunk(s)"


def _size_find(conn: Any) -> list[str]:
    return [f"mailbox #{mailbox}: UID {uid} has size {size} but its body is {length} bytes"
            for mailbox, uid, size, length in
            _rows(conn, f"SELECT m.mailbox_id, m.uid, m.size, d.size {_WRONG_SIZE}")]


def _size_fix(conn: Any) -> str:
    count = conn.execute("UPDATE messages m SET size = d.size FROM bodies d "
                         "WHERE d.id = m.body_id AND m.size != d.size").rowcount
    return f"set the size of {count} message(s) to their body's length"


def _missing_keywords(conn: Any) -> list[tuple[int, str]]:
    known = {(int(m), str(f)) for m, f in _rows(conn, "SELECT mailbox_id, folded FROM keywords")}
    missing: dict[tuple[int, str], str] = {}
    for mailbox, text in _rows(conn, "SELECT DISTINCT mailbox_id, keywords FROM messages "
                                     "WHERE keywords != ''"):
        for keyword in decode_keywords(str(text)):
            if (int(mailbox), keyword.lower()) not in known:
                missing.setdefault((int(mailbox), keyword.lower()), keyword)
    return sorted((mailbox, keyword) for (mailbox, _), keyword in missing.items())


def _keywords_find(conn: Any) -> list[str]:
    return [f"mailbox #{mailbox}: keyword {keyword!r} is set on messages but not listed"
            for mailbox, keyword in _missing_keywords(conn)]


def _keywords_fix(conn: Any) -> str:
    missing = _missing_keywords(conn)
    for mailbox, keyword in missing:
        conn.execute("INSERT INTO keywords(mailbox_id, folded, name) VALUES(%s, %s, %s) "
                     "ON CONFLICT DO NOTHING", (mailbox, keyword.lower(), keyword))
    return f"listed {len(missing)} keyword(s) in their mailbox (FLAGS, RFC 3501 §7.2.6)"


CHECKS: tuple[Check, ...] = (
    Check("uidnext", _uidnext_find, _uidnext_fix),
    Check("modseq", _modseq_find, _modseq_fix),
    Check("expunged", _expunged_find, _expunged_fix),
    Check("missing-body", _missing_bodies_find, None),
    Check("lost-mailbox", _lost_mailbox_find, None),
    Check("body-chunks", _chunks_find, None),
    Check("refs", _refs_find, _refs_fix),
    Check("orphan-body", _orphans_find, _orphans_fix),
    Check("size", _size_find, _size_fix),
    Check("keywords", _keywords_find, _keywords_fix),
)


def examine(conn: Any, repair: bool) -> Report:
    """``imapd doctor`` on an autocommit psycopg connection."""
    return _examine(conn, repair, CHECKS, READ, WRITE)

"""``imapd doctor``: the invariants of the SQLite store, checked and,
where it is safe, repaired.

Each check finds its problems in one read snapshot (WAL: the server keeps
running and writing) and reports one line per problem. A repair runs in one
write transaction (``BEGIN IMMEDIATE``: the server's writes wait for it, so
prefer a stopped server) and is checked again afterwards. What is repaired
never loses mail: counters are raised or recounted (UIDNEXT above every UID
ever given, RFC 3501 §2.3.1.1; HIGHESTMODSEQ at least every MODSEQ given,
RFC 7162 §3.1), the quota ``usage`` rows are recomputed from the messages
(RFC 9208 §5), sizes are set to the stored body's length (RFC 3501 §2.3.4:
RFC822.SIZE is the message's size), missing keyword rows are added, stale
EXPUNGED history of messages that exist is dropped, and bodies no message
points at are deleted. Messages whose body or mailbox is gone are reported
but not touched: that needs a person (restore from a backup).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from imapd.mail.flags import decode_keywords

MAX_LINES_PER_CHECK = 20  # a badly damaged store must not print a line per row

_LABEL = "coalesce(u.name, '#' || b.user_id) || '/' || b.name"
_TOPS = f"""
SELECT b.id, {_LABEL} AS label, b.uidnext, b.highestmodseq,
    max(coalesce((SELECT max(uid) FROM messages WHERE mailbox_id = b.id), 0),
        coalesce((SELECT max(uid) FROM expunged WHERE mailbox_id = b.id), 0)) AS top_uid,
    max(coalesce((SELECT max(modseq) FROM messages WHERE mailbox_id = b.id), 0),
        coalesce((SELECT max(modseq) FROM expunged WHERE mailbox_id = b.id), 0)) AS top_modseq
FROM mailboxes b LEFT JOIN users u ON u.id = b.user_id
"""
_BODY_USE = """
WITH used AS (SELECT body_id, count(*) AS n FROM messages GROUP BY body_id)
SELECT b.id, b.refs, coalesce(used.n, 0) AS n FROM bodies b LEFT JOIN used ON used.body_id = b.id
"""
_ACTUAL_USAGE = """
SELECT b.user_id AS user_id, sum(m.size) AS bytes, count(*) AS n
FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id GROUP BY b.user_id
"""


@dataclass(frozen=True)
class Check:
    """One invariant: ``find`` lists its violations (one line each);
    ``fix`` repairs them and says what it did (None: not repairable)."""

    name: str
    find: Callable[[Any], list[str]]  # the engine's connection
    fix: Callable[[Any], str] | None


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)  # as found (bounded per check)
    repairs: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)  # names of checks still failing

    @property
    def clean(self) -> bool:
        return not self.remaining


def _uidnext_find(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(f"SELECT label, top_uid, uidnext FROM ({_TOPS}) WHERE top_uid >= uidnext")
    return [f"{label}: UID {top} given but UIDNEXT is {uidnext}" for label, top, uidnext in rows]


def _uidnext_fix(conn: sqlite3.Connection) -> str:
    rows = conn.execute(f"SELECT id, top_uid FROM ({_TOPS}) WHERE top_uid >= uidnext").fetchall()
    conn.executemany("UPDATE mailboxes SET uidnext=? WHERE id=?", [(top + 1, i) for i, top in rows])
    return f"raised UIDNEXT above the highest UID in {len(rows)} mailbox(es)"


def _modseq_find(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        f"SELECT label, top_modseq, highestmodseq FROM ({_TOPS}) WHERE top_modseq > highestmodseq")
    return [f"{label}: MODSEQ {top} given but HIGHESTMODSEQ is {high}" for label, top, high in rows]


def _modseq_fix(conn: sqlite3.Connection) -> str:
    rows = conn.execute(
        f"SELECT id, top_modseq FROM ({_TOPS}) WHERE top_modseq > highestmodseq").fetchall()
    conn.executemany("UPDATE mailboxes SET highestmodseq=? WHERE id=?",
                     [(top, i) for i, top in rows])
    return f"raised HIGHESTMODSEQ to the highest MODSEQ in {len(rows)} mailbox(es)"


def _expunged_find(conn: sqlite3.Connection) -> list[str]:
    lines = [f"mailbox #{mailbox}: UID {uid} is both a message and expunged" for mailbox, uid in
             conn.execute("SELECT e.mailbox_id, e.uid FROM expunged e "
                          "JOIN messages m ON m.mailbox_id = e.mailbox_id AND m.uid = e.uid")]
    lines += [f"mailbox #{mailbox}: {n} expunged UID(s) of a mailbox that does not exist"
              for mailbox, n in conn.execute(
                  "SELECT mailbox_id, count(*) FROM expunged "
                  "WHERE mailbox_id NOT IN (SELECT id FROM mailboxes) GROUP BY mailbox_id")]
    return lines


def _expunged_fix(conn: sqlite3.Connection) -> str:
    both = conn.execute("DELETE FROM expunged WHERE (mailbox_id, uid) IN "
                        "(SELECT mailbox_id, uid FROM messages)").rowcount
    gone = conn.execute("DELETE FROM expunged WHERE mailbox_id NOT IN "
                        "(SELECT id FROM mailboxes)").rowcount
    return f"dropped {both + gone} stale expunged row(s)"


def _refs_find(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(f"SELECT * FROM ({_BODY_USE}) WHERE n > 0 AND n != refs")
    return [f"body #{body}: refs {refs} but {n} message(s) point at it" for body, refs, n in rows]


def _refs_fix(conn: sqlite3.Connection) -> str:
    rows = conn.execute(f"SELECT id, n FROM ({_BODY_USE}) WHERE n > 0 AND n != refs").fetchall()
    conn.executemany("UPDATE bodies SET refs=? WHERE id=?", [(n, body) for body, n in rows])
    return f"recounted the references of {len(rows)} body(ies)"


def _orphans_find(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(f"SELECT id, refs FROM ({_BODY_USE}) WHERE n = 0")
    return [f"body #{body}: no message points at it (refs {refs})" for body, refs in rows]


def _orphans_fix(conn: sqlite3.Connection) -> str:
    ids = [(body,) for (body,) in conn.execute(f"SELECT id FROM ({_BODY_USE}) WHERE n = 0")]
    conn.executemany("DELETE FROM bodies WHERE id=?", ids)
    return f"deleted {len(ids)} orphaned body(ies)"


def _missing_bodies_find(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT m.mailbox_id, m.uid, m.body_id FROM messages m "
                        "WHERE NOT EXISTS (SELECT 1 FROM bodies WHERE id = m.body_id)")
    return [f"mailbox #{mailbox}: UID {uid} points at missing body #{body}"
            for mailbox, uid, body in rows]


def _lost_mailbox_find(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT mailbox_id, count(*) FROM messages "
                        "WHERE mailbox_id NOT IN (SELECT id FROM mailboxes) GROUP BY mailbox_id")
    return [f"mailbox #{mailbox}: {n} message(s) of a mailbox that does not exist"
            for mailbox, n in rows]


_WRONG_SIZE = ("FROM messages m JOIN bodies d ON d.id = m.body_id "
               "WHERE m.size != length(d.data)")


def _size_find(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(f"SELECT m.mailbox_id, m.uid, m.size, length(d.data) {_WRONG_SIZE}")
    return [f"mailbox #{mailbox}: UID {uid} has size {size} but its body is {length} bytes"
            for mailbox, uid, size, length in rows]


def _size_fix(conn: sqlite3.Connection) -> str:
    # The usage_moved trigger (schema version 3) moves the quota usage along.
    rows = conn.execute(f"SELECT m.mailbox_id, m.uid, length(d.data) {_WRONG_SIZE}").fetchall()
    conn.executemany("UPDATE messages SET size=? WHERE mailbox_id=? AND uid=?",
                     [(length, mailbox, uid) for mailbox, uid, length in rows])
    return f"set the size of {len(rows)} message(s) to their body's length"


def _usage_rows(conn: sqlite3.Connection) -> list[tuple[str, int, int, int, int]]:
    rows = conn.execute(f"""
        WITH actual AS ({_ACTUAL_USAGE}),
             ids AS (SELECT user_id FROM actual UNION SELECT user_id FROM usage)
        SELECT coalesce(s.name, '#' || ids.user_id), coalesce(u.bytes, 0), coalesce(u.messages, 0),
               coalesce(a.bytes, 0), coalesce(a.n, 0)
        FROM ids LEFT JOIN usage u ON u.user_id = ids.user_id
                 LEFT JOIN actual a ON a.user_id = ids.user_id
                 LEFT JOIN users s ON s.id = ids.user_id
        WHERE coalesce(u.bytes, 0) != coalesce(a.bytes, 0)
           OR coalesce(u.messages, 0) != coalesce(a.n, 0)""")
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def _usage_find(conn: sqlite3.Connection) -> list[str]:
    return [f"{name}: quota usage says {bytes_} bytes in {count} message(s), "
            f"the messages hold {real_bytes} bytes in {real_count}"
            for name, bytes_, count, real_bytes, real_count in _usage_rows(conn)]


def _usage_fix(conn: sqlite3.Connection) -> str:
    count = len(_usage_rows(conn))
    conn.execute("DELETE FROM usage")
    conn.execute(f"INSERT INTO usage(user_id, bytes, messages) {_ACTUAL_USAGE}")
    return f"recomputed the quota usage of {count} user(s) from their messages"


def _missing_keywords(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    known = set(conn.execute("SELECT mailbox_id, folded FROM keywords").fetchall())
    missing: dict[tuple[int, str], str] = {}
    for mailbox, text in conn.execute(
            "SELECT DISTINCT mailbox_id, keywords FROM messages WHERE keywords != ''"):
        for keyword in decode_keywords(text):
            if (mailbox, keyword.lower()) not in known:
                missing.setdefault((mailbox, keyword.lower()), keyword)
    return sorted((mailbox, keyword) for (mailbox, _), keyword in missing.items())


def _keywords_find(conn: sqlite3.Connection) -> list[str]:
    return [f"mailbox #{mailbox}: keyword {keyword!r} is set on messages but not listed"
            for mailbox, keyword in _missing_keywords(conn)]


def _keywords_fix(conn: sqlite3.Connection) -> str:
    missing = _missing_keywords(conn)
    conn.executemany("INSERT OR IGNORE INTO keywords(mailbox_id, folded, name) VALUES(?, ?, ?)",
                     [(mailbox, keyword.lower(), keyword) for mailbox, keyword in missing])
    return f"listed {len(missing)} keyword(s) in their mailbox (FLAGS, RFC 3501 §7.2.6)"


# In repair order: sizes before usage (the trigger moves usage with a size),
# refs before orphans.
CHECKS: tuple[Check, ...] = (
    Check("uidnext", _uidnext_find, _uidnext_fix),
    Check("modseq", _modseq_find, _modseq_fix),
    Check("expunged", _expunged_find, _expunged_fix),
    Check("missing-body", _missing_bodies_find, None),
    Check("lost-mailbox", _lost_mailbox_find, None),
    Check("refs", _refs_find, _refs_fix),
    Check("orphan-body", _orphans_find, _orphans_fix),
    Check("size", _size_find, _size_fix),
    Check("usage", _usage_find, _usage_fix),
    Check("keywords", _keywords_find, _keywords_fix),
)


def _bounded(name: str, lines: list[str]) -> list[str]:
    shown = [f"{name}: {line}" for line in lines[:MAX_LINES_PER_CHECK]]
    if len(lines) > MAX_LINES_PER_CHECK:
        shown.append(f"{name}: ... and {len(lines) - MAX_LINES_PER_CHECK} more")
    return shown


def diagnose(conn: Any, checks: Sequence[Check] = CHECKS, begin: str = "BEGIN") -> dict[str, list[str]]:
    """Every check's problems (unbounded), from one read snapshot."""
    conn.execute(begin)
    try:
        return {check.name: check.find(conn) for check in checks}
    finally:
        conn.execute("COMMIT")


def examine(
    conn: Any, repair: bool, checks: Sequence[Check] = CHECKS,
    begin_read: str = "BEGIN", begin_write: Sequence[str] = ("BEGIN IMMEDIATE",),
) -> Report:
    """Check the store on ``conn`` (autocommit mode) and, with ``repair``,
    fix what is safe in one write transaction (opened by the statements
    ``begin_write``), then check again. The defaults are SQLite's; the
    PostgreSQL engine passes its own checks and statements."""
    report = Report()
    found = diagnose(conn, checks, begin_read)
    for check in checks:
        report.problems += _bounded(check.name, found[check.name])
    failing = [check for check in checks if found[check.name]]
    if repair and any(check.fix for check in failing):
        for statement in begin_write:
            conn.execute(statement)
        try:
            for check in failing:
                if check.fix is not None:
                    report.repairs.append(f"{check.name}: {check.fix(conn)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        found = diagnose(conn, checks, begin_read)
        failing = [check for check in checks if found[check.name]]
    report.remaining = [check.name for check in failing]
    return report

"""Message operations of the SQLite store (RFC 3501 §6.3.11, §6.4).

Functions here run inside a transaction opened by the caller and take the
mailbox row read in that transaction. Every change bumps the mailbox's
HIGHESTMODSEQ once and gives that MODSEQ to every message it touched
(RFC 7162 §3.1: "each STORE command ... gets a different mod-sequence").
"""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from imapd.core.errors import ImapError
from imapd.mail.flags import (
    DELETED_BIT, FlagOp, decode_keywords, encode_keywords, split_flags,
)
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MessageRecord, StoreResult,
)
from imapd.storage.rows import date_columns, date_value, decode_flags, plan_store
from imapd.storage.rows import MailboxRow
from imapd.storage.sqlite import fts
from imapd.storage.sqlite.mailboxes import count_bodies, release_bodies

MAX_UID = 2**32 - 1          # nz-number, RFC 3501 §9
# Bodies above this size are written into a zeroblob in pieces (incremental
# blob I/O) instead of being bound as one parameter, which SQLite copies
# whole (the bound value, then the record): a large APPEND, whose message
# is a spooled literal (imapd.core.spool), never sits in memory in one piece.
BLOB_PIECES_ABOVE = 256 * 1024
BLOB_PIECE = 1024 * 1024
MAX_KEYWORDS_PER_MAILBOX = 1000
_IN_LIST_LIMIT = 500         # larger UID lists are read as a range and filtered,
_SPARSE = 8                  # unless the range holds 8 times more UIDs than wanted
_IN_BATCH = 500              # UIDs bound in one IN list (SQLite's parameter bound)


def uid_filtered(
    conn: sqlite3.Connection, prefix: str, mailbox_id: int, uids: Sequence[int] | None
) -> list[Any]:
    """Run ``prefix`` (a SELECT whose first column is ``uid``, ending in a
    ``WHERE ... mailbox_id=?``) restricted to ``uids``, ordered by UID."""
    if uids is None:
        return conn.execute(f"{prefix} ORDER BY uid", (mailbox_id,)).fetchall()
    wanted = sorted(set(uids))
    if not wanted:
        return []
    span = wanted[-1] - wanted[0] + 1
    if len(wanted) <= _IN_LIST_LIMIT or span > _SPARSE * len(wanted):
        # Few UIDs, or many spread thin (a rare word's matches): look each
        # up by key, a list at a time, rather than read the whole range.
        found: list[Any] = []
        for start in range(0, len(wanted), _IN_BATCH):
            chunk = wanted[start:start + _IN_BATCH]
            marks = ",".join("?" * len(chunk))
            found += conn.execute(
                f"{prefix} AND uid IN ({marks}) ORDER BY uid", (mailbox_id, *chunk)
            ).fetchall()
        return found
    rows = conn.execute(
        f"{prefix} AND uid BETWEEN ? AND ? ORDER BY uid", (mailbox_id, wanted[0], wanted[-1])
    ).fetchall()
    if wanted[-1] - wanted[0] + 1 == len(wanted):
        return rows  # every UID of the range is wanted
    wanted_set = set(wanted)
    return [row for row in rows if row[0] in wanted_set]


def map_keywords(
    conn: sqlite3.Connection, mailbox_id: int, keywords: tuple[str, ...], define: bool
) -> tuple[str, ...]:
    """Respell keywords as the mailbox first saw them (case-insensitive);
    with ``define``, unknown keywords are added to the mailbox's list."""
    mapped: list[str] = []
    for keyword in keywords:
        folded = keyword.lower()
        row = conn.execute(
            "SELECT name FROM keywords WHERE mailbox_id=? AND folded=?", (mailbox_id, folded)
        ).fetchone()
        if row is not None:
            mapped.append(str(row[0]))
            continue
        if define:
            (count,) = conn.execute(
                "SELECT count(*) FROM keywords WHERE mailbox_id=?", (mailbox_id,)
            ).fetchone()
            if count >= MAX_KEYWORDS_PER_MAILBOX:
                raise ImapError.no("Too many keywords in this mailbox", "LIMIT")
            conn.execute(
                "INSERT INTO keywords(mailbox_id, folded, name) VALUES(?, ?, ?)",
                (mailbox_id, folded, keyword),
            )
        mapped.append(keyword)
    return tuple(mapped)


def _allocate(conn: sqlite3.Connection, row: MailboxRow, count: int) -> tuple[int, int]:
    """Reserve ``count`` UIDs and one MODSEQ; returns (first UID, MODSEQ)."""
    if row.uidnext + count - 1 > MAX_UID:
        raise ImapError.no("No more UIDs in this mailbox", "LIMIT")
    uidnext, modseq = conn.execute(
        "UPDATE mailboxes SET uidnext=uidnext+?, highestmodseq=highestmodseq+1 "
        "WHERE id=? RETURNING uidnext, highestmodseq",
        (count, row.id),
    ).fetchone()
    return int(uidnext) - count, int(modseq)


def bump_modseq(conn: sqlite3.Connection, mailbox_id: int) -> int:
    (modseq,) = conn.execute(
        "UPDATE mailboxes SET highestmodseq=highestmodseq+1 WHERE id=? RETURNING highestmodseq",
        (mailbox_id,),
    ).fetchone()
    return int(modseq)


def append(conn: sqlite3.Connection, row: MailboxRow, items: Sequence[AppendItem],
           texts: Sequence[fts.Texts | None],
           facts: Sequence[bytes | None] | None = None) -> AppendResult:
    """Insert the messages, with SEARCH's index ``texts`` (``fts.texts_for``,
    one per item, computed before the write) and SORT/THREAD's ``facts``
    (``message.sortfacts.facts_for``, one per item, or None for none); flags
    and dates are validated before any write."""
    prepared = [(split_flags(item.flags), date_columns(item.internal_date)) for item in items]
    first, modseq = _allocate(conn, row, len(items))
    uids: list[int] = []
    for offset, (item, ((bits, keywords), (seconds, minutes))) in enumerate(zip(items, prepared)):
        keywords = map_keywords(conn, row.id, keywords, define=True)
        body_id = _insert_body(conn, item, texts[offset])
        if facts is not None and facts[offset] is not None:
            conn.execute("INSERT INTO sort_facts(body_id, facts) VALUES(?, ?)",
                         (body_id, facts[offset]))
        uid = first + offset
        conn.execute(
            "INSERT INTO messages(mailbox_id, uid, body_id, internal_date, tz_minutes, size, "
            "sysflags, keywords, modseq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row.id, uid, body_id, seconds, minutes, len(item.message), bits,
             encode_keywords(keywords), modseq),
        )
        uids.append(uid)
    return AppendResult(row.uidvalidity, tuple(uids))


def _insert_body(conn: sqlite3.Connection, item: AppendItem, texts: fts.Texts | None) -> int:
    """Insert the message's bytes and analysis; the new body's id."""
    size = len(item.message)
    if size <= BLOB_PIECES_ABOVE:
        cursor = conn.execute(
            "INSERT INTO bodies(refs, meta, data) VALUES(1, ?, ?)", (item.meta, item.message)
        )
    else:
        cursor = conn.execute(
            "INSERT INTO bodies(refs, meta, data) VALUES(1, ?, zeroblob(?))", (item.meta, size)
        )
    body_id = cursor.lastrowid
    assert body_id is not None
    if size > BLOB_PIECES_ABOVE:
        with conn.blobopen("bodies", "data", body_id) as blob, memoryview(item.message) as view:
            for start in range(0, size, BLOB_PIECE):
                blob.write(view[start:start + BLOB_PIECE])
    # SEARCH's index, in the same transaction as the body (schema v4).
    fts.index_body(conn, body_id, texts)
    return body_id


def store_flags(
    conn: sqlite3.Connection,
    row: MailboxRow,
    uids: Sequence[int],
    op: FlagOp,
    given: tuple[int, tuple[str, ...]],
    unchangedsince: int | None,
) -> tuple[StoreResult, dict[int, int]]:
    """STORE. Returns the result and, for each changed UID, its MODSEQ
    before the change (the sync layer uses it to tell own changes apart)."""
    bits, keywords = given
    keywords = map_keywords(conn, row.id, keywords, define=op is not FlagOp.REMOVE)
    rows = uid_filtered(
        conn, "SELECT uid, sysflags, keywords, modseq FROM messages WHERE mailbox_id=?",
        row.id, uids,
    )
    plan = plan_store(rows, op, bits, keywords, unchangedsince)
    modseq = 0
    if plan.updates:
        modseq = bump_modseq(conn, row.id)
        conn.executemany(
            "UPDATE messages SET sysflags=?, keywords=?, modseq=? WHERE mailbox_id=? AND uid=?",
            [(b, t, modseq, row.id, uid) for uid, b, t in plan.updates],
        )
    result = StoreResult(plan.stamped(modseq), frozenset(plan.prior), tuple(plan.modified))
    return result, plan.prior


def remove_messages(conn: sqlite3.Connection, mailbox_id: int, rows: list[Any],
                    modseq: int | None = None) -> int | None:
    """Delete (uid, body_id) rows, remembering them as expunged at a new
    MODSEQ (RFC 7162 §3.2.5.2), or at ``modseq`` when the caller has
    already taken one for the same call. Returns that MODSEQ, or None if no
    rows."""
    if not rows:
        return None
    if modseq is None:
        modseq = bump_modseq(conn, mailbox_id)
    conn.executemany(
        "DELETE FROM messages WHERE mailbox_id=? AND uid=?", [(mailbox_id, r[0]) for r in rows]
    )
    conn.executemany(
        "INSERT INTO expunged(mailbox_id, uid, modseq) VALUES(?, ?, ?)",
        [(mailbox_id, r[0], modseq) for r in rows],
    )
    release_bodies(conn, count_bodies([int(r[1]) for r in rows]))
    return modseq


def expunge(conn: sqlite3.Connection, row: MailboxRow, uids: Sequence[int] | None) -> list[int]:
    rows = uid_filtered(
        conn,
        f"SELECT uid, body_id FROM messages WHERE sysflags & {DELETED_BIT} AND mailbox_id=?",
        row.id, uids,
    )
    remove_messages(conn, row.id, rows)
    return [int(r[0]) for r in rows]


def store_and_expunge(
    conn: sqlite3.Connection, row: MailboxRow, uids: Sequence[int],
    given: tuple[int, tuple[str, ...]], expunge: Sequence[int],
) -> tuple[list[int], int]:
    """POP3's UPDATE (RFC 1939 §6, ``MailBackend.store_and_expunge``): add
    the ``given`` flags to ``uids`` and remove ``expunge``, whatever their
    flags, under one new MODSEQ. Returns the UIDs removed and that MODSEQ
    (0 when nothing changed)."""
    bits, keywords = given
    keywords = map_keywords(conn, row.id, keywords, define=True)
    gone = uid_filtered(conn, "SELECT uid, body_id FROM messages WHERE mailbox_id=?",
                        row.id, expunge)
    removed = {int(r[0]) for r in gone}
    rows = uid_filtered(
        conn, "SELECT uid, sysflags, keywords, modseq FROM messages WHERE mailbox_id=?",
        row.id, [uid for uid in uids if uid not in removed],
    )
    plan = plan_store(rows, FlagOp.ADD, bits, keywords, None)
    if not plan.updates and not gone:
        return [], 0
    modseq = bump_modseq(conn, row.id)
    conn.executemany(
        "UPDATE messages SET sysflags=?, keywords=?, modseq=? WHERE mailbox_id=? AND uid=?",
        [(b, t, modseq, row.id, uid) for uid, b, t in plan.updates],
    )
    remove_messages(conn, row.id, gone, modseq)
    return sorted(removed), modseq


def copy(
    conn: sqlite3.Connection, source_id: int, uids: Sequence[int], target: MailboxRow
) -> tuple[CopyResult, list[Any]]:
    """COPY; returns the result and the source (uid, body_id) rows copied."""
    rows = uid_filtered(
        conn,
        "SELECT uid, body_id, internal_date, tz_minutes, size, sysflags, keywords "
        "FROM messages WHERE mailbox_id=?",
        source_id, uids,
    )
    if not rows:
        return CopyResult(target.uidvalidity, ()), []
    first, modseq = _allocate(conn, target, len(rows))
    respelled: dict[str, str] = {}
    inserts = []
    for offset, (uid, body_id, seconds, minutes, size, bits, text) in enumerate(rows):
        if source_id != target.id and text and text not in respelled:
            mapped = map_keywords(conn, target.id, decode_keywords(text), define=True)
            respelled[text] = encode_keywords(mapped)
        inserts.append((target.id, first + offset, body_id, seconds, minutes, size, bits,
                        respelled.get(text, text), modseq))
    conn.executemany(
        "INSERT INTO messages(mailbox_id, uid, body_id, internal_date, tz_minutes, size, "
        "sysflags, keywords, modseq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        inserts,
    )
    counts = count_bodies([int(r[1]) for r in rows])
    conn.executemany(
        "UPDATE bodies SET refs=refs+? WHERE id=?", [(n, b) for b, n in counts.items()]
    )
    pairs = tuple((int(r[0]), first + i) for i, r in enumerate(rows))
    return CopyResult(target.uidvalidity, pairs), [(r[0], r[1]) for r in rows]


def records(
    conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int] | None, with_meta: bool
) -> list[MessageRecord]:
    if with_meta:
        prefix = (
            "SELECT uid, sysflags, keywords, internal_date, tz_minutes, size, modseq, "
            "(SELECT meta FROM bodies WHERE bodies.id=body_id) FROM messages WHERE mailbox_id=?"
        )
    else:
        prefix = (
            "SELECT uid, sysflags, keywords, internal_date, tz_minutes, size, modseq "
            "FROM messages WHERE mailbox_id=?"
        )
    result: list[MessageRecord] = []
    for row in uid_filtered(conn, prefix, mailbox_id, uids):
        result.append(MessageRecord(
            uid=row[0],
            flags=decode_flags(row[1], row[2]),
            internal_date=date_value(row[3], row[4]),
            size=row[5],
            modseq=row[6],
            meta=bytes(row[7]) if with_meta else b"",
        ))
    return result


# Both flag columns in one: the system-flag bits alone (an int) when there
# are no keywords, as most messages have, else "bits keywords" (text).
_FLAG_ROWS = (
    "SELECT uid, CASE keywords WHEN '' THEN sysflags ELSE sysflags || ' ' || keywords END, "
    "modseq FROM messages WHERE mailbox_id=?"
)


def _unpack_flags(packed: int | str) -> tuple[str, ...]:
    if isinstance(packed, int):
        return decode_flags(packed, "")
    bits, _, keywords = packed.partition(" ")
    return decode_flags(int(bits), keywords)


def flag_states(
    conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int] | None
) -> list[FlagState]:
    """Flags and MODSEQ by UID, ascending. The flags of 100,000 messages
    (``UID FETCH 1:* (UID FLAGS)``) are a handful of distinct sets: each is
    decoded once per call, and the states are built without the
    NamedTuple constructor's Python-level call."""
    decoded: dict[int | str, tuple[str, ...]] = {}
    make = tuple.__new__
    states: list[FlagState] = []
    for uid, packed, modseq in uid_filtered(conn, _FLAG_ROWS, mailbox_id, uids):
        flags = decoded.get(packed)
        if flags is None:
            flags = decoded[packed] = _unpack_flags(packed)
        states.append(make(FlagState, (uid, flags, modseq)))
    return states


def body_of(conn: sqlite3.Connection, mailbox_id: int, uid: int) -> tuple[int, int] | None:
    """(body id, size) of a message, or None."""
    row = conn.execute(
        "SELECT body_id, size FROM messages WHERE mailbox_id=? AND uid=?", (mailbox_id, uid)
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def read_body(conn: sqlite3.Connection, body_id: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` through SQLite's incremental blob I/O
    (only the pages holding the range are read)."""
    if length <= 0:
        return b""
    with conn.blobopen("bodies", "data", body_id, readonly=True) as blob:
        blob.seek(offset)
        return blob.read(length)


def changed_rows(conn: sqlite3.Connection, mailbox_id: int, modseq: int) -> list[Any]:
    """(uid, sysflags, keywords, modseq) of messages changed after ``modseq``,
    ascending by UID. ``INDEXED BY``: for ``ORDER BY uid`` the planner would
    otherwise walk the primary key, i.e. the whole mailbox."""
    rows = conn.execute(
        "SELECT uid, sysflags, keywords, modseq FROM messages INDEXED BY messages_by_modseq "
        "WHERE mailbox_id=? AND modseq>?",
        (mailbox_id, modseq),
    ).fetchall()
    rows.sort()
    return rows


def expunged_since(conn: sqlite3.Connection, mailbox_id: int, modseq: int) -> list[tuple[int, int]]:
    """(uid, modseq) expunged after ``modseq``, ascending by UID."""
    rows = conn.execute(
        "SELECT uid, modseq FROM expunged INDEXED BY expunged_by_modseq "
        "WHERE mailbox_id=? AND modseq>?",
        (mailbox_id, modseq),
    ).fetchall()
    return sorted((int(r[0]), int(r[1])) for r in rows)

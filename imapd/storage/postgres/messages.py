"""Message operations of the PostgreSQL engine (RFC 3501 §6.3.11, §6.4).

Each runs inside the runner's transaction on the mailbox row it locked
(``tree.mailbox(..., lock=True)``). UIDs and the MODSEQ of a change come
from one ``UPDATE mailboxes SET uidnext=uidnext+n,
highestmodseq=highestmodseq+1 ... RETURNING`` in that transaction: the row
stays locked until COMMIT, so the next writer of the mailbox allocates
after this one committed, and a lower UID is never visible after a higher
one (RFC 3501 §2.3.1.1, RFC 7162 §3.1). Every change bumps HIGHESTMODSEQ
once and gives that MODSEQ to every message it touched.

Bodies: ``bodies`` (size, meta, reference count) and ``body_chunks`` (the
bytes, ``CHUNK`` at a time, bound as binary parameters), so a 20 MB APPEND
is never copied whole on its way in and a FETCH reads only the pieces it
needs (docs/storage.md: the measurements).
"""

from __future__ import annotations

from typing import Any, Sequence

from imapd.mail.errors import OverLimit
from imapd.mail.flags import (
    DELETED_BIT, FlagOp, decode_keywords, encode_keywords, split_flags,
)
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MessageRecord, StoreResult,
)
from imapd.storage.postgres.runner import Conn
from imapd.storage.postgres import fts, sortfacts
from imapd.storage.postgres.tree import release_bodies
from imapd.storage.rows import MailboxRow
from imapd.storage.rows import date_columns, date_value, decode_flags, plan_store

MAX_UID = 2**32 - 1          # nz-number, RFC 3501 §9
CHUNK = 512 * 1024
MAX_KEYWORDS_PER_MAILBOX = 1000


def uid_rows(
    conn: Conn, prefix: str, mailbox_id: int, uids: Sequence[int] | None, *, binary: bool = False
) -> list[Any]:
    """Run ``prefix`` (a SELECT whose first column is ``uid``, ending in
    ``WHERE ... mailbox_id=%s``) restricted to ``uids`` (None: all), by UID."""
    cursor = conn.cursor(binary=binary)
    if uids is None:
        return cursor.execute(f"{prefix} ORDER BY uid", (mailbox_id,)).fetchall()
    wanted = sorted(set(uids))
    if not wanted:
        return []
    if wanted[-1] - wanted[0] + 1 == len(wanted):
        return cursor.execute(f"{prefix} AND uid BETWEEN %s AND %s ORDER BY uid",
                              (mailbox_id, wanted[0], wanted[-1])).fetchall()
    return cursor.execute(f"{prefix} AND uid = ANY(%s) ORDER BY uid",
                          (mailbox_id, wanted)).fetchall()


def map_keywords(
    conn: Conn, mailbox_id: int, keywords: tuple[str, ...], define: bool
) -> tuple[str, ...]:
    """Respell keywords as the mailbox first saw them (case-insensitive);
    with ``define`` unknown ones join the mailbox's list (at most
    ``MAX_KEYWORDS_PER_MAILBOX``, then OverLimit)."""
    if not keywords:
        return ()
    folded = [k.lower() for k in keywords]
    known = {str(f): str(n) for f, n in conn.execute(
        "SELECT folded, name FROM keywords WHERE mailbox_id=%s AND folded = ANY(%s)",
        (mailbox_id, folded)).fetchall()}
    mapped: list[str] = []
    for keyword, fold in zip(keywords, folded):
        if fold in known:
            mapped.append(known[fold])
            continue
        if define:
            row = conn.execute("SELECT count(*) FROM keywords WHERE mailbox_id=%s",
                               (mailbox_id,)).fetchone()
            if row is not None and int(row[0]) >= MAX_KEYWORDS_PER_MAILBOX:
                raise OverLimit("Too many keywords in this mailbox")
            conn.execute("INSERT INTO keywords(mailbox_id, folded, name) VALUES(%s, %s, %s)",
                         (mailbox_id, fold, keyword))
            known[fold] = keyword
        mapped.append(keyword)
    return tuple(mapped)


def allocate(conn: Conn, row: MailboxRow, count: int) -> tuple[int, int]:
    """Reserve ``count`` UIDs and one MODSEQ: (first UID, MODSEQ)."""
    if row.uidnext + count - 1 > MAX_UID:
        raise OverLimit("No more UIDs in this mailbox")
    found = conn.execute(
        "UPDATE mailboxes SET uidnext=uidnext+%s, highestmodseq=highestmodseq+1 "
        "WHERE id=%s RETURNING uidnext, highestmodseq", (count, row.id)).fetchone()
    assert found is not None
    return int(found[0]) - count, int(found[1])


def bump_modseq(conn: Conn, mailbox_id: int) -> int:
    found = conn.execute("UPDATE mailboxes SET highestmodseq=highestmodseq+1 WHERE id=%s "
                         "RETURNING highestmodseq", (mailbox_id,)).fetchone()
    assert found is not None
    return int(found[0])


def insert_body(conn: Conn, item: AppendItem) -> int:
    """The message's bytes in ``CHUNK`` pieces (binary parameters: one
    piece copied at a time, never the whole message), and its meta."""
    size = len(item.message)
    found = conn.execute("INSERT INTO bodies(refs, size, meta) VALUES(1, %s, %b) RETURNING id",
                         (size, bytes(item.meta))).fetchone()
    assert found is not None
    body_id = int(found[0])
    with memoryview(item.message) as view:
        for seq, start in enumerate(range(0, max(size, 1), CHUNK)):
            conn.execute("INSERT INTO body_chunks(body_id, seq, data) VALUES(%s, %s, %b)",
                         (body_id, seq, bytes(view[start:start + CHUNK])))
    return body_id


def insert_small_bodies(conn: Conn, items: Sequence[AppendItem]) -> list[int]:
    """Bodies of at most one ``CHUNK`` each, as one pipelined batch per
    table (``executemany``: a 1,200-message MULTIAPPEND is a few round
    trips, not 2,400)."""
    cursor = conn.cursor()
    cursor.executemany("INSERT INTO bodies(refs, size, meta) VALUES(1, %s, %b) RETURNING id",
                       [(len(item.message), bytes(item.meta)) for item in items], returning=True)
    ids: list[int] = []
    while True:
        found = cursor.fetchone()
        assert found is not None
        ids.append(int(found[0]))
        if not cursor.nextset():
            break
    cursor.executemany("INSERT INTO body_chunks(body_id, seq, data) VALUES(%s, 0, %b)",
                       [(body_id, bytes(item.message)) for body_id, item in zip(ids, items)])
    return ids


def append(conn: Conn, row: MailboxRow, items: Sequence[AppendItem]) -> AppendResult:
    """Insert the messages under consecutive new UIDs and one MODSEQ."""
    prepared = [(split_flags(item.flags), date_columns(item.internal_date)) for item in items]
    first, modseq = allocate(conn, row, len(items))
    if all(len(item.message) <= CHUNK for item in items):
        body_ids = insert_small_bodies(conn, items)
    else:
        body_ids = [insert_body(conn, item) for item in items]
    fts.index_bodies(conn, body_ids, items)  # SEARCH's index, same transaction
    sortfacts.store_bodies(conn, body_ids, items)  # SORT/THREAD's facts, too
    values: list[tuple[int, ...] | tuple[Any, ...]] = []
    for offset, (item, ((bits, keywords), (seconds, minutes))) in enumerate(zip(items, prepared)):
        keywords = map_keywords(conn, row.id, keywords, define=True)
        values.append((row.id, first + offset, body_ids[offset], seconds, minutes,
                       len(item.message), bits, encode_keywords(keywords), modseq))
    conn.cursor().executemany(
        "INSERT INTO messages(mailbox_id, uid, body_id, internal_date, tz_minutes, size, "
        "sysflags, keywords, modseq) VALUES(%s, %s, %s, %s, %s, %s, %s, %s, %s)", values)
    return AppendResult(row.uidvalidity, tuple(range(first, first + len(items))))


def store_flags(
    conn: Conn,
    row: MailboxRow,
    uids: Sequence[int],
    op: FlagOp,
    given: tuple[int, tuple[str, ...]],
    unchangedsince: int | None,
) -> StoreResult:
    """STORE (RFC 3501 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3)."""
    bits, keywords = given
    keywords = map_keywords(conn, row.id, keywords, define=op is not FlagOp.REMOVE)
    rows = uid_rows(conn, "SELECT uid, sysflags, keywords, modseq FROM messages "
                    "WHERE mailbox_id=%s", row.id, uids)
    plan = plan_store(rows, op, bits, keywords, unchangedsince)
    if not plan.updates:
        return StoreResult(tuple(plan.states), frozenset(), tuple(plan.modified))
    modseq = bump_modseq(conn, row.id)
    updates = plan.updates
    conn.execute(
        "UPDATE messages m SET sysflags=u.bits, keywords=u.kw, modseq=%s "
        "FROM unnest(%s::bigint[], %s::int[], %s::text[]) AS u(uid, bits, kw) "
        "WHERE m.mailbox_id=%s AND m.uid=u.uid",
        (modseq, [u[0] for u in updates], [u[1] for u in updates], [u[2] for u in updates],
         row.id))
    return StoreResult(plan.stamped(modseq), frozenset(plan.prior), tuple(plan.modified))


def remove_messages(conn: Conn, mailbox_id: int, uids: Sequence[int],
                    modseq: int | None = None) -> int | None:
    """Delete messages, remembering them as expunged at one new MODSEQ
    (RFC 7162 §3.2.5.2), or at ``modseq`` when the caller has already
    taken one for the same call; that MODSEQ, or None when there were none."""
    if not uids:
        return None
    if modseq is None:
        modseq = bump_modseq(conn, mailbox_id)
    bodies = [int(r[0]) for r in conn.execute(
        "DELETE FROM messages WHERE mailbox_id=%s AND uid = ANY(%s) RETURNING body_id",
        (mailbox_id, list(uids))).fetchall()]
    conn.execute("INSERT INTO expunged(mailbox_id, uid, modseq) "
                 "SELECT %s, u, %s FROM unnest(%s::bigint[]) AS u",
                 (mailbox_id, modseq, list(uids)))
    release_bodies(conn, bodies)
    return modseq


def expunge(conn: Conn, row: MailboxRow, uids: Sequence[int] | None) -> list[int]:
    """EXPUNGE / UID EXPUNGE (RFC 4315 §2.1): the ``\\Deleted`` ones."""
    rows = uid_rows(conn, f"SELECT uid FROM messages WHERE sysflags & {DELETED_BIT} <> 0 "
                    "AND mailbox_id=%s", row.id, uids)
    gone = [int(r[0]) for r in rows]
    remove_messages(conn, row.id, gone)
    return gone


def store_and_expunge(
    conn: Conn, row: MailboxRow, uids: Sequence[int],
    given: tuple[int, tuple[str, ...]], expunge: Sequence[int],
) -> tuple[list[int], int]:
    """POP3's UPDATE (RFC 1939 §6, ``MailBackend.store_and_expunge``): add
    the ``given`` flags to ``uids`` and remove ``expunge``, whatever their
    flags, under one new MODSEQ. Returns the UIDs removed and that MODSEQ
    (0 when nothing changed)."""
    bits, keywords = given
    keywords = map_keywords(conn, row.id, keywords, define=True)
    gone = [int(r[0]) for r in uid_rows(
        conn, "SELECT uid FROM messages WHERE mailbox_id=%s", row.id, expunge)]
    removed = set(gone)
    rows = uid_rows(conn, "SELECT uid, sysflags, keywords, modseq FROM messages "
                    "WHERE mailbox_id=%s", row.id, [u for u in uids if u not in removed])
    plan = plan_store(rows, FlagOp.ADD, bits, keywords, None)
    if not plan.updates and not gone:
        return [], 0
    modseq = bump_modseq(conn, row.id)
    if plan.updates:
        updates = plan.updates
        conn.execute(
            "UPDATE messages m SET sysflags=u.bits, keywords=u.kw, modseq=%s "
            "FROM unnest(%s::bigint[], %s::int[], %s::text[]) AS u(uid, bits, kw) "
            "WHERE m.mailbox_id=%s AND m.uid=u.uid",
            (modseq, [u[0] for u in updates], [u[1] for u in updates],
             [u[2] for u in updates], row.id))
    remove_messages(conn, row.id, gone, modseq)
    return gone, modseq


def copy(
    conn: Conn, source_id: int, uids: Sequence[int], target: MailboxRow
) -> tuple[CopyResult, list[int], int]:
    """COPY (RFC 3501 §6.4.7): (result, source UIDs copied, target MODSEQ)."""
    rows = uid_rows(conn, "SELECT uid, body_id, internal_date, tz_minutes, size, sysflags, "
                    "keywords FROM messages WHERE mailbox_id=%s", source_id, uids)
    if not rows:
        return CopyResult(target.uidvalidity, ()), [], 0
    first, modseq = allocate(conn, target, len(rows))
    respelled: dict[str, str] = {}
    columns: list[list[Any]] = [[] for _ in range(8)]
    for offset, (uid, body_id, seconds, minutes, size, bits, text) in enumerate(rows):
        if source_id != target.id and text and text not in respelled:
            mapped = map_keywords(conn, target.id, decode_keywords(text), define=True)
            respelled[text] = encode_keywords(mapped)
        values = (first + offset, body_id, seconds, minutes, size, bits,
                  respelled.get(text, text), modseq)
        for column, value in zip(columns, values):
            column.append(value)
    conn.execute(
        "INSERT INTO messages(mailbox_id, uid, body_id, internal_date, tz_minutes, size, "
        "sysflags, keywords, modseq) SELECT %s, * FROM unnest(%s::bigint[], %s::bigint[], "
        "%s::bigint[], %s::int[], %s::bigint[], %s::int[], %s::text[], %s::bigint[])",
        (target.id, *columns))
    counts: dict[int, int] = {}
    for body_id in columns[1]:
        counts[body_id] = counts.get(body_id, 0) + 1
    conn.execute("UPDATE bodies b SET refs=b.refs+c.n FROM unnest(%s::bigint[], %s::int[]) "
                 "AS c(id, n) WHERE b.id=c.id", (list(counts), list(counts.values())))
    pairs = tuple((int(r[0]), first + i) for i, r in enumerate(rows))
    return CopyResult(target.uidvalidity, pairs), [int(r[0]) for r in rows], modseq


def records(
    conn: Conn, mailbox_id: int, uids: Sequence[int] | None, with_meta: bool
) -> list[MessageRecord]:
    meta = ", (SELECT meta FROM bodies WHERE bodies.id=body_id)" if with_meta else ""
    prefix = ("SELECT uid, sysflags, keywords, internal_date, tz_minutes, size, modseq"
              f"{meta} FROM messages WHERE mailbox_id=%s")
    return [
        MessageRecord(uid=int(r[0]), flags=decode_flags(r[1], r[2]),
                      internal_date=date_value(r[3], r[4]), size=int(r[5]), modseq=int(r[6]),
                      meta=bytes(r[7]) if with_meta else b"")
        for r in uid_rows(conn, prefix, mailbox_id, uids)
    ]


def flag_states(conn: Conn, mailbox_id: int, uids: Sequence[int] | None) -> list[FlagState]:
    """Flags and MODSEQ by UID, ascending; each distinct flag set decoded once."""
    decoded: dict[tuple[int, str], tuple[str, ...]] = {}
    states: list[FlagState] = []
    for uid, bits, text, modseq in uid_rows(
            conn, "SELECT uid, sysflags, keywords, modseq FROM messages WHERE mailbox_id=%s",
            mailbox_id, uids):
        key = (bits, text)
        flags = decoded.get(key)
        if flags is None:
            flags = decoded[key] = decode_flags(bits, text)
        states.append(FlagState(uid, flags, modseq))
    return states


def read_range(conn: Conn, body_id: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset``: only the chunks holding the range."""
    if length <= 0:
        return b""
    first, last = offset // CHUNK, (offset + length - 1) // CHUNK
    pieces = conn.cursor(binary=True).execute(
        "SELECT data FROM body_chunks WHERE body_id=%s AND seq BETWEEN %s AND %s ORDER BY seq",
        (body_id, first, last)).fetchall()
    data = b"".join(bytes(p[0]) for p in pieces)
    start = offset - first * CHUNK
    return data[start:start + length]


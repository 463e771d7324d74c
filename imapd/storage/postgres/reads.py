"""Reads of the PostgreSQL engine, each in one REPEATABLE READ transaction
on a worker thread (``runner``): a SELECT's or a catch-up's several queries
see one committed state.

The bytes of a message: up to ``STREAM_THRESHOLD`` read in one go; a larger
one is copied, chunk by chunk inside one snapshot, to an anonymous spool
file and streamed from there (as the SQLite engine does): no transaction
stays open while a slow client reads, an expunge meanwhile does not cut
the stream short, and only one chunk is in memory at a time.
"""

from __future__ import annotations

import logging
import tempfile
from typing import IO, Iterator, Sequence

from imapd.mail.backend import Changes, MailboxRef
from imapd.mail.errors import NoSuchMailbox
from imapd.mail.flags import SEEN_BIT
from imapd.mail.records import FlagState, MailboxSnapshot, MessageBody
from imapd.storage.postgres import messages as msgs
from imapd.storage.postgres import tree
from imapd.storage.postgres.runner import Conn
from imapd.storage.rows import decode_flags

log = logging.getLogger(__name__)

STREAM_THRESHOLD = 1024 * 1024
FILE_CHUNK = 256 * 1024


def check(conn: Conn, ref: MailboxRef) -> None:
    """NoSuchMailbox unless ``ref`` names a selectable mailbox."""
    if conn.execute("SELECT 1 FROM mailboxes WHERE id=%s AND uidvalidity=%s AND selectable",
                    (ref.id, ref.uidvalidity)).fetchone() is None:
        raise NoSuchMailbox("Mailbox does not exist")


def snapshot(conn: Conn, ref: MailboxRef) -> tuple[MailboxSnapshot, int]:
    """SELECT (RFC 3501 §6.3.1): the mailbox as of this transaction."""
    row = tree.mailbox(conn, ref)
    uids = [int(r[0]) for r in conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id=%s ORDER BY uid", (row.id,)).fetchall()]
    keywords = tuple(str(r[0]) for r in conn.execute(
        "SELECT name FROM keywords WHERE mailbox_id=%s ORDER BY folded", (row.id,)).fetchall())
    found = conn.execute(
        f"SELECT min(uid) FROM messages WHERE mailbox_id=%s AND sysflags & {SEEN_BIT} = 0",
        (row.id,)).fetchone()
    first_unseen = None if found is None or found[0] is None else int(found[0])
    snap = MailboxSnapshot(row.uidvalidity, row.uidnext, row.highestmodseq, uids,
                           frozenset(), keywords, first_unseen)
    return snap, row.recent_from


def changes_since(conn: Conn, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
    """``MailBackend.changes_since`` (RFC 7162 §3.1.4.1, §3.2.5): the
    ``expunged`` log and the messages' MODSEQs are the truth."""
    try:
        row = tree.mailbox(conn, ref)
    except NoSuchMailbox:
        return Changes(exists=False)
    changed = conn.execute(
        "SELECT uid, sysflags, keywords, modseq FROM messages WHERE mailbox_id=%s "
        "AND modseq>%s AND uid<%s ORDER BY uid", (row.id, modseq, uidnext)).fetchall()
    added = conn.execute(
        "SELECT uid, sysflags, keywords, modseq FROM messages WHERE mailbox_id=%s AND uid>=%s "
        "ORDER BY uid", (row.id, uidnext)).fetchall()
    expunged = conn.execute(
        "SELECT uid, modseq FROM expunged WHERE mailbox_id=%s AND modseq>%s ORDER BY uid",
        (row.id, modseq)).fetchall()
    return Changes(
        exists=True, name=row.name, highestmodseq=row.highestmodseq, uidnext=row.uidnext,
        recent_from=row.recent_from,
        changed=tuple(FlagState(int(u), decode_flags(b, k), int(m)) for u, b, k, m in changed),
        added=tuple(FlagState(int(u), decode_flags(b, k), int(m)) for u, b, k, m in added),
        expunged=tuple((int(u), int(m)) for u, m in expunged),
    )


def body_of(conn: Conn, ref: MailboxRef, uid: int) -> tuple[int, int] | None:
    """(body id, size) of message ``uid`` of ``ref``, the mailbox checked in
    the same query; None if the message does not exist."""
    found = conn.execute(
        "SELECT m.body_id, m.size FROM messages m JOIN mailboxes b ON b.id=m.mailbox_id "
        "WHERE m.mailbox_id=%s AND m.uid=%s AND b.uidvalidity=%s AND b.selectable",
        (ref.id, uid, ref.uidvalidity)).fetchone()
    if found is None:
        check(conn, ref)
        return None
    return int(found[0]), int(found[1])


def read_message(
    conn: Conn, ref: MailboxRef, uid: int, offset: int, length: int | None
) -> bytes | None:
    found = body_of(conn, ref, uid)
    if found is None:
        return None
    body_id, size = found
    offset = min(max(offset, 0), size)
    end = size if length is None else min(size, offset + max(length, 0))
    return msgs.read_range(conn, body_id, offset, end - offset)


def read_messages(conn: Conn, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
    """``MailBackend.read_messages``: the whole bytes of the existing
    ``uids``, every chunk of the batch in one query (not two per message);
    the caller bounds the batch's total size."""
    check(conn, ref)
    if not uids:
        return {}
    # A lateral lookup by the chunks' primary key, so the planner walks the
    # few bodies asked for instead of hashing the whole body_chunks table.
    rows = conn.cursor(binary=True).execute(
        "SELECT m.uid, c.data FROM messages m CROSS JOIN LATERAL (SELECT seq, data "
        "FROM body_chunks WHERE body_id = m.body_id) c "
        "WHERE m.mailbox_id = %s AND m.uid = ANY(%s) ORDER BY m.uid, c.seq",
        (ref.id, list(uids))).fetchall()
    pieces: dict[int, list[bytes]] = {}
    for uid, data in rows:
        pieces.setdefault(int(uid), []).append(bytes(data))
    return {uid: b"".join(parts) for uid, parts in pieces.items()}


def open_message(conn: Conn, ref: MailboxRef, uid: int) -> MessageBody | None:
    """A small body in memory; a large one spooled to an anonymous file
    (see the module docstring). Runs on a worker thread."""
    found = body_of(conn, ref, uid)
    if found is None:
        return None
    body_id, size = found
    if size <= STREAM_THRESHOLD:
        data = msgs.read_range(conn, body_id, 0, size)
        return MessageBody(size, lambda: iter((data,)))
    file: IO[bytes] = tempfile.TemporaryFile(mode="w+b")
    try:
        cursor = conn.cursor(binary=True)
        for seq in range((size + msgs.CHUNK - 1) // msgs.CHUNK):
            piece = cursor.execute("SELECT data FROM body_chunks WHERE body_id=%s AND seq=%s",
                                   (body_id, seq)).fetchone()
            assert piece is not None, "a body chunk is missing"
            file.write(piece[0])
        file.flush()
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return MessageBody(size, lambda: _file_chunks(file), file.close)


def _file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    try:
        while True:
            chunk = file.read(FILE_CHUNK)
            if not chunk:
                return
            yield chunk
    finally:
        file.close()

"""THREAD and UID THREAD (RFC 5256 §3; response §4).

The messages are those SEARCH would find with the same criteria (the search
runs as in ``search``, paced the same way); for ALL, the client's view
names them and no store record is read, except for a message whose sent
date is its internal date (``_matches``, ``_describe_late``). For each match the handler needs
the base subject, the sent date and for REFERENCES Message-ID and the parent
ids: the store kept them at delivery (``MailBackend.sort_facts``,
``imapd.message.sortfacts``), read ``FACTS_BATCH`` messages at a time and
decoded in a few µs each, with ``ctx.pace`` after every ``PACE_EVERY``
messages (each counted as a unit of the slice's budget).
A message without stored facts (stored before the store kept them) is
described as before: Subject and Date from the stored analysis's envelope
(``meta``), and for REFERENCES the header block, read on its own (a first
``HEADER_PROBE_BYTES``, more only for a longer header, never over
``MAX_HEADER_BYTES``), one message at a time with ``ctx.pace`` between two.
The algorithms themselves (``imapd.message.threading``) are pure and
iterative; on a large mailbox they run in a worker thread
(``runtime.in_thread``) so other connections are not held up meanwhile.

The answer is one ``* THREAD`` response (empty when nothing matched), with
sequence numbers, or UIDs for UID THREAD (RFC 5256 §3).

The sent date is the Date header in UTC, else the internal date (RFC 5256
§2.2, as SORT's DATE); base subjects (RFC 5256 §2.1) compare under
i;unicode-casemap, the collation I18NLEVEL=1 makes the default (RFC 5255
§4.3).
"""

from __future__ import annotations

import datetime
from typing import Sequence

from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.search import BATCH_SIZE, _matching, check_charset
from imapd.imap.commands.search_eval import matches_everything
from imapd.imap.commands.select import selected_view
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.commands import Search
from imapd.imap.wire.responses import Generic
from imapd.imap.wire.thread_command import Thread, ThreadAlgorithm
from imapd.imap.wire.values import Atom
from imapd.mail.records import MessageRecord
from imapd.message import analyze, casemap, sortfacts
from imapd.message.basesubject import base_subject
from imapd.message.headers import find_header_end, first_values
from imapd.message.model import EnvelopeData, envelope_from_bytes
from imapd.message.threading import (
    ThreadMessage, format_threads, ordered_subject, parent_ids, parse_msg_ids, references_text,
)

#: Header bytes read per message for REFERENCES; a longer header is cut
#: (a References field that long is not worth more).
MAX_HEADER_BYTES = 256 * 1024
#: First read of a header; most headers end well within it.
HEADER_PROBE_BYTES = 16 * 1024
#: Above this many messages the algorithm runs in a worker thread.
THREAD_IN_WORKER_ABOVE = 2_000
_ID_HEADERS = (b"message-id", b"references", b"in-reply-to")
#: Messages whose stored facts are read at once.
FACTS_BATCH = 2048
#: A message to thread: (sequence number, UID, internal date if read).
Entry = tuple[int, int, datetime.datetime | None]
#: Messages described from their facts between two ``ctx.pace`` calls.
PACE_EVERY = 256


def sent_timestamp(date_header: bytes | None, record: MessageRecord) -> float:
    """Seconds since the epoch (UTC) of the Date header, else the internal
    date (RFC 5256 §2.2). A date without a zone is taken as UTC."""
    sent = sortfacts.thread_date(date_header)
    return sent if sent is not None else record.internal_date.timestamp()


def _envelope(meta: bytes) -> EnvelopeData | None:
    """The stored analysis's envelope only (``envelope_from_bytes``: not
    the shared analysis cache, which one THREAD over every message would
    only empty of what FETCH reuses); None when it must be recomputed."""
    try:
        return envelope_from_bytes(meta) or EnvelopeData()
    except ValueError:
        return None  # missing or foreign analysis: computed from the bytes


async def _header_block(view: SelectedView, record: MessageRecord) -> bytes | None:
    """The header (RFC 5322 §2.1: up to the first empty line), reading a
    first ``HEADER_PROBE_BYTES`` and, only when the header is longer, up to
    ``MAX_HEADER_BYTES``; None if the message is gone."""
    length = min(record.size, HEADER_PROBE_BYTES)
    block = await view.watch.read_message(record.uid, 0, length)
    if block is None:
        return None
    end = find_header_end(block, 0, len(block))
    if end == len(block) and record.size > length:
        block = await view.watch.read_message(record.uid, 0, min(record.size, MAX_HEADER_BYTES))
        if block is None:
            return None
        end = find_header_end(block, 0, len(block))
    return block[:end]


async def _describe(
    view: SelectedView, seq: int, record: MessageRecord, number: int, with_ids: bool,
) -> ThreadMessage | None:
    """What threading needs of one message; None if it is gone meanwhile."""
    envelope = _envelope(record.meta)
    block: bytes | None = None
    if envelope is None:
        raw = await view.watch.read_message(record.uid)
        if raw is None:
            return None
        info = analyze(raw)
        envelope = info.envelope_data
        block = raw[:min(info.root.body_start, MAX_HEADER_BYTES)]
    base = base_subject(envelope.subject)
    message = ThreadMessage(
        number=number, order=seq,
        sent=sent_timestamp(envelope.date, record),
        subject=casemap.fold(base.text), is_reply=base.is_reply_or_forward,
    )
    if not with_ids:
        return message
    if block is None:
        block = await _header_block(view, record)
        if block is None:
            return None
    fields = first_values(block, _ID_HEADERS)
    own = parse_msg_ids(fields.get(b"message-id"))
    return ThreadMessage(
        message.number, message.order, message.sent, message.subject, message.is_reply,
        own[0] if own else None,
        parent_ids(fields.get(b"references"), fields.get(b"in-reply-to")),
    )


def _from_facts(
    blob: bytes | None, entry: Entry, uid_numbers: bool, with_ids: bool,
) -> ThreadMessage | None:
    """The message from its stored facts; None when it has none (or
    unreadable ones, or its record is needed and was not read)."""
    if blob is None:
        return None
    seq, uid, internal_date = entry
    try:
        return sortfacts.blob_thread_message(
            uid if uid_numbers else seq, seq, internal_date, blob, with_ids)
    except ValueError:  # incl. NeedsRecord
        return None


async def _describe_all(
    ctx: CommandContext, view: SelectedView, matched: Sequence[Entry], cmd: Thread,
) -> list[ThreadMessage]:
    """The matches as ``ThreadMessage``, in sequence order, paced: from the
    stored facts, else (``_describe_slowly``) as before they existed."""
    with_ids = cmd.algorithm is ThreadAlgorithm.REFERENCES
    described: list[ThreadMessage | Entry] = []
    missing: dict[int, bytes | None] = {}  # UID -> stored facts
    for start in range(0, len(matched), FACTS_BATCH):
        batch = matched[start:start + FACTS_BATCH]
        stored = await view.watch.sort_facts([uid for _, uid, _ in batch])
        for index, entry in enumerate(batch, start=1):
            blob = stored.get(entry[1])
            message = _from_facts(blob, entry, cmd.uid, with_ids)
            if message is None:
                missing[entry[1]] = blob
            described.append(entry if message is None else message)
            if index % PACE_EVERY == 0 or index == len(batch):
                # Others' turn (issue 13), each message counted, one call
                # per ``PACE_EVERY`` (a call per message: ~1 µs each).
                await ctx.pace(index % PACE_EVERY or PACE_EVERY)
    if not missing:
        return [m for m in described if isinstance(m, ThreadMessage)]
    late = await _describe_late(ctx, view, missing, described, cmd.uid, with_ids)
    result: list[ThreadMessage] = []
    for item in described:
        if isinstance(item, ThreadMessage):
            result.append(item)
        elif item[1] in late:
            result.append(late[item[1]])  # else expunged meanwhile
    return result


async def _describe_late(
    ctx: CommandContext, view: SelectedView, missing: dict[int, bytes | None],
    described: Sequence[ThreadMessage | Entry], uid_numbers: bool, with_ids: bool,
) -> dict[int, ThreadMessage]:
    """The messages the facts alone did not describe, by UID: those whose
    record was not read (THREAD ALL) from their facts and record, the
    others (no facts) as before facts existed. Gone messages are left out."""
    entries = [item for item in described if not isinstance(item, ThreadMessage)]
    unread = [uid for _, uid, date in entries if date is None]
    records = await view.watch.fetch_records(unread) if unread else []
    dates = {record.uid: record.internal_date for record in records}
    late: dict[int, ThreadMessage] = {}
    slow: list[Entry] = []
    for seq, uid, date in entries:
        date = dates.get(uid) if date is None else date
        if date is None:
            continue  # expunged meanwhile
        message = _from_facts(missing[uid], (seq, uid, date), uid_numbers, with_ids)
        if message is None:
            slow.append((seq, uid, date))
        else:
            late[uid] = message
    late.update(await _describe_slowly(ctx, view, slow, uid_numbers, with_ids))
    return late


async def _describe_slowly(
    ctx: CommandContext, view: SelectedView, matched: Sequence[Entry], uid_numbers: bool,
    with_ids: bool,
) -> dict[int, ThreadMessage]:
    """Messages without stored facts, by UID, from their analyses and
    header blocks, one at a time, paced."""
    described: dict[int, ThreadMessage] = {}
    for start in range(0, len(matched), BATCH_SIZE):
        batch = matched[start:start + BATCH_SIZE]
        records = await view.watch.fetch_records([uid for _, uid, _ in batch], with_meta=True)
        by_uid = {record.uid: record for record in records}
        for seq, uid, _ in batch:
            record = by_uid.get(uid)
            if record is None:
                continue  # expunged meanwhile
            number = record.uid if uid_numbers else seq
            message = await _describe(view, seq, record, number, with_ids)
            if message is not None:
                described[record.uid] = message
            await ctx.pace()  # others' turn between two messages (issue 13)
    return described


def _thread_text(algorithm: ThreadAlgorithm, messages: list[ThreadMessage]) -> bytes:
    if algorithm is ThreadAlgorithm.ORDEREDSUBJECT:
        return format_threads(ordered_subject(messages))
    return references_text(messages)


async def _matches(ctx: CommandContext, view: SelectedView, cmd: Thread) -> list[Entry]:
    """The messages to thread, in mailbox order. For ALL (RFC 5256 §3:
    every message) the client's view names them without reading a record
    (100,000 records were a large part of THREAD ALL, issue 18)."""
    if matches_everything(cmd.criteria):
        return [(seq, uid, None) for seq, uid in enumerate(view.uids, start=1)]
    search = Search(cmd.tag, cmd.uid, cmd.charset, cmd.criteria)
    matched = await _matching(ctx, view, search, frozenset(view.saved_uids))
    return [(c.seq, c.record.uid, c.record.internal_date) for c in matched]


async def handle_thread(cmd: Thread, ctx: CommandContext) -> Completion:
    """THREAD / UID THREAD (RFC 5256 §3); see the module docstring."""
    view = selected_view(ctx)
    check_charset(cmd.charset)
    if cmd.uid:
        view.uid_mode = True  # later unsolicited FETCH carries UID (as SEARCH)
    messages = await _describe_all(ctx, view, await _matches(ctx, view, cmd), cmd)
    if len(messages) > THREAD_IN_WORKER_ABOVE:
        text = await ctx.runtime.in_thread(_thread_text, cmd.algorithm, messages)
    else:
        text = _thread_text(cmd.algorithm, messages)
    ctx.send(Generic("THREAD", (Atom(text.decode("ascii")),) if text else ()))
    return Completion("UID THREAD completed" if cmd.uid else "THREAD completed")


# Like SEARCH, THREAD must not be interrupted by EXPUNGE responses
# (RFC 3501 §7.4.1): the numbers refer to the client's view.
SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Thread, handle_thread, SELECTED, may_send_expunge=False),
)

"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8; response §7.2.5).

The answer is one ``* SEARCH`` with the matching messages' sequence numbers
(UIDs for UID SEARCH), ascending; an empty ``* SEARCH`` when none match.

``CHARSET`` may be UTF-8 or US-ASCII (the parser decodes strings as UTF-8,
which also accepts the raw UTF-8 many clients send without CHARSET); any
other charset is ``NO [BADCHARSET (UTF-8 US-ASCII)]`` (RFC 3501 §6.4.4,
§7.1).

Speed: the candidates are the messages the client knows (the view's
sequence numbers; messages expunged by others but not yet announced are
gone from the store and match nothing). Their store records decide every
cheap key first (``search_eval``); only messages still undecided get their
analysis (the store's ``meta``) loaded, and only those still undecided after
that get their bytes read — up to ``READ_BATCH`` small ones in one call
(``MailBackend.read_messages``), a large one by itself, so memory stays
bounded.
Before all that, a store with a full-text index (``MailBackend.
text_candidates``) names the messages a string key can match at all; the
others are not even read, and the candidates are still decided exactly
(those the index confirmed itself, ``text_matches``, are not read either).

Extensions: ``RETURN (...)`` answers with ESEARCH and SAVE keeps the result
as ``$`` (RFC 4731, RFC 5182; see ``esearch``); ``$`` in the criteria is the
saved result (empty until a SEARCH saved one; a SEARCH ... SAVE that fails
leaves it empty, RFC 5182 §2.1). The ``MODSEQ`` key (RFC 7162 §3.1.5)
enables CONDSTORE and adds the highest MODSEQ of the matches to the
result: ``* SEARCH 2 5 (MODSEQ 917)``, nothing when none match.
"""

from __future__ import annotations

from typing import Sequence

from imapd.imap.commands import condstore, esearch
from imapd.imap.session import contexts as search_contexts
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.select import selected_view
from imapd.imap.commands.search_eval import (
    Candidate, Evaluator, index_narrowing, matches_everything, uses_modseq,
)
from imapd.core.errors import ImapError
from imapd.message import MessageInfo, analyze, casemap
from imapd.message.infocache import decode_info
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.commands import Search
from imapd.imap.wire.responses import SearchResponse

SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")
# The collation's one-time table is built when the server loads its
# commands, not inside the first SEARCH with non-ASCII text (RFC 5051 fold).
casemap.prepare()
# Undecided messages whose analyses are read from the store at once.
BATCH_SIZE = 256
# Candidates decided from their records alone between two yield points
# (``ctx.pace``; a few microseconds each).
PACE_EVERY = 128
# Undecided messages whose bytes are read in one call (``MailBackend.
# read_messages``): on PostgreSQL two queries and a thread hop per message
# were 0.5-0.8 ms each, 695 ms of a 1,000-candidate SEARCH BODY (issue 18).
# A batch holds at most READ_BATCH_BYTES; a message of READ_ALONE_SIZE or
# more is read by itself.
READ_BATCH = 64
READ_BATCH_BYTES = 4 * 1024 * 1024
READ_ALONE_SIZE = 256 * 1024


def check_charset(charset: str) -> None:
    """NO [BADCHARSET (UTF-8 US-ASCII)] for a charset we do not search in
    (RFC 3501 §6.4.4, RFC 5256 §3 for SORT and THREAD)."""
    if charset not in SUPPORTED_CHARSETS:
        raise ImapError.no(
            f"Unsupported charset {charset}", "BADCHARSET",
            "(" + " ".join(SUPPORTED_CHARSETS) + ")",
        )


def _info_from_meta(meta: bytes) -> MessageInfo | None:
    try:
        return decode_info(meta)
    except ValueError:
        return None  # missing or foreign analysis: recomputed from the bytes


def _read_groups(unread: Sequence[Candidate]) -> list[list[Candidate]]:
    """``unread`` cut into the batches their bytes are read in: up to
    ``READ_BATCH`` messages and ``READ_BATCH_BYTES`` per batch, a message
    of ``READ_ALONE_SIZE`` or more alone (so memory stays bounded)."""
    groups: list[list[Candidate]] = []
    group: list[Candidate] = []
    total = 0
    for candidate in unread:
        size = candidate.record.size
        if size >= READ_ALONE_SIZE:
            groups.append([candidate])
            continue
        if group and (len(group) >= READ_BATCH or total + size > READ_BATCH_BYTES):
            groups.append(group)
            group, total = [], 0
        group.append(candidate)
        total += size
    if group:
        groups.append(group)
    return groups


async def _confirm(
    ctx: CommandContext, view: SelectedView, evaluator: Evaluator, cmd: Search,
    group: Sequence[Candidate],
) -> list[Candidate]:
    """The candidates of ``group`` that match, judged on their bytes (read
    in one call for the group: one query, not two per message)."""
    if len(group) == 1:
        raw = await view.watch.read_message(group[0].record.uid)
        found = {} if raw is None else {group[0].record.uid: raw}
    else:
        found = await view.watch.read_messages([c.record.uid for c in group])
    matched: list[Candidate] = []
    for candidate in group:
        candidate.raw = found.pop(candidate.record.uid, None)
        if candidate.raw is not None:  # else expunged meanwhile
            if candidate.info is None:
                candidate.info = analyze(candidate.raw)
            if evaluator.evaluate(cmd.criteria, candidate):
                matched.append(candidate)
        candidate.release()  # its bytes go with it
        await ctx.pace()  # others' turn between two messages (issue 13)
    return matched


async def _decide(
    ctx: CommandContext, view: SelectedView, evaluator: Evaluator, cmd: Search,
    undecided: Sequence[Candidate],
) -> list[Candidate]:
    """The undecided candidates that match, loading analysis, then bytes."""
    matched: list[Candidate] = []
    for start in range(0, len(undecided), BATCH_SIZE):
        batch = undecided[start:start + BATCH_SIZE]
        records = await view.watch.fetch_records(
            [c.record.uid for c in batch], with_meta=True
        )
        metas = {record.uid: record.meta for record in records}
        unread: list[Candidate] = []
        for candidate in batch:
            candidate.info = _info_from_meta(metas.get(candidate.record.uid, b""))
            verdict = (
                None if candidate.info is None
                else evaluator.evaluate(cmd.criteria, candidate)
            )
            if verdict is None:
                unread.append(candidate)  # keeps its analysis until read
                continue
            if verdict:
                matched.append(candidate)
            candidate.release()
            await ctx.pace()  # others' turn between two messages (issue 13)
        for group in _read_groups(unread):
            matched += await _confirm(ctx, view, evaluator, cmd, group)
    return matched


async def _matching(
    ctx: CommandContext, view: SelectedView, cmd: Search, saved: frozenset[int],
) -> list[Candidate]:
    """The messages matching the criteria, ascending (see module doc)."""
    uids = list(view.uids)
    evaluator = Evaluator(len(uids), uids[-1] if uids else 0, saved)
    # The store's full-text index rules out most messages for string keys:
    # only its candidates' records are read and evaluated.
    possible = await index_narrowing(cmd.criteria, evaluator, view.watch.text_matches)
    wanted = uids if possible is None else [uid for uid in uids if uid in possible]
    records = await view.watch.fetch_records(wanted) if wanted else []
    by_uid = {record.uid: record for record in records}
    matched: list[Candidate] = []
    undecided: list[Candidate] = []
    everything = matches_everything(cmd.criteria)
    for seq, uid in enumerate(uids, start=1):
        record = by_uid.get(uid)
        if record is None:
            continue  # ruled out by the index, or expunged by another session
        candidate = Candidate(seq, record, view.is_recent(uid))
        verdict = True if everything else evaluator.evaluate(cmd.criteria, candidate)
        if verdict is None:
            undecided.append(candidate)
        elif verdict:
            matched.append(candidate)
        if seq % PACE_EVERY == 0:
            await ctx.pace()
    matched += await _decide(ctx, view, evaluator, cmd, undecided)
    matched.sort(key=lambda c: c.seq)
    return matched


async def handle_search(cmd: Search, ctx: CommandContext) -> Completion:
    """SEARCH / UID SEARCH (RFC 3501 §6.4.4, §6.4.8); see the module docstring."""
    view = selected_view(ctx)
    saved = frozenset(view.saved_uids)
    options = None if cmd.return_options is None else esearch.effective_options(cmd.return_options)
    if options is not None and esearch.SAVE in options:
        view.saved_uids = ()  # stays empty if this SEARCH fails (RFC 5182 §2.1)
    if cmd.charset is not None:
        check_charset(cmd.charset)
    with_modseq = uses_modseq(cmd.criteria)
    if with_modseq:
        condstore.enable_condstore(ctx)
    if cmd.uid:
        view.uid_mode = True  # later unsolicited FETCH carries UID (as resolve does)
    matched = await _matching(ctx, view, cmd, saved)
    numbers = [c.record.uid if cmd.uid else c.seq for c in matched]
    modseqs = [c.record.modseq for c in matched] if with_modseq else None
    if options is None:
        ctx.send(SearchResponse(tuple(numbers), max(modseqs) if modseqs else None))
        return Completion("UID SEARCH completed" if cmd.uid else "SEARCH completed")
    if esearch.SAVE in options:
        view.saved_uids = esearch.saved_uids(options, [c.record.uid for c in matched])
    response = esearch.esearch_response(
        cmd.tag, cmd.uid, options, numbers, modseqs, cmd.partial)
    if response is not None:
        ctx.send(response)
    code = None
    if esearch.UPDATE in options:  # a live context (RFC 5267 §4.2)
        code = search_contexts.start(view, cmd, saved, [c.record.uid for c in matched])
    return Completion("UID SEARCH completed" if cmd.uid else "SEARCH completed", code)


# SEARCH must not be interrupted by EXPUNGE responses (RFC 3501 §7.4.1).
SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Search, handle_search, SELECTED, may_send_expunge=False),
)

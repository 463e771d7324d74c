"""SORT and UID SORT (RFC 5256 §3; DISPLAYFROM/DISPLAYTO, RFC 5957).

``SORT (criteria) charset search-keys`` answers with one ``* SORT`` listing
the matching messages' sequence numbers (UIDs for UID SORT) in sorted
order; an empty ``* SORT`` when none match. The search part is SEARCH's
(``search``): same keys, same charsets (``NO [BADCHARSET (UTF-8
US-ASCII)]`` for others, RFC 5256 §3 "as in SEARCH"), same ``$`` and MODSEQ
handling (RFC 7162 §3.1.5: ``* SORT 2 5 (MODSEQ 917)``). The key semantics
are ``imapd.message.sortkeys``'s.

Cost, for a mailbox of any size: the search decides from the store records
first, as SEARCH does; for ALL with keys that are not record fields no
record is read at all, the client's view names the messages
(``_everything_keys``). ARRIVAL and SIZE come from the records too; the other
keys come from the SORT facts the store kept at delivery
(``MailBackend.sort_facts``, ``imapd.message.sortfacts``: one short row per
message, decoded in a few µs), read ``FACTS_BATCH`` at a time with
``ctx.pace`` after every ``PACE_EVERY`` messages (each counted: the
slice's budget is the same as with a call per message), so a SORT over
100,000 messages leaves other connections their turns. A message without stored facts
(stored before the store kept them) is keyed from its stored analysis (its
envelope: Date, Subject, the address fields) as before, one message at a
time. Only the keys are kept. The final ordering of a large result runs on
a worker thread (``THREAD_ABOVE``).

``sort_candidates`` is the reusable part (ESORT and CONTEXT=SORT build on
it): matching messages in mailbox order in, the same messages sorted out.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from imapd.imap.commands import condstore, esearch
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.search import _matching, check_charset
from imapd.imap.commands.search_eval import Candidate, matches_everything, uses_modseq
from imapd.imap.commands.select import selected_view
from imapd.imap.session import contexts
from imapd.imap.session.contexts import SortedResult
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.commands import Search
from imapd.imap.wire.responses import SearchResponse
from imapd.imap.wire.sort_command import Sort, SortCriterion
from imapd.message import analyze, sortfacts
from imapd.message.model import EnvelopeData, envelope_from_bytes
from imapd.message.sortkeys import RECORD_KEYS, KeyValue, key_values, needs_info, order

T = TypeVar("T")
Keys = dict[int, tuple[KeyValue, ...]]
# (sequence number, UID) of a sorted message.
Entry = tuple[int, int]

# Records (with their analyses) read from the store at once.
BATCH_SIZE = 256
# Messages whose stored facts are read from the store at once.
FACTS_BATCH = 2048
# Messages keyed from their records alone between two yield points.
PACE_EVERY = 256
# More messages than this are put in order on a worker thread: the sort
# itself is one uninterruptible call (about 0.1 s for 100,000 messages)
# that would otherwise hold the reactor.
THREAD_ABOVE = 2000


def _envelope(meta: bytes) -> tuple[bool, EnvelopeData | None]:
    """(decodable, envelope) of a stored analysis: only the envelope is
    decoded (half the cost of the whole analysis), and not through the
    shared memo, which a SORT reading every message once would only empty
    of the entries FETCH keeps reusing."""
    try:
        return True, envelope_from_bytes(meta)
    except ValueError:
        return False, None  # missing or foreign analysis: recomputed from the bytes


async def _keys_from_analyses(
    ctx: CommandContext, view: SelectedView, candidates: Sequence[Candidate],
    program: Sequence[SortCriterion],
) -> dict[int, tuple[KeyValue, ...]]:
    """Each candidate's keys (by UID), from its stored analysis."""
    keys: dict[int, tuple[KeyValue, ...]] = {}
    for start in range(0, len(candidates), BATCH_SIZE):
        batch = candidates[start:start + BATCH_SIZE]
        records = await view.watch.fetch_records([c.record.uid for c in batch], with_meta=True)
        for record in records:
            decodable, env = _envelope(record.meta)
            if not decodable:
                raw = await view.watch.read_message(record.uid)
                if raw is None:
                    continue  # expunged meanwhile: sorts with no header fields
                env = analyze(raw).envelope_data
            keys[record.uid] = key_values(program, record, env)
            await ctx.pace()  # others' turn between two messages (issue 13)
    return keys


async def _keys_from_facts(
    ctx: CommandContext, view: SelectedView, candidates: Sequence[Candidate],
    program: Sequence[SortCriterion],
) -> tuple[dict[int, tuple[KeyValue, ...]], list[Candidate]]:
    """Each candidate's keys (by UID) from the facts stored at delivery,
    and the candidates that have none (or unreadable ones)."""
    keys: dict[int, tuple[KeyValue, ...]] = {}
    missing: list[Candidate] = []
    for start in range(0, len(candidates), FACTS_BATCH):
        batch = candidates[start:start + FACTS_BATCH]
        stored = await view.watch.sort_facts([c.record.uid for c in batch])
        for index, candidate in enumerate(batch, start=1):
            blob = stored.get(candidate.record.uid)
            try:
                if blob is None:
                    raise ValueError("no stored facts")
                keys[candidate.record.uid] = sortfacts.blob_key_values(
                    program, candidate.record, blob)
            except ValueError:
                missing.append(candidate)  # keyed from its analysis
            if index % PACE_EVERY == 0 or index == len(batch):
                # Others' turn (issue 13), each message counted: one call
                # per message was a tenth of SORT (DATE) ALL (issue 18).
                await ctx.pace(index % PACE_EVERY or PACE_EVERY)
    return keys, missing


async def candidate_keys(
    ctx: CommandContext, view: SelectedView, candidates: Sequence[Candidate],
    program: Sequence[SortCriterion],
) -> dict[int, tuple[KeyValue, ...]]:
    """Each candidate's sort keys, by UID (RFC 5256 §3). Reads the stored
    facts (else analyses) only when a key needs them; a message expunged
    meanwhile sorts with no header fields."""
    keys: dict[int, tuple[KeyValue, ...]] = {}
    if needs_info(program):
        keys, missing = await _keys_from_facts(ctx, view, candidates, program)
        if missing:
            keys.update(await _keys_from_analyses(ctx, view, missing, program))
    for index, candidate in enumerate(candidates, start=1):
        if candidate.record.uid not in keys:
            keys[candidate.record.uid] = key_values(program, candidate.record, None)
        if index % PACE_EVERY == 0:
            await ctx.pace()
    return keys


async def sort_candidates(
    ctx: CommandContext, view: SelectedView, candidates: Sequence[Candidate],
    program: Sequence[SortCriterion],
) -> list[Candidate]:
    """``candidates`` (in mailbox order) sorted by ``program`` (RFC 5256 §3;
    ties in mailbox order)."""
    keys = await candidate_keys(ctx, view, candidates, program)
    return await _ordered(ctx, candidates, keys, program)


async def _ordered(
    ctx: CommandContext, candidates: Sequence[Candidate],
    keys: dict[int, tuple[KeyValue, ...]], program: Sequence[SortCriterion],
) -> list[Candidate]:
    def lookup(candidate: Candidate) -> tuple[KeyValue, ...]:
        return keys[candidate.record.uid]
    return await _in_order(ctx, candidates, lookup, program)


async def _in_order(
    ctx: CommandContext, items: Sequence[T], lookup: Callable[[T], tuple[KeyValue, ...]],
    program: Sequence[SortCriterion],
) -> list[T]:
    if len(items) > THREAD_ABOVE:
        return await ctx.runtime.in_thread(order, items, lookup, program)
    return order(items, lookup, program)


async def _everything_keys(
    ctx: CommandContext, view: SelectedView, program: Sequence[SortCriterion],
) -> tuple[list[Entry], Keys]:
    """SORT ... ALL (RFC 5256 §3): every message the client knows, keyed
    from its stored facts without reading the store records at all
    (100,000 records were a third of SORT (DATE) ALL). Only messages whose
    facts cannot key them alone (none stored, or DATE without a Date
    header: the internal date, RFC 5256 §2.2) have their records read, and
    are keyed as usual; a message gone from the store matches nothing."""
    uids = list(view.uids)
    keys: Keys = {}
    later: list[int] = []
    for start in range(0, len(uids), FACTS_BATCH):
        batch = uids[start:start + FACTS_BATCH]
        stored = await view.watch.sort_facts(batch)
        for index, uid in enumerate(batch, start=1):
            blob = stored.get(uid)
            try:
                if blob is None:
                    raise ValueError("no stored facts")
                keys[uid] = sortfacts.blob_key_values(program, None, blob)
            except ValueError:  # incl. NeedsRecord
                later.append(uid)
            if index % PACE_EVERY == 0 or index == len(batch):
                await ctx.pace(index % PACE_EVERY or PACE_EVERY)  # as _keys_from_facts
    if later:
        seq_of = {uid: seq for seq, uid in enumerate(uids, start=1)}
        records = await view.watch.fetch_records(later)
        candidates = [Candidate(seq_of[record.uid], record, False) for record in records]
        keys.update(await candidate_keys(ctx, view, candidates, program))
    return [(seq, uid) for seq, uid in enumerate(uids, start=1) if uid in keys], keys


async def _sorted(
    ctx: CommandContext, view: SelectedView, cmd: Sort, search: Search,
    saved: frozenset[int], with_modseq: bool,
) -> tuple[list[Entry], list[int], Keys, list[int] | None]:
    """(the matches sorted, their UIDs in mailbox order, their keys by UID,
    their MODSEQs sorted when the criteria use MODSEQ)."""
    if matches_everything(cmd.criteria) and not any(
            criterion.key in RECORD_KEYS for criterion in cmd.program):
        entries, keys = await _everything_keys(ctx, view, cmd.program)
        ordered = await _in_order(ctx, entries, lambda entry: keys[entry[1]], cmd.program)
        return ordered, [uid for _, uid in entries], keys, None
    matched = await _matching(ctx, view, search, saved)
    keys = await candidate_keys(ctx, view, matched, cmd.program)
    candidates = await _ordered(ctx, matched, keys, cmd.program)
    modseqs = [c.record.modseq for c in candidates] if with_modseq else None
    return ([(c.seq, c.record.uid) for c in candidates], [c.record.uid for c in matched],
            keys, modseqs)


async def handle_sort(cmd: Sort, ctx: CommandContext) -> Completion:
    """SORT / UID SORT (RFC 5256 §3); see the module docstring."""
    view = selected_view(ctx)
    check_charset(cmd.charset)
    with_modseq = uses_modseq(cmd.criteria)
    if with_modseq:
        condstore.enable_condstore(ctx)
    if cmd.uid:
        view.uid_mode = True  # later unsolicited FETCH carries UID (as SEARCH)
    search = Search(cmd.tag, cmd.uid, cmd.charset, cmd.criteria)
    saved = frozenset(view.saved_uids)
    ordered, matched, keys, modseqs = await _sorted(ctx, view, cmd, search, saved, with_modseq)
    numbers = tuple(uid if cmd.uid else seq for seq, uid in ordered)
    if cmd.return_options is not None:  # ESORT (RFC 5267 §3.2)
        options = esearch.effective_options(cmd.return_options)
        response = esearch.esearch_response(
            cmd.tag, cmd.uid, options, numbers, modseqs, cmd.partial)
        if response is not None:
            ctx.send(response)
        code = None
        if esearch.UPDATE in options:  # a live sorted context (RFC 5267 §4)
            result = SortedResult.of(cmd.program, [(uid, keys[uid]) for _, uid in ordered])
            code = contexts.start(view, search, saved, matched, result)
        return Completion("UID SORT completed" if cmd.uid else "SORT completed", code)
    modseq = max(modseqs) if modseqs else None
    ctx.send(SearchResponse(numbers, modseq, keyword="SORT"))
    return Completion("UID SORT completed" if cmd.uid else "SORT completed")


# Like SEARCH, SORT must not be interrupted by EXPUNGE responses (RFC 3501
# §7.4.1): the numbers it returns are the client's current ones.
SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Sort, handle_sort, SELECTED, may_send_expunge=False),
)

"""SORT and UID SORT (RFC 5256 §3; DISPLAYFROM/DISPLAYTO, RFC 5957).

``SORT (criteria) charset search-keys`` answers with one ``* SORT`` listing
the matching messages' sequence numbers (UIDs for UID SORT) in sorted
order; an empty ``* SORT`` when none match. The search part is SEARCH's
(``search``): same keys, same charsets (``NO [BADCHARSET (UTF-8
US-ASCII)]`` for others, RFC 5256 §3 "as in SEARCH"), same ``$`` and MODSEQ
handling (RFC 7162 §3.1.5: ``* SORT 2 5 (MODSEQ 917)``). The key semantics
are ``imapd.message.sortkeys``'s.

Cost, for a mailbox of any size: the search decides from the store records
first, as SEARCH does. ARRIVAL and SIZE come from the records too; the other
keys come from the SORT facts the store kept at delivery
(``MailBackend.sort_facts``, ``imapd.message.sortfacts``: one short row per
message, decoded in a few µs), read ``FACTS_BATCH`` at a time with
``ctx.pace`` between messages so a SORT over 100,000 messages
leaves other connections their turns. A message without stored facts
(stored before the store kept them) is keyed from its stored analysis (its
envelope: Date, Subject, the address fields) as before, one message at a
time. Only the keys are kept. The final ordering of a large result runs on
a worker thread (``THREAD_ABOVE``).

``sort_candidates`` is the reusable part (ESORT and CONTEXT=SORT build on
it): matching messages in mailbox order in, the same messages sorted out.
"""

from __future__ import annotations

from typing import Sequence

from imapd.imap.commands import condstore, esearch
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.search import _matching, check_charset
from imapd.imap.commands.search_eval import Candidate, uses_modseq
from imapd.imap.commands.select import selected_view
from imapd.imap.session import contexts
from imapd.imap.session.contexts import SortedResult
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.commands import Search
from imapd.imap.wire.responses import SearchResponse
from imapd.imap.wire.sort_command import Sort, SortCriterion
from imapd.message import analyze, sortfacts
from imapd.message.model import EnvelopeData, envelope_from_bytes
from imapd.message.sortkeys import KeyValue, key_values, needs_info, order

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
        for candidate in batch:
            blob = stored.get(candidate.record.uid)
            try:
                if blob is None:
                    raise ValueError("no stored facts")
                keys[candidate.record.uid] = sortfacts.blob_key_values(
                    program, candidate.record, blob)
            except ValueError:
                missing.append(candidate)  # keyed from its analysis
            await ctx.pace()  # others' turn between two messages (issue 13)
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
    if len(candidates) > THREAD_ABOVE:
        return await ctx.runtime.in_thread(order, candidates, lookup, program)
    return order(candidates, lookup, program)


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
    matched = await _matching(ctx, view, search, saved)
    keys = await candidate_keys(ctx, view, matched, cmd.program)
    ordered = await _ordered(ctx, matched, keys, cmd.program)
    numbers = tuple(c.record.uid if cmd.uid else c.seq for c in ordered)
    if cmd.return_options is not None:  # ESORT (RFC 5267 §3.2)
        options = esearch.effective_options(cmd.return_options)
        modseqs = [c.record.modseq for c in ordered] if with_modseq else None
        response = esearch.esearch_response(
            cmd.tag, cmd.uid, options, numbers, modseqs, cmd.partial)
        if response is not None:
            ctx.send(response)
        code = None
        if esearch.UPDATE in options:  # a live sorted context (RFC 5267 §4)
            result = SortedResult.of(
                cmd.program, [(c.record.uid, keys[c.record.uid]) for c in ordered])
            code = contexts.start(
                view, search, saved, [c.record.uid for c in matched], result)
        return Completion("UID SORT completed" if cmd.uid else "SORT completed", code)
    modseq = max(c.record.modseq for c in ordered) if with_modseq and ordered else None
    ctx.send(SearchResponse(numbers, modseq, keyword="SORT"))
    return Completion("UID SORT completed" if cmd.uid else "SORT completed")


# Like SEARCH, SORT must not be interrupted by EXPUNGE responses (RFC 3501
# §7.4.1): the numbers it returns are the client's current ones.
SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Sort, handle_sort, SELECTED, may_send_expunge=False),
)

"""CONTEXT=SEARCH updates and CANCELUPDATE (RFC 5267 §4).

A live context (``imapd.imap.session.contexts``) is told about, at each
drain of the selected view, the messages that started or stopped matching
its criteria since the last one::

    * ESEARCH (TAG "a1") ADDTO (0 3:5)
    * ESEARCH (TAG "a1") UID REMOVEFROM (0 4,9)

UID contexts (``UID SEARCH``) name UIDs, the others sequence numbers as the
client knows them when the response arrives. The context position is 0:
a SEARCH result is in ascending order, so the position carries nothing the
client cannot work out itself (§4.3; a sorted context, CONTEXT=SORT, is
where positions matter). Order on the wire (§4.3, RFC 3501 §7.4.1):

* before the view's own updates: REMOVEFROM for expunged messages, with the
  numbers they had before the EXPUNGE responses that follow (only when the
  command may send expunges; otherwise they wait), and ADDTO/REMOVEFROM for
  flag changes of messages the client knows;
* after them: ADDTO for new messages, so that it follows their EXISTS.

Only the changed messages are evaluated, once per context (bounded cost);
string keys read a message's analysis or bytes as SEARCH does.
"""

from __future__ import annotations

from typing import Sequence

from imapd.core.errors import ImapError
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands import announce, search, sort
from imapd.imap.commands.search_eval import Candidate, Evaluator
from imapd.imap.commands.select import selected_view
from imapd.imap.session.contexts import SearchContext
from imapd.imap.session.view import SelectedView, uid_set_text
from imapd.imap.wire.commands import CancelUpdate
from imapd.imap.wire.responses import Generic, Response
from imapd.imap.wire.values import Atom, IString, PList, Value

ADDTO = "ADDTO"
REMOVEFROM = "REMOVEFROM"
# The context position of an unsorted (SEARCH) context (see module doc).
UNSORTED_POSITION = 0


def update_response(context: SearchContext, item: str, numbers: Sequence[int]) -> Generic:
    """``* ESEARCH (TAG "t") [UID] ADDTO|REMOVEFROM (0 set)``; ``numbers``
    ascending."""
    values: list[Value] = [PList((Atom("TAG"), IString(context.tag.encode("utf-8"))))]
    if context.uid:
        values.append(Atom("UID"))
    values += [Atom(item), PList((UNSORTED_POSITION, Atom(uid_set_text(numbers))))]
    return Generic("ESEARCH", tuple(values))


async def _matching(
    ctx: CommandContext, view: SelectedView, context: SearchContext,
    pairs: Sequence[tuple[int, int]],
) -> set[int]:
    """The UIDs among ``pairs`` that match the context's criteria now, as
    SEARCH decides them (records first, then analyses, then bytes)."""
    uids = view.uids
    evaluator = Evaluator(len(uids), uids[-1] if uids else 0, context.saved)
    records = await view.watch.fetch_records([uid for _, uid in pairs])
    by_uid = {record.uid: record for record in records}
    found: set[int] = set()
    undecided: list[Candidate] = []
    for index, (seq, uid) in enumerate(pairs, start=1):
        record = by_uid.get(uid)
        if record is None:
            continue  # expunged meanwhile: its EXPUNGE will follow
        candidate = Candidate(seq, record, view.is_recent(uid))
        verdict = evaluator.evaluate(context.command.criteria, candidate)
        if verdict is None:
            undecided.append(candidate)
        elif verdict:
            found.add(uid)
        if index % search.PACE_EVERY == 0:
            await ctx.pace()
    if undecided:
        decided = await search._decide(ctx, view, evaluator, context.command, undecided)
        found.update(candidate.record.uid for candidate in decided)
    return found


def _numbers(context: SearchContext, pairs: Sequence[tuple[int, int]]) -> list[int]:
    return sorted(uid if context.uid else seq for seq, uid in pairs)


def sorted_response(context: SearchContext, item: str, placed: Sequence[tuple[int, int]]) -> Generic:
    """``* ESEARCH (TAG "t") [UID] ADDTO|REMOVEFROM (p1 n1 p2 n2 ...)`` for
    a sorted context (RFC 5267 §4.3, ``context-position SP sequence-set``
    repeated): one message per pair, to be applied left to right; an ADDTO
    position is where the message stands once added, a REMOVEFROM position
    where it stood before it left (1 = first in sort order)."""
    values: list[Value] = [PList((Atom("TAG"), IString(context.tag.encode("utf-8"))))]
    if context.uid:
        values.append(Atom("UID"))
    items: list[Value] = []
    for position, number in placed:
        items += [position, number]
    values += [Atom(item), PList(tuple(items))]
    return Generic("ESEARCH", tuple(values))


def _leave(context: SearchContext, pairs: Sequence[tuple[int, int]]) -> Response | None:
    """Take the (seq, UID) pairs out of the result; REMOVEFROM for them."""
    context.result.difference_update(uid for _, uid in pairs)
    if not pairs:
        return None
    if context.sorted is None:
        return update_response(context, REMOVEFROM, _numbers(context, pairs))
    placed = [(context.sorted.remove(uid), uid if context.uid else seq) for seq, uid in pairs]
    return sorted_response(context, REMOVEFROM, placed)


async def _join(
    ctx: CommandContext, view: SelectedView, context: SearchContext,
    pairs: Sequence[tuple[int, int]],
) -> Response | None:
    """Put the (seq, UID) pairs in the result; ADDTO for them (a sorted
    context reads their keys, which never change, once)."""
    context.result.update(uid for _, uid in pairs)
    if not pairs:
        return None
    if context.sorted is None:
        return update_response(context, ADDTO, _numbers(context, pairs))
    seqs = dict((uid, seq) for seq, uid in pairs)
    records = await view.watch.fetch_records(list(seqs))
    candidates = [Candidate(seqs[r.uid], r, view.is_recent(r.uid)) for r in records]
    keys = await sort.candidate_keys(ctx, view, candidates, context.sorted.program)
    placed = []
    for seq, uid in pairs:
        found = keys.get(uid)
        if found is None:  # expunged meanwhile: never added, its EXPUNGE follows
            context.result.discard(uid)
            continue
        placed.append((context.sorted.insert(uid, found), uid if context.uid else seq))
    return sorted_response(context, ADDTO, placed) if placed else None


async def _reevaluate(
    ctx: CommandContext, view: SelectedView, pairs: list[tuple[int, int]],
) -> list[Response]:
    """ADDTO/REMOVEFROM for the (seq, UID) pairs the client knows whose
    state changed, per context."""
    responses: list[Response] = []
    for context in list(view.contexts.live.values()):
        now = await _matching(ctx, view, context, pairs)
        joined = [(seq, uid) for seq, uid in pairs if uid in now and uid not in context.result]
        left = [(seq, uid) for seq, uid in pairs if uid not in now and uid in context.result]
        for response in (await _join(ctx, view, context, joined), _leave(context, left)):
            if response is not None:
                responses.append(response)
    return responses


async def before_drain(ctx: CommandContext, view: SelectedView, allow_expunge: bool) -> list[Response]:
    """The updates that precede the view's drain (see module doc)."""
    contexts = view.contexts
    if not contexts.live:
        contexts.forget()
        return []
    responses: list[Response] = []
    if allow_expunge and contexts.expunged:
        gone = [(view.seq_of(uid), uid) for uid in sorted(contexts.expunged)]
        known = [(seq, uid) for seq, uid in gone if seq is not None]
        for context in contexts.live.values():
            left = [(seq, uid) for seq, uid in known if uid in context.result]
            response = _leave(context, left)
            # Never announced ones leave silently.
            context.result.difference_update(contexts.expunged)
            if context.sorted is not None:
                for uid in contexts.expunged:
                    context.sorted.remove(uid)
            if response is not None:
                responses.append(response)
        contexts.expunged.clear()
    pending = contexts.expunged
    changed = sorted(contexts.changed)
    contexts.changed.clear()
    pairs = []
    for uid in changed:
        seq = view.seq_of(uid)
        # New messages are evaluated after the drain; expunged ones leave
        # with their EXPUNGE.
        if seq is not None and uid not in pending and not view.is_expunge_pending(uid):
            pairs.append((seq, uid))
    if pairs:
        responses += await _reevaluate(ctx, view, pairs)
    return responses


async def after_drain(ctx: CommandContext, view: SelectedView) -> list[Response]:
    """ADDTO for the messages the drain announced (after their EXISTS)."""
    contexts = view.contexts
    if not contexts.added:
        return []
    added = contexts.added[:]
    contexts.added.clear()
    # Every pending addition was just announced; one without a number was
    # expunged before it was (the client never hears of it).
    pairs = [(seq, uid) for uid, seq in ((uid, view.seq_of(uid)) for uid in added)
             if seq is not None]
    if not pairs or not contexts.live:
        return []
    return await _reevaluate(ctx, view, pairs)


async def send_updates(ctx: CommandContext, view: SelectedView) -> None:
    """The view's pending updates with the contexts' around them, expunges
    allowed: IDLE's pushes (RFC 2177; RFC 5267 §4.3 updates go out whenever
    unsolicited responses may)."""
    for response in await before_drain(ctx, view, allow_expunge=True):
        ctx.send(response)
    announce.send_updates(ctx, allow_expunge=True)
    for response in await after_drain(ctx, view):
        ctx.send(response)


async def handle_cancelupdate(cmd: CancelUpdate, ctx: CommandContext) -> Completion:
    """CANCELUPDATE (RFC 5267 §4.3): stop the named contexts' updates. A tag
    naming no live context is a client error (BAD) and then none ends."""
    view = selected_view(ctx)
    unknown = view.contexts.cancel(cmd.search_tags)
    if unknown:
        raise ImapError.bad(f"No search context with tag {unknown[0][:40]}")
    return Completion("CANCELUPDATE completed")


SPECS: tuple[AnySpec, ...] = (
    CommandSpec(CancelUpdate, handle_cancelupdate, SELECTED),
)

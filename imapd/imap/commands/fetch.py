"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8; responses §7.4.2).

For each message of the set, in ascending order, one untagged
``* seq FETCH (...)`` with the items in the order the client asked for them
(duplicates answered once). UID FETCH always includes UID (RFC 3501 §6.4.8);
when the client did not ask for it, it comes last, as in the RFC's example
``* 23 FETCH (FLAGS (\\Seen) UID 4827313)``.

Sequence numbers outside 1..EXISTS are a client error (BAD, raised by the
view's ``resolve``); UIDs that do not exist are ignored, and ``n:*`` always
includes the highest UID (RFC 3501 §6.4.8, §9). Messages that another
session expunged but this client has not yet been told about (expunges are
held back during FETCH, RFC 3501 §7.4.1) are left out of the answer
(RFC 2180 §4.1.2 allows this).

CONDSTORE (RFC 7162 §3.1.4): the MODSEQ item, and the CHANGEDSINCE modifier
(only messages changed since, MODSEQ implied; the candidates come from the
store's change index, so the cost follows the number of changes); both are
CONDSTORE enabling commands. ``UID FETCH ... (CHANGEDSINCE n VANISHED)``
(§3.2.6, QRESYNC enabled only) first reports the set's UIDs expunged since
as ``* VANISHED (EARLIER)``. Once CONDSTORE is on, a FETCH that sets
``\\Seen`` also reports UID and the new MODSEQ (§3.1).

Fetching ``BODY[...]`` (not ``BODY.PEEK``), ``RFC822`` or ``RFC822.TEXT``
sets ``\\Seen`` unless the mailbox is read-only; a message whose flags
changed that way gets its new FLAGS in the same FETCH response even when
FLAGS was not asked for (RFC 3501 §6.4.5: "if this causes the flags to
change, they SHOULD be included as part of the FETCH responses").
"""

from __future__ import annotations

from typing import Callable, Sequence

from imapd.imap.commands import catalogue, condstore
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.fetch_items import (
    MessageSource, item_name, item_value, needs_info, sets_seen,
)
from imapd.imap.commands.select import selected_view
from imapd.core.errors import ImapError
from imapd.mail.flags import FlagOp
from imapd.mail.records import FlagState, MessageRecord
from imapd.core.model import SEEN
from imapd.imap.session.view import SelectedView
from imapd.imap.wire.commands import Fetch, FetchAttribute, FetchKind
from imapd.imap.wire.responses import FetchResponse
from imapd.imap.wire.values import Value

# Messages whose records (and analyses) are read from the store at once.
BATCH_SIZE = 256
# Messages whose flags are read at once when only FLAGS, UID and MODSEQ are
# asked for (a client's resync, ``UID FETCH 1:* (UID FLAGS)``).
FLAGS_BATCH_SIZE = 16384
# Flag-only responses sent between two yield points (``ctx.pace``): about
# 0.1 ms of work, so pacing costs nothing measurable in a resync.
PACE_EVERY = 64
_UID = FetchAttribute(FetchKind.UID)
_MODSEQ = FetchAttribute(FetchKind.MODSEQ)
_FLAG_KINDS = frozenset({FetchKind.FLAGS, FetchKind.UID, FetchKind.MODSEQ})


def response_attributes(cmd: Fetch) -> tuple[FetchAttribute, ...]:
    """The items to answer, in the client's order, each response name once;
    UID added at the end for UID FETCH when not asked for (§6.4.8), then
    MODSEQ when CHANGEDSINCE implies it (RFC 7162 §3.1.4.1)."""
    names: set[str] = set()
    attributes: list[FetchAttribute] = []
    for attribute in cmd.attributes:
        name = item_name(attribute)
        if name not in names:
            names.add(name)
            attributes.append(attribute)
    if cmd.uid and _UID.kind.value not in names:
        attributes.append(_UID)
    if cmd.changedsince is not None and _MODSEQ.kind.value not in names:
        attributes.append(_MODSEQ)
    return tuple(attributes)


async def _mark_seen(
    view: SelectedView, records: Sequence[MessageRecord]
) -> dict[int, FlagState]:
    """Set ``\\Seen`` on the records lacking it; their new state by UID.
    The FETCH responses show it (RFC 3501 §6.4.5), so the view is told not
    to report the change again."""
    unseen = [record.uid for record in records if SEEN not in record.flags]
    if not unseen:
        return {}
    result = await view.watch.store_flags(unseen, FlagOp.ADD, (SEEN,))
    changed = {state.uid: state for state in result.states if state.uid in result.changed}
    view.reported(changed.values())
    return changed


async def _fetch_items(
    source: MessageSource,
    view: SelectedView,
    attributes: Sequence[FetchAttribute],
    state: FlagState,
) -> list[tuple[str, Value]]:
    uid = source.record.uid
    items: list[tuple[str, Value]] = []
    for attribute in attributes:
        value: Value
        if attribute.kind is FetchKind.FLAGS:
            value = view.flags_value(uid, state.flags)
        elif attribute.kind is FetchKind.UID:
            value = uid
        elif attribute.kind is FetchKind.MODSEQ:
            value = condstore.modseq_value(state.modseq)
        else:
            value = await item_value(source, attribute)
        items.append((item_name(attribute), value))
    return items


def _seen_change_items(
    view: SelectedView, state: FlagState, names: set[str], with_condstore: bool,
) -> list[tuple[str, Value]]:
    """What a FETCH that just set ``\\Seen`` adds to a response that lacks
    it: FLAGS (RFC 3501 §6.4.5), and with CONDSTORE on UID and MODSEQ
    (RFC 7162 §3.1)."""
    extra: list[tuple[str, Value]] = []
    if "FLAGS" not in names:
        extra.append(("FLAGS", view.flags_value(state.uid, state.flags)))
    if with_condstore and "UID" not in names:
        extra.append(("UID", state.uid))
    if with_condstore and "MODSEQ" not in names:
        extra.append(("MODSEQ", condstore.modseq_value(state.modseq)))
    return extra


def _flag_items_only(cmd: Fetch, attributes: Sequence[FetchAttribute]) -> bool:
    """Is every item answered from the flags alone (FLAGS, UID, MODSEQ)?
    None of them sets ``\\Seen`` or needs the message itself."""
    return all(a.kind in _FLAG_KINDS for a in (*cmd.attributes, *attributes))


FlagItems = Callable[[int, FlagState], tuple[tuple[str, Value], ...]]


def _flag_items_builder(plan: Sequence[tuple[str, FetchKind]], view: SelectedView) -> FlagItems:
    """The items of one message for ``plan`` ((name, kind) in response
    order): ``(uid, state) -> ((name, value), ...)``. UID with FLAGS, in
    either order, is what every client's resync asks for
    (``UID FETCH 1:* (FLAGS)`` adds UID, RFC 3501 §6.4.8): it gets a
    builder without a per-item loop."""
    flags_value = view.flags_value
    kinds = tuple(kind for _, kind in plan)
    if kinds == (FetchKind.UID, FetchKind.FLAGS):
        (uid_name, _), (flags_name, _) = plan
        return lambda uid, state: ((uid_name, uid), (flags_name, flags_value(uid, state.flags)))
    if kinds == (FetchKind.FLAGS, FetchKind.UID):
        (flags_name, _), (uid_name, _) = plan
        return lambda uid, state: ((flags_name, flags_value(uid, state.flags)), (uid_name, uid))

    def items(uid: int, state: FlagState) -> tuple[tuple[str, Value], ...]:
        values: list[tuple[str, Value]] = []
        for name, kind in plan:
            if kind is FetchKind.UID:
                values.append((name, uid))
            elif kind is FetchKind.FLAGS:
                values.append((name, flags_value(uid, state.flags)))
            else:
                values.append((name, condstore.modseq_value(state.modseq)))
        return tuple(values)

    return items


async def _send_flag_items(
    ctx: CommandContext,
    view: SelectedView,
    attributes: Sequence[FetchAttribute],
    pairs: Sequence[tuple[int, int]],
) -> None:
    """The responses of a FETCH of FLAGS, UID and MODSEQ only, as the
    general loop would build them (same items, same order, expunged
    messages left out) from one flag read per ``FLAGS_BATCH_SIZE``
    messages, with no per-message record, message source or coroutine: a
    resync of 100,000 messages is one short response each."""
    items_of = _flag_items_builder([(item_name(a), a.kind) for a in attributes], view)
    send = ctx.send
    for start in range(0, len(pairs), FLAGS_BATCH_SIZE):
        batch = pairs[start:start + FLAGS_BATCH_SIZE]
        states = await view.watch.fetch_flags([uid for _, uid in batch])
        by_uid = {state.uid: state for state in states}
        for index, (seq, uid) in enumerate(batch, start=1):
            state = by_uid.get(uid)
            if state is not None:  # else expunged by another session, not yet announced
                send(FetchResponse(seq, items_of(uid, state)))
            if index % PACE_EVERY == 0:
                await ctx.pace()
        await ctx.pace()


async def _resolve(cmd: Fetch, ctx: CommandContext, view: SelectedView) -> list[tuple[int, int]]:
    """The (seq, uid) pairs to answer; with CHANGEDSINCE only the changed
    ones, after the VANISHED (EARLIER) report when asked (RFC 7162 §3.2.6)."""
    if cmd.changedsince is None:
        return view.resolve(cmd.seqset, cmd.uid)
    if cmd.vanished:
        gone = await condstore.vanished_in_set(view, cmd.seqset, cmd.changedsince)
        if gone:
            ctx.send(condstore.vanished_earlier(gone))
    return await condstore.changed_pairs(view, cmd.seqset, cmd.uid, cmd.changedsince)


async def handle_fetch(cmd: Fetch, ctx: CommandContext) -> Completion:
    """FETCH / UID FETCH (RFC 3501 §6.4.5, §6.4.8); see the module docstring."""
    view = selected_view(ctx)
    attributes = response_attributes(cmd)
    if cmd.vanished and not condstore.qresync_on(ctx.session):
        raise ImapError.bad(catalogue.BAD_QRESYNC_NOT_ENABLED)
    if cmd.changedsince is not None or _MODSEQ in attributes:
        condstore.enable_condstore(ctx)
    pairs = await _resolve(cmd, ctx, view)
    if _flag_items_only(cmd, attributes):
        await _send_flag_items(ctx, view, attributes, pairs)
        return Completion("UID FETCH completed" if cmd.uid else "FETCH completed")
    marks_seen = not view.readonly and any(sets_seen(a) for a in cmd.attributes)
    with_meta = any(needs_info(a) for a in attributes)
    names = {item_name(a) for a in attributes}
    for start in range(0, len(pairs), BATCH_SIZE):
        batch = pairs[start:start + BATCH_SIZE]
        records = await view.watch.fetch_records(
            [uid for _, uid in batch], with_meta=with_meta
        )
        by_uid = {record.uid: record for record in records}
        new_flags = await _mark_seen(view, records) if marks_seen else {}
        for seq, uid in batch:
            record = by_uid.get(uid)
            if record is None:
                continue  # expunged by another session; not yet announced
            state = new_flags.get(uid) or FlagState(uid, record.flags, record.modseq)
            source = MessageSource(view.watch, record, ctx.runtime)
            items = await _fetch_items(source, view, attributes, state)
            if uid in new_flags:
                items += _seen_change_items(view, state, names, view.condstore)
            ctx.send(FetchResponse(seq, tuple(items)))
            # Written as the client reads it (a large body, or many small
            # responses): wait for that before opening the next message, and
            # let other connections have their turn (issue 13).
            await ctx.pace()
    return Completion("UID FETCH completed" if cmd.uid else "FETCH completed")


# FETCH must not be interrupted by EXPUNGE responses (RFC 3501 §7.4.1); UID
# FETCH may be, but holding them back is allowed and keeps one rule.
SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Fetch, handle_fetch, SELECTED, may_send_expunge=False),
)

__all__ = ["SPECS", "handle_fetch", "response_attributes"]

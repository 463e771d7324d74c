"""STORE and UID STORE (RFC 3501 §6.4.6, §6.4.8).

``FLAGS`` replaces the message flags, ``+FLAGS`` adds to them, ``-FLAGS``
removes from them. Unless ``.SILENT`` was given, each message of the set
that still exists gets an untagged ``* seq FETCH (FLAGS (...))`` with its
flags after the change (with ``UID`` for UID STORE, RFC 3501 §6.4.8; with
MODSEQ once CONDSTORE is enabled, RFC 7162 §3.1.3) — also for messages whose
flags did not change, as the RFC's example shows.

* ``\\Recent`` cannot be stored: it is server-owned (RFC 3501 §2.3.2) and
  not in PERMANENTFLAGS; asking for it is answered BAD, like an unknown
  ``\\`` flag (Dovecot does the same). Flags are checked before anything
  else, so the answer does not depend on the message set.
* A read-only (EXAMINEd) mailbox answers ``NO [READ-ONLY]``.
* Other sessions with the mailbox selected learn of the change as untagged
  FETCH at their next command (their doorbells ring; they catch up). This
  session catches up too, and its view drops the states this handler
  already reported (``SelectedView.reported``), so no FETCH is repeated.
  Pending changes are caught up *before* storing, so a change another
  session made to the same message is still announced after a ``.SILENT``
  STORE (whose new state the client is assumed to know).

CONDSTORE (RFC 7162 §3.1.3): ``(UNCHANGEDSINCE n)`` changes only the
messages whose MODSEQ is at most ``n``; the others (and messages expunged
meanwhile, which could not be changed either) are listed in the tagged
``OK [MODIFIED set]`` (sequence numbers, or UIDs for UID STORE). It is a
CONDSTORE enabling command. With CONDSTORE on, even ``.SILENT`` sends
``FETCH (UID MODSEQ)`` for each message whose flags changed ("required to
update the client's cache with the correct mod-sequence values").
"""

from __future__ import annotations

from imapd.imap.commands import catalogue, condstore
from imapd.imap.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.imap.commands.select import selected_view
from imapd.core.errors import ImapError
from imapd.mail.flags import FlagOp, split_flags
from imapd.mail.records import FlagState, StoreResult
from imapd.imap.session.view import SelectedView, uid_set_text
from imapd.imap.wire.commands import Store, StoreMode
from imapd.imap.wire.responses import FetchResponse, ResponseCode
from imapd.imap.wire.values import Atom, Value

# Responses sent between two yield points (``ctx.pace``, issue 13).
_PACE_EVERY = 64
# Attempts of a .SILENT STORE while other sessions keep changing its
# messages (``_silent_store``).
_SILENT_ATTEMPTS = 4

_OPS = {
    StoreMode.REPLACE: FlagOp.REPLACE,
    StoreMode.ADD: FlagOp.ADD,
    StoreMode.REMOVE: FlagOp.REMOVE,
}


async def handle_store(cmd: Store, ctx: CommandContext) -> Completion:
    """STORE / UID STORE (RFC 3501 §6.4.6, §6.4.8); see the module docstring."""
    view = selected_view(ctx)
    split_flags(cmd.flags)  # BAD for \Recent, unknown \flags, bad keywords
    if view.readonly:
        raise ImapError.no("Mailbox is read-only", "READ-ONLY")
    if cmd.unchangedsince is not None:
        condstore.enable_condstore(ctx)
    pairs = view.resolve(cmd.seqset, cmd.uid)
    done = "UID STORE completed" if cmd.uid else "STORE completed"
    if not pairs:
        return Completion(done)
    if view.watch.rang:
        await view.catch_up()  # others' earlier changes stay news
    uids = [uid for _, uid in pairs]
    if cmd.silent:
        result, known = await _silent_store(view, cmd, uids)
    else:
        result = await view.watch.store_flags(uids, _OPS[cmd.mode], cmd.flags, cmd.unchangedsince)
        known = list(result.states)
    # What the client now knows: every state shown below, or with .SILENT
    # the states it set itself on top of one it knew (RFC 3501 §6.4.6).
    view.reported(known, shown=not cmd.silent)
    states = {state.uid: state for state in result.states}
    for index, (seq, uid) in enumerate(pairs, start=1):
        if index % _PACE_EVERY == 0:
            await ctx.pace()  # STORE 1:* answers every message (issue 13)
        state = states.get(uid)
        if state is None:
            continue  # expunged by another session, or failed UNCHANGEDSINCE
        if not cmd.silent:
            ctx.send(_flags_fetch(view, seq, state, cmd.uid))
        elif view.condstore and uid in result.changed:
            ctx.send(FetchResponse(seq, (("UID", uid), ("MODSEQ", condstore.modseq_value(state.modseq)))))
    if cmd.unchangedsince is not None:
        return _conditional_completion(cmd, pairs, result, done)
    return Completion(done)


async def _silent_store(
    view: SelectedView, cmd: Store, uids: list[int],
) -> tuple[StoreResult, list[FlagState]]:
    """STORE .SILENT, and the new states the client may be taken to know.

    The client learns no flags here: it knows a message's new state only
    if it knew the state before, i.e. no other session changed the message
    after the view's state. The catch-up before the store does not ensure
    that: a write queued earlier can commit between that read and this
    store (the threaded backend runs writes in order on its thread, and
    their doorbells ring later), and this store's resulting state would
    then hide it: the view would take the merged state as already told and
    the other change would never reach the client. So each message is
    stored only if unchanged since the view's state (UNCHANGEDSINCE, RFC
    7162 §3.1.3); the others are stored again after a catch-up, which
    queues the other change for the client. The last attempt is
    unconditional and its states are not taken as known (the client then
    gets a FETCH of them)."""
    limit = cmd.unchangedsince
    states: list[FlagState] = []
    changed: set[int] = set()
    known: list[FlagState] = []
    for attempt in range(1, _SILENT_ATTEMPTS + 1):
        if view.watch.rang:
            await view.catch_up()
        last = attempt == _SILENT_ATTEMPTS
        bound = limit
        if not last:
            bound = view.highestmodseq if limit is None else min(limit, view.highestmodseq)
        result = await view.watch.store_flags(uids, _OPS[cmd.mode], cmd.flags, bound)
        states.extend(result.states)
        changed |= result.changed
        if not last:
            known.extend(s for s in result.states if s.uid in result.changed)
        if bound == limit or not result.modified:
            break  # what failed now failed the client's own UNCHANGEDSINCE
        uids = list(result.modified)
    return StoreResult(tuple(states), frozenset(changed), result.modified), known


def _flags_fetch(view: SelectedView, seq: int, state: FlagState, uid_command: bool) -> FetchResponse:
    """``* seq FETCH (FLAGS (...) [UID u] [MODSEQ (m)])`` after a STORE."""
    items: list[tuple[str, Value]] = [("FLAGS", view.flags_value(state.uid, state.flags))]
    if uid_command or view.condstore:
        items.append(("UID", state.uid))
    if view.condstore:
        items.append(("MODSEQ", condstore.modseq_value(state.modseq)))
    return FetchResponse(seq, tuple(items))


def _conditional_completion(
    cmd: Store, pairs: list[tuple[int, int]], result: StoreResult, done: str,
) -> Completion:
    """The tagged OK of STORE (UNCHANGEDSINCE n): ``[MODIFIED set]`` with the
    messages not changed because their MODSEQ is above ``n`` or because
    they no longer exist (RFC 7162 §3.1.3)."""
    passed = {state.uid for state in result.states}
    failed = [seq_uid for seq_uid in pairs if seq_uid[1] not in passed]
    if not failed:
        return Completion(done)
    numbers = sorted(uid if cmd.uid else seq for seq, uid in failed)
    code = ResponseCode(catalogue.CODE_MODIFIED, (Atom(uid_set_text(numbers)),))
    return Completion(catalogue.OK_CONDITIONAL_STORE_FAILED, code)


# STORE must not be interrupted by EXPUNGE responses (RFC 3501 §7.4.1).
SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Store, handle_store, SELECTED, may_send_expunge=False),
)

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
  FETCH at their next command (the store notifies their views).
"""

from __future__ import annotations

from imapd.commands.context import AnySpec, CommandContext, CommandSpec, Completion, SELECTED
from imapd.commands.select import selected_view
from imapd.errors import ImapError
from imapd.mailstore.flags import FlagOp, split_flags
from imapd.mailstore.interface import MailStore
from imapd.wire.commands import Store, StoreMode
from imapd.wire.responses import FetchResponse
from imapd.wire.values import PList, Value

_OPS = {
    StoreMode.REPLACE: FlagOp.REPLACE,
    StoreMode.ADD: FlagOp.ADD,
    StoreMode.REMOVE: FlagOp.REMOVE,
}


async def handle_store(cmd: Store, ctx: CommandContext) -> Completion:
    """STORE / UID STORE (RFC 3501 §6.4.6, §6.4.8); see the module docstring."""
    view = selected_view(ctx)
    store: MailStore = ctx.store
    split_flags(cmd.flags)  # BAD for \Recent, unknown \flags, bad keywords
    if view.readonly:
        raise ImapError.no("Mailbox is read-only", "READ-ONLY")
    pairs = view.resolve(cmd.seqset, cmd.uid)
    done = "UID STORE completed" if cmd.uid else "STORE completed"
    if not pairs:
        return Completion(done)
    result = await store.store_flags(
        view.selection, [uid for _, uid in pairs], _OPS[cmd.mode], cmd.flags
    )
    if cmd.silent:
        return Completion(done)
    states = {state.uid: state for state in result.states}
    for seq, uid in pairs:
        state = states.get(uid)
        if state is None:
            continue  # expunged by another session; not yet announced
        items: list[tuple[str, Value]] = [("FLAGS", view.flags_value(uid, state.flags))]
        if cmd.uid or view.condstore:
            items.append(("UID", uid))
        if view.condstore:
            items.append(("MODSEQ", PList((state.modseq,))))
        ctx.send(FetchResponse(seq, tuple(items)))
    return Completion(done)


# STORE must not be interrupted by EXPUNGE responses (RFC 3501 §7.4.1).
SPECS: tuple[AnySpec, ...] = (
    CommandSpec(Store, handle_store, SELECTED, may_send_expunge=False),
)

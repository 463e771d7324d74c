"""Applying planned tree edits (``mail.backend.TreeOp``) to ``MemoryData``.

The ops are checked against the tree they will meet (a dry run over the
names) before anything changes, so a bad plan leaves the tree as it was:
the atomicity ``MailBackend.edit_tree`` promises.
"""

from __future__ import annotations

from typing import Sequence

from imapd.mail.backend import AddMailbox, RemoveMailbox, RenameMailbox, TransferMessages, TreeOp
from imapd.mail.errors import OverLimit
from imapd.storage.memory.data import MemoryData, User


def _check(user: User, ops: Sequence[TreeOp]) -> None:
    """Raise ValueError (a planner bug, not a client error) for an op that
    would not apply, and OverLimit when UIDVALIDITYs would run out."""
    present = {name: box.selectable for name, box in user.mailboxes.items()}
    fresh: set[str] = set()
    for op in ops:
        if isinstance(op, AddMailbox):
            if op.name in present:
                raise ValueError(f"AddMailbox: {op.name!r} exists")
            present[op.name] = op.selectable
            fresh.add(op.name)
        elif isinstance(op, RemoveMailbox):
            if present.pop(op.name, None) is None:
                raise ValueError(f"RemoveMailbox: no {op.name!r}")
            fresh.discard(op.name)
        elif isinstance(op, RenameMailbox):
            if op.old not in present or op.new in present:
                raise ValueError(f"RenameMailbox: {op.old!r} -> {op.new!r}")
            present[op.new] = present.pop(op.old)
            if op.old in fresh:
                fresh.discard(op.old)
                fresh.add(op.new)
        elif isinstance(op, TransferMessages):
            if not present.get(op.source) or op.target not in fresh or not present[op.target]:
                raise ValueError(f"TransferMessages: {op.source!r} -> {op.target!r}")
        else:  # pragma: no cover - the TreeOp union is closed
            raise ValueError(f"unknown tree op {op!r}")
    # No other op can make the fresh target non-empty; a Transfer into one
    # that a previous Transfer filled is caught at apply time below.


def apply_tree_ops(data: MemoryData, user: User, ops: Sequence[TreeOp]) -> list[tuple[int, int]]:
    """Apply ``ops`` in order; returns (mailbox id, modseq or 0) to ring:
    every mailbox removed or renamed, and a Transfer's source."""
    _check(user, ops)
    adds = sum(1 for op in ops if isinstance(op, AddMailbox))
    if adds > data.uidvalidity_left():
        raise OverLimit("UIDVALIDITY space exhausted")
    rung: list[tuple[int, int]] = []
    for op in ops:
        if isinstance(op, AddMailbox):
            data.add_mailbox(user, op.name, op.selectable, op.special_use)
        elif isinstance(op, RemoveMailbox):
            rung.append((data.remove_mailbox(user, op.name).id, 0))
        elif isinstance(op, RenameMailbox):
            mailbox = user.mailboxes.pop(op.old)
            mailbox.name = op.new
            user.mailboxes[op.new] = mailbox
            rung.append((mailbox.id, 0))
        else:
            rung.append(_transfer(user, op))
    return rung


def _transfer(user: User, op: TransferMessages) -> tuple[int, int]:
    """RENAME INBOX (RFC 3501 §6.3.5): the messages move with their UIDs,
    flags, dates and sizes; the source records them as expunged under one
    new MODSEQ and keeps UIDVALIDITY and UIDNEXT. The moved messages keep
    a MODSEQ of 1, the target's HIGHESTMODSEQ (a fresh mailbox's)."""
    source = user.mailboxes[op.source]
    target = user.mailboxes[op.target]
    assert not target.messages, "TransferMessages into a non-empty mailbox"
    moved = list(source.messages.values())
    for message in moved:
        message.modseq = target.highestmodseq
        target.messages[message.uid] = message
    target.keywords.update(source.keywords)
    target.uidnext = source.uidnext
    # As the SQLite engine: the moved messages count as claimed in the
    # target (\Recent belongs to sessions of the source, RFC 3501 §2.3.2).
    target.recent_from = source.uidnext
    source.messages.clear()
    modseq = source.highestmodseq
    if moved:
        modseq = source.bump()
        source.expunged.extend((m.uid, modseq) for m in moved)
    return source.id, modseq

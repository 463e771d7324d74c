"""Planning the mailbox hierarchy edits of CREATE, DELETE and RENAME, and
computing LIST / LSUB, once for every storage engine.

Pure functions over a user's tree (``MailboxEntry`` rows, canonical names
from ``names``). The ``plan_*`` functions return a ``TreePlan`` that
``MailBackend.edit_tree`` runs inside its transaction on the tree as it is
then; the plan raises ``imapd.mail.errors`` (nothing changed) or returns the
edits. The rules are those of RFC 3501 §6.3.3-§6.3.5 as this server has
always applied them:

Invariant: every superior of an existing name exists too, as a mailbox or
as a ``\\Noselect`` placeholder (``selectable`` False).

* CREATE: INBOX or an existing mailbox: AlreadyExists. Missing superiors
  are created as real (selectable) mailboxes. A placeholder by that name
  becomes a real mailbox (a new row: fresh id and UIDVALIDITY).
* DELETE: INBOX: Cannot. Unknown: NoSuchMailbox. A placeholder with
  inferiors: HasChildren (RFC 9051 §7.1). A mailbox with inferiors loses
  its messages and becomes a placeholder (a new row, so its sessions see it
  deleted); otherwise it goes, with the superior placeholders it leaves
  without inferiors. Subscriptions are not touched (RFC 3501 §6.3.6).
* RENAME: ``new`` is INBOX or exists: AlreadyExists; ``new`` below ``old``:
  Cannot; ``old`` unknown: NoSuchMailbox. The subtree moves keeping ids and
  UIDVALIDITYs; missing superiors of ``new`` are created; superior
  placeholders of ``old`` left without inferiors go.
* RENAME INBOX: its messages move to a new mailbox ``new`` (UIDs kept);
  INBOX stays, empty, UIDVALIDITY and UIDNEXT unchanged; its inferiors stay.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from imapd.mail import names
from imapd.mail.backend import (
    AddMailbox, MailboxEntry, RemoveMailbox, RenameMailbox, TransferMessages, TreeOp, TreePlan,
)
from imapd.mail.errors import AlreadyExists, Cannot, HasChildren, NoSuchMailbox
from imapd.mail.listpattern import StepBudget
from imapd.mail.records import MailboxInfo


def _by_name(tree: Iterable[MailboxEntry]) -> dict[str, MailboxEntry]:
    return {entry.name: entry for entry in tree}


def _has_inferiors(tree_names: Iterable[str], name: str) -> bool:
    return any(names.is_inferior(other, name) for other in tree_names)


def _missing_superiors(existing: Iterable[str], name: str) -> list[TreeOp]:
    """AddMailbox for each superior of ``name`` not in ``existing``,
    outermost first (RFC 3501 §6.3.3: created as real mailboxes)."""
    present = set(existing)
    return [AddMailbox(s) for s in names.ancestors(name) if s not in present]


def _prune(remaining: set[str], selectable: dict[str, bool], name: str) -> list[TreeOp]:
    """RemoveMailbox for superior placeholders of ``name`` left without
    inferiors once ``remaining`` is the tree, innermost first; stops at the
    first superior that is a mailbox or still has inferiors."""
    ops: list[TreeOp] = []
    for superior in reversed(names.ancestors(name)):
        if superior not in remaining or selectable.get(superior, True):
            break
        if _has_inferiors(remaining, superior):
            break
        remaining.discard(superior)
        ops.append(RemoveMailbox(superior))
    return ops


def create_ops(
    tree: Sequence[MailboxEntry], name: str, special_use: str | None = None
) -> list[TreeOp]:
    """CREATE (RFC 3501 §6.3.3) of the canonical ``name``."""
    rows = _by_name(tree)
    existing = rows.get(name)
    if name == names.INBOX or (existing is not None and existing.selectable):
        raise AlreadyExists(f"Mailbox already exists: {name}")
    ops = _missing_superiors(rows, name)
    if existing is not None:
        ops.append(RemoveMailbox(name))  # the placeholder becomes a mailbox
    ops.append(AddMailbox(name, True, special_use))
    return ops


def delete_ops(tree: Sequence[MailboxEntry], name: str) -> list[TreeOp]:
    """DELETE (RFC 3501 §6.3.4) of the canonical ``name``."""
    if name == names.INBOX:
        raise Cannot("INBOX cannot be deleted")
    rows = _by_name(tree)
    row = rows.get(name)
    if row is None:
        raise NoSuchMailbox(f"Mailbox does not exist: {name}")
    inferiors = _has_inferiors(rows, name)
    if inferiors and not row.selectable:
        raise HasChildren(f"{name} has inferior mailboxes and is already \\Noselect")
    ops: list[TreeOp] = [RemoveMailbox(name)]
    if inferiors:
        ops.append(AddMailbox(name, selectable=False))
        return ops
    remaining = set(rows) - {name}
    selectable = {n: e.selectable for n, e in rows.items()}
    return ops + _prune(remaining, selectable, name)


def rename_ops(tree: Sequence[MailboxEntry], old: str, new: str) -> list[TreeOp]:
    """RENAME (RFC 3501 §6.3.5) of canonical ``old`` to canonical ``new``."""
    rows = _by_name(tree)
    if new == names.INBOX or new in rows:
        raise AlreadyExists(f"Mailbox already exists: {new}")
    if old == names.INBOX:
        if old not in rows:
            raise NoSuchMailbox("INBOX does not exist")
        return [*_missing_superiors(rows, new), AddMailbox(new),
                TransferMessages(names.INBOX, new)]
    if names.is_inferior(new, old):
        raise Cannot("Cannot rename a mailbox into its own inferiors")
    if old not in rows:
        raise NoSuchMailbox(f"Mailbox does not exist: {old}")
    moved = sorted(n for n in rows if n == old or names.is_inferior(n, old))
    ops = _missing_superiors(rows, new)
    remaining = set(rows) | {op.name for op in ops if isinstance(op, AddMailbox)}
    for name in moved:
        target = names.renamed(name, old, new)
        ops.append(RenameMailbox(name, target))
        remaining.discard(name)
        remaining.add(target)
    selectable = {n: e.selectable for n, e in rows.items()}
    return ops + _prune(remaining, selectable, old)


def plan_create(name: str, special_use: str | None = None) -> TreePlan:
    return lambda tree: create_ops(tree, name, special_use)


def plan_delete(name: str) -> TreePlan:
    return lambda tree: delete_ops(tree, name)


def plan_rename(old: str, new: str) -> TreePlan:
    return lambda tree: rename_ops(tree, old, new)


def tree_infos(tree: Iterable[MailboxEntry]) -> dict[str, MailboxInfo]:
    """Every name of the tree with its LIST data (RFC 3501 §7.2.2, RFC 3348
    children); ``subscribed`` is filled by the caller."""
    rows = list(tree)
    parents = {names.parent(entry.name) for entry in rows}
    return {
        entry.name: MailboxInfo(entry.name, True, entry.selectable, entry.name in parents,
                                False, entry.special_use)
        for entry in rows
    }


def list_mailboxes(
    tree: Iterable[MailboxEntry],
    subscriptions: Iterable[str],
    reference: str,
    pattern: str,
    subscribed_only: bool = False,
    budget: StepBudget | None = None,
) -> list[MailboxInfo]:
    """LIST / LSUB (RFC 3501 §6.3.8, §6.3.9), INBOX first then by name.

    ``reference`` and ``pattern`` are concatenated; ``*`` matches anything,
    ``%`` anything but ``/``. LIST returns existing names, placeholders
    included. LSUB returns subscribed names whether or not they exist, plus
    - when ``%`` is in the pattern - unsubscribed superiors of subscribed
    names that match, with ``subscribed=False``. An empty pattern: ``[]``
    (the handler answers with the delimiter and ``names.list_root``).
    Pattern work past the budget raises what ``names.compile_pattern``
    raises (NO [LIMIT])."""
    if pattern == "":
        return []
    matches = names.compile_pattern(names.combine_reference(reference, pattern), budget)
    infos = tree_infos(tree)
    subscribed = set(subscriptions)
    found: dict[str, MailboxInfo] = {}
    if not subscribed_only:
        for name, info in infos.items():
            if matches(name):
                found[name] = replace(info, subscribed=name in subscribed)
    else:
        for name in subscribed:
            if matches(name):
                info = infos.get(name) or MailboxInfo(name, False, False, False, False)
                found[name] = replace(info, subscribed=True)
        if "%" in pattern:
            for name in names.implied_parents(subscribed, matches) - subscribed:
                info = infos.get(name) or MailboxInfo(name, False, False, True, False)
                found[name] = replace(info, subscribed=False)
    return sorted(found.values(), key=lambda i: (i.name != names.INBOX, i.name))

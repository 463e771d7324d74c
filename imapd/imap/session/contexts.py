"""Live search contexts of one selection (RFC 5267 §4, CONTEXT=SEARCH).

``SEARCH RETURN (UPDATE ...)`` leaves a context behind: the search's
criteria and the UIDs that matched. The view feeds every change it catches
up with to ``SearchContexts.note`` (which only records the UIDs involved);
``imapd.imap.commands.searchcontext`` re-evaluates just those messages when
the dispatcher drains, and tells the client what joined or left the result
(``* ESEARCH (TAG "t") ADDTO/REMOVEFROM``). A context lives until
``CANCELUPDATE`` or the end of the selection (it belongs to the view).

Cost is bounded: at most ``MAX_CONTEXTS`` per selection (more: the search
still answers, with ``OK [NOUPDATE "tag"]`` and no context, §4.2), and each
drain evaluates only the changed messages, once per context.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MessagesAdded, MessagesExpunged,
)
from imapd.imap.wire.commands import Search
from imapd.imap.wire.sort_command import SortCriterion
from imapd.imap.wire.responses import ResponseCode
from imapd.imap.wire.values import IString

if TYPE_CHECKING:
    from imapd.imap.session.view import SelectedView
    from imapd.message.sortkeys import KeyValue

# Live contexts per selection; each costs a re-evaluation of every changed
# message at each drain and a set of its matching UIDs.
MAX_CONTEXTS = 16
NOUPDATE = "NOUPDATE"


@dataclass(frozen=True, eq=False, slots=True)
class SortPlace:
    """A message's place in a sorted result (RFC 5256 §3): its keys
    criterion by criterion, REVERSE ones descending, then mailbox order
    (UID order: the same order as sequence numbers)."""

    keys: tuple[KeyValue, ...]
    uid: int
    program: tuple[SortCriterion, ...]

    def __lt__(self, other: SortPlace) -> bool:
        for mine, theirs, criterion in zip(self.keys, other.keys, self.program):
            if mine != theirs:
                return (mine > theirs) if criterion.reverse else (mine < theirs)  # type: ignore[operator]
        return self.uid < other.uid


@dataclass(eq=False)
class SortedResult:
    """A sorted context's result in sort order (RFC 5267 §4.3). A message's
    sort keys never change (they come from its envelope, size and arrival),
    so each place is computed once and kept; joins and leaves are bisected
    in, O(log n) comparisons each."""

    program: tuple[SortCriterion, ...]
    places: list[SortPlace] = field(default_factory=list)
    by_uid: dict[int, SortPlace] = field(default_factory=dict)

    @classmethod
    def of(
        cls, program: tuple[SortCriterion, ...], ordered: Sequence[tuple[int, tuple[KeyValue, ...]]],
    ) -> SortedResult:
        """The result of a SORT: (UID, keys) already in sort order (no
        comparisons, so a large first result costs one pass)."""
        result = cls(program)
        for uid, keys in ordered:
            place = SortPlace(keys, uid, program)
            result.places.append(place)
            result.by_uid[uid] = place
        return result

    def insert(self, uid: int, keys: tuple[KeyValue, ...]) -> int:
        """Add ``uid``; its 1-based position in the result afterwards."""
        place = SortPlace(keys, uid, self.program)
        index = bisect.bisect_left(self.places, place)
        self.places.insert(index, place)
        self.by_uid[uid] = place
        return index + 1

    def remove(self, uid: int) -> int:
        """Take ``uid`` out; the 1-based position it had (0: not there)."""
        place = self.by_uid.pop(uid, None)
        if place is None:
            return 0
        index = bisect.bisect_left(self.places, place)
        del self.places[index]
        return index + 1


@dataclass(eq=False)
class SearchContext:
    """One live search: its command (criteria, UID or not), the ``$`` it
    saw (RFC 5182), and the UIDs in its result as the client knows it.
    A SORT context (CONTEXT=SORT) also keeps the result in sort order."""

    command: Search
    saved: frozenset[int]
    result: set[int]
    sorted: SortedResult | None = None

    @property
    def tag(self) -> str:
        return self.command.tag

    @property
    def uid(self) -> bool:
        return self.command.uid


@dataclass(eq=False)
class SearchContexts:
    """The selection's contexts and the UIDs changed since the last drain
    (recorded only while a context lives)."""

    live: dict[str, SearchContext] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)
    added: list[int] = field(default_factory=list)
    expunged: set[int] = field(default_factory=set)

    def note(self, event: ChangeEvent) -> None:
        """Record the UIDs a caught-up change touched (cheap; no reads)."""
        if not self.live:
            return
        if isinstance(event, FlagsChanged):
            self.changed.update(state.uid for state in event.states)
        elif isinstance(event, MessagesAdded):
            self.added.extend(event.uids)
        elif isinstance(event, MessagesExpunged):
            self.expunged.update(event.uids)
        elif isinstance(event, MailboxDeleted):
            for context in self.live.values():
                self.expunged.update(context.result)

    def cancel(self, tags: Sequence[str]) -> list[str]:
        """End these contexts (CANCELUPDATE, RFC 5267 §4.3) and return [];
        if a tag names none, end nothing and return the unknown tags."""
        unknown = [tag for tag in tags if tag not in self.live]
        if unknown:
            return unknown
        for tag in tags:
            del self.live[tag]
        if not self.live:
            self.forget()
        return []

    def forget(self) -> None:
        """Drop the recorded changes (no context left to tell)."""
        self.changed.clear()
        self.added.clear()
        self.expunged.clear()


def start(
    view: SelectedView, command: Search, saved: frozenset[int], uids: Sequence[int],
    ordered: SortedResult | None = None,
) -> ResponseCode | None:
    """Keep ``command``'s result live (RFC 5267 §4.2); the tagged OK's code:
    None, or ``NOUPDATE "tag"`` when the selection has its fill of contexts
    (the result stands, no updates follow). A tag already live is
    replaced. ``ordered``: the result in sort order, for a SORT."""
    contexts = view.contexts
    if command.tag not in contexts.live and len(contexts.live) >= MAX_CONTEXTS:
        return ResponseCode(NOUPDATE, (IString(command.tag.encode("utf-8")),))
    contexts.live[command.tag] = SearchContext(command, saved, set(uids), ordered)
    return None

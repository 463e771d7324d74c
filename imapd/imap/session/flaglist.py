"""The FLAGS list one client was told, and when it must hear a new one.

RFC 3501 §7.2.6: the FLAGS response "identifies the flags ... that are
applicable for this mailbox" and "MUST be recorded by the client"; §7.1
(PERMANENTFLAGS) lists the flags the client can change permanently. SELECT
sends both. Keywords are created on the fly (``\\*`` in PERMANENTFLAGS), so
a keyword can appear on a message after the client got its list: by this
session's STORE or APPEND, another session's, or another process's. A
client that meets a keyword in a FETCH that is not in its FLAGS list is
out of step (strict clients drop it or fail), so the server announces the
new list first.

``FlagList`` keeps what the client was told and answers two questions:

* ``admit_items(items)``: do the items of this FETCH response carry a
  ``FLAGS`` value naming a keyword the client was not told? Asked for
  every FETCH response the session sends (``CommandContext.send``), so it
  must be cheap: a mailbox has few distinct flag sets and
  ``imapd.imap.session.view.flags_plist`` shares one ``PList`` per set, so the
  answer is cached by that object's identity (the cache keeps the object
  alive, so the identity cannot be reused): about 0.15 µs per response.
* ``note(flags)`` / ``take_noted()``: keywords seen in flag changes the
  session was delivered (its own ``STORE .SILENT``, which sends no FETCH,
  or others' changes) or on new messages (anyone's APPEND, COPY, MOVE),
  announced at the next drain, with the EXISTS, even before a FETCH shows
  them (as Dovecot does when a mailbox's keyword list grows).

Keywords never leave the list within a selection, even when no message
carries them any more: the store keeps every keyword a mailbox has seen
(its next SELECT lists them too), a shrinking list would need a new FLAGS
response for no benefit, and Dovecot keeps them as well.
"""

from __future__ import annotations

from typing import Iterable

from imapd.core.model import SYSTEM_FLAGS
from imapd.imap.wire.values import Atom, PList

# Bound on cached FLAGS values per selection (the shared ``flags_plist``
# cache holds at most 4096 too); past it the cache restarts, which only
# costs re-checking.
_CHECKED_MAX = 4096


class FlagList:
    """See the module docstring. ``keywords`` are those of the SELECT
    response, in its order; new ones are appended as they are admitted."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self._keywords: list[str] = []
        self._known: set[str] = set()
        self._folded: set[str] = set()  # lower-cased, for client spellings
        self._noted: list[str] = []
        self._checked: dict[int, PList] = {}
        self._checked_tuples: set[tuple[str, ...]] = set()
        self._add(keywords)

    @property
    def flags(self) -> tuple[str, ...]:
        """The list as last told: system flags, then keywords (§7.2.6)."""
        return SYSTEM_FLAGS + tuple(self._keywords)

    def _add(self, keywords: Iterable[str]) -> bool:
        added = False
        for keyword in keywords:
            if keyword not in self._known and not keyword.startswith("\\"):
                self._known.add(keyword)
                self._folded.add(keyword.lower())
                self._keywords.append(keyword)
                added = True
        return added

    def admit_items(self, items: Iterable[tuple[str, object]]) -> bool:
        """True when the ``FLAGS`` item among a FETCH response's ``items``
        names keywords the client was not told; they are now part of the
        list, and the caller must send the list before the FETCH."""
        for name, value in items:
            if name == "FLAGS":
                # The cache hit is checked inline: it is the common case,
                # once per FETCH response.
                return self._checked.get(id(value)) is not value and self._admit(value)
        return False

    def _admit(self, value: object) -> bool:
        """``admit_items`` for one FETCH ``FLAGS`` value not in the cache."""
        if not isinstance(value, PList):
            return False
        added = self._add(
            item.value for item in value.items
            if isinstance(item, Atom) and item.value not in self._known
        )
        if len(self._checked) >= _CHECKED_MAX:
            self._checked.clear()
        self._checked[id(value)] = value
        return added

    def note(self, flags: tuple[str, ...]) -> None:
        """Remember keywords of ``flags`` the client was not told, to be
        announced at the next drain (``take_noted``). Called once per
        delivered flag state, so each distinct tuple is examined once.
        Compared case-insensitively, as the mailbox does (it keeps the
        first spelling it saw: a keyword known as ``$Work`` is not new as
        ``$WORK``)."""
        if flags in self._checked_tuples:
            return
        for flag in flags:
            if flag.lower() not in self._folded and not flag.startswith("\\"):
                self._noted.append(flag)
        if len(self._checked_tuples) >= _CHECKED_MAX:
            self._checked_tuples.clear()
        self._checked_tuples.add(flags)

    def take_noted(self) -> bool:
        """True when noted keywords are new to the client; they are now part
        of the list, and the caller must send it."""
        if not self._noted:
            return False
        noted, self._noted = self._noted, []
        return self._add(flag for flag in noted if flag.lower() not in self._folded)

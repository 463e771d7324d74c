"""SEARCH result options: ESEARCH (RFC 4731) and SEARCHRES (RFC 5182).

``SEARCH RETURN (opts) criteria`` answers with one ``* ESEARCH`` instead of
``* SEARCH``::

    * ESEARCH (TAG "a1") UID MIN 4 MAX 3800 COUNT 3 ALL 4,21,3800 MODSEQ 917

* ``RETURN ()`` means ``RETURN (ALL)`` (RFC 4731 §3.1).
* MIN, MAX and ALL are left out when nothing matched; COUNT is always
  there (``COUNT 0``). ALL is a sequence set (ranges compressed).
* ``UID`` follows the tag for UID SEARCH; the numbers are then UIDs.
* ``MODSEQ n`` is added when the criteria used MODSEQ and something matched
  (RFC 7162 §3.1.5): the highest MODSEQ of the messages reported, i.e. of
  the MIN/MAX messages when only those were asked for, else of all matches.
* SAVE (RFC 5182 §2.1, §2.4) keeps the result as ``$`` for later commands:
  only the MIN and/or MAX messages when they were asked for without ALL or
  COUNT, else every match. SAVE alone sends no ESEARCH at all.
* ``PARTIAL m:n`` (RFC 5267 §4.4) returns the m-th to n-th results (1-based,
  in result order): ``PARTIAL (m:n set)``, ``PARTIAL (m:n NIL)`` when none
  of them exists. UPDATE and CONTEXT (§4.2) add no result data themselves:
  ``RETURN (UPDATE)`` answers ``* ESEARCH (TAG "t")`` and the live context
  (``searchcontext``) sends ADDTO/REMOVEFROM later.
"""

from __future__ import annotations

from typing import Sequence

from imapd.imap.wire.responses import Generic
from imapd.imap.wire.values import Atom, IString, PList, Value

ALL = "ALL"
MIN = "MIN"
MAX = "MAX"
COUNT = "COUNT"
SAVE = "SAVE"
PARTIAL = "PARTIAL"
UPDATE = "UPDATE"


def effective_options(options: tuple[str, ...]) -> frozenset[str]:
    """The options in force: ``RETURN ()`` is ``RETURN (ALL)``."""
    return frozenset(options) if options else frozenset({ALL})


def _only_min_max(options: frozenset[str]) -> bool:
    return bool(options & {MIN, MAX}) and not options & {ALL, COUNT}


def reported(options: frozenset[str], numbers: Sequence[int]) -> list[int]:
    """Indexes into ``numbers`` (ascending) of the messages MIN/MAX alone
    report, or of all of them otherwise (for MODSEQ and SAVE)."""
    if not numbers or not _only_min_max(options):
        return list(range(len(numbers)))
    chosen = []
    if MIN in options:
        chosen.append(0)
    if MAX in options and (len(numbers) - 1) not in chosen:
        chosen.append(len(numbers) - 1)
    return chosen


def saved_uids(options: frozenset[str], uids: Sequence[int]) -> tuple[int, ...]:
    """What SAVE keeps as ``$`` (RFC 5182 §2.4), ascending UIDs."""
    return tuple(uids[i] for i in reported(options, uids))


def partial_value(partial: tuple[int, int], numbers: Sequence[int]) -> PList:
    """``(m:n set)`` or ``(m:n NIL)`` (RFC 5267 §4.4): the results at
    positions m to n of ``numbers`` (in result order, 1-based). The set is
    written in that order, runs compressed (a sorted result need not be
    ascending)."""
    low, high = partial
    chosen = numbers[low - 1:high]
    text = ordered_set_text(chosen) if chosen else None
    return PList((Atom(f"{low}:{high}"), None if text is None else Atom(text)))


def ordered_set_text(numbers: Sequence[int]) -> str:
    """Numbers in the given order, ascending runs compressed: ``3:4,2,1``."""
    parts: list[str] = []
    start = previous = numbers[0]
    for number in numbers[1:]:
        if number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}:{previous}")
        start = previous = number
    parts.append(str(start) if start == previous else f"{start}:{previous}")
    return ",".join(parts)


def esearch_response(
    tag: str,
    uid: bool,
    options: frozenset[str],
    numbers: Sequence[int],
    modseqs: Sequence[int] | None,
    partial: tuple[int, int] | None = None,
) -> Generic | None:
    """The ``* ESEARCH`` response, or None when SAVE is the only option.
    ``numbers`` in result order (UIDs for UID SEARCH): ascending for SEARCH,
    sort order for ESORT (RFC 5267 §3.2: MIN and MAX are then the first and
    last sorted, ALL keeps the order); ``modseqs`` the matching messages'
    MODSEQs in the same order, when the criteria used MODSEQ."""
    if options == {SAVE}:
        return None
    values: list[Value] = [PList((Atom("TAG"), IString(tag.encode("utf-8"))))]
    if uid:
        values.append(Atom("UID"))
    if numbers and MIN in options:
        values += [Atom(MIN), numbers[0]]
    if numbers and MAX in options:
        values += [Atom(MAX), numbers[-1]]
    if COUNT in options:
        values += [Atom(COUNT), len(numbers)]
    if numbers and ALL in options:
        values += [Atom(ALL), Atom(ordered_set_text(numbers))]
    if partial is not None:
        values += [Atom(PARTIAL), partial_value(partial, numbers)]
    if numbers and modseqs is not None:
        values += [Atom("MODSEQ"), max(modseqs[i] for i in reported(options, numbers))]
    return Generic("ESEARCH", tuple(values))

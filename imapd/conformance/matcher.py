"""Matching expected argument lists against received ones (conformance README §8.1–§8.3).

``match_args`` returns ``MATCHED`` on success, otherwise how many leading
arguments did match: the runner keeps the received response with the highest
count per expectation and shows it as the "best match" in failure messages.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .directives import split_directives
from .tokens import Arg, ArgKind
from .variables import Variables, match_text

MATCHED = sys.maxsize


def is_prefix_response(received: Sequence[Arg]) -> bool:
    """Untagged OK/NO/BAD/BYE carry human-readable text: match them in prefix mode (§8.2)."""
    return bool(received) and received[0].kind is ArgKind.ATOM and received[0].text.lower() in (
        b"ok",
        b"no",
        b"bad",
        b"bye",
    )


def match_args(
    expected: Sequence[Arg],
    received: Sequence[Arg],
    variables: Variables,
    *,
    max_count: int | None = None,
    prefix: bool = False,
) -> int:
    """Compare expected arguments with received ones in order (§8.1).

    ``max_count`` limits the comparison to a chain of N arguments (unordered
    lists); ``prefix`` ignores extra received arguments and compares the last
    expected one as a case-insensitive prefix (§8.2).
    """
    matched = 0
    limit = len(expected) if max_count is None else min(len(expected), max_count)
    for index in range(limit):
        want = expected[index]
        got = received[index] if index < len(received) else None
        if want.kind is ArgKind.NIL:
            if got is None or got.kind is not ArgKind.NIL:
                return matched
        elif want.is_text:
            if want.text == b"$" and got is not None and got.kind is ArgKind.LIST:
                pass  # "$" skips over a whole list
            elif got is None or not got.is_text:
                return matched
            else:
                last = prefix and index == len(expected) - 1
                if not match_text(want.text, got.text, variables, prefix=last):
                    return matched
        else:  # expected list
            if got is None or got.kind is not ArgKind.LIST:
                return matched
            sub = match_list(want.items, got.items, variables)
            if sub != MATCHED:
                return matched + sub
        matched += 1
    chain_done = max_count is not None and limit == max_count
    if prefix or limit >= len(received) or chain_done:
        return MATCHED
    return matched


def match_list(expected: tuple[Arg, ...], received: tuple[Arg, ...], variables: Variables) -> int:
    """Compare list contents, honouring leading ``$!`` directives (§8.3)."""
    directives, elements = split_directives(expected)
    if not directives.unordered:
        return match_args(elements, received, variables)
    chain = directives.chain
    if len(received) % chain != 0:
        return 0
    matched_positions: set[int] = set()
    found = 0
    for start in range(0, len(elements), chain):
        want_chain = elements[start : start + chain]
        position = _find_chain(want_chain, received, chain, variables)
        if position is None:
            return found
        matched_positions.add(position)
        found += 1
    noextra = directives.noextra if directives.noextra is not None else True
    for position in range(0, len(received), chain):
        if position in matched_positions:
            continue
        head = received[position]
        if not head.is_text:
            continue  # only atoms/strings are ever counted as extras
        text = head.text.lower()
        if noextra and text not in {ignore.lower() for ignore in directives.ignores}:
            return found
        if not noextra and text in {ban.lower() for ban in directives.bans}:
            return found
    return MATCHED


def _find_chain(
    want_chain: tuple[Arg, ...], received: tuple[Arg, ...], chain: int, variables: Variables
) -> int | None:
    """First received chain matching ``want_chain``; received chains are not consumed.

    Bindings made by a failed attempt on one received chain are undone before
    trying the next (imaptest only undoes them per whole response; the finer
    undo never changes a result of the shipped scripts and avoids stale bindings).
    """
    for position in range(0, len(received), chain):
        saved = variables.snapshot()
        result = match_args(want_chain, received[position:], variables, max_count=chain)
        if result == MATCHED:
            return position
        variables.restore(saved)
    return None

"""LIST / LSUB pattern matching without backtracking (RFC 3501 §6.3.8).

``*`` matches zero or more characters, ``%`` zero or more characters other
than the hierarchy delimiter; every other character matches itself. RFC 5258
(LIST-EXTENDED) keeps these semantics for each of several patterns.

A regular expression with one ``.*`` per wildcard backtracks: a pattern of a
few thousand wildcards against a name that does not match takes time
exponential in the number of wildcards (35 s of CPU, the whole server stalled,
for a line of ``*%*%...``). Here a pattern is a small automaton instead:

* runs of wildcards are collapsed first (``%*``, ``*%`` and ``**`` are ``*``,
  ``%%`` is ``%``), so any pattern has at most one wildcard between two
  literal characters (5,000 ``*%`` are one ``*``);
* the automaton's states are the positions in that collapsed pattern, kept
  as the bits of one integer, and each character of the name moves every
  state at once (a bit-parallel simulation of the NFA): the cost is one
  pass over the name, with integer operations on ``len(pattern)`` bits, so
  O(len(name) × len(pattern) / word size) with no backtracking at all;
* a pattern needs at least as many characters as it has literal characters,
  and its literal prefix and suffix are fixed, so most names are rejected
  before the pass, with ``len`` / ``startswith`` / ``endswith``;
* the literal runs between wildcards must occur in the name in order; the
  leftmost search for each (``str.find``, C speed) decides a pattern whose
  wildcards are all ``*`` exactly (the classic glob argument: taking the
  earliest occurrence of each run never loses a match), and for a pattern
  with ``%`` it is a necessary condition checked before the automaton, so
  the common patterns (``*``, ``%``, ``Folder/*``, ``*Sent*``) never run
  the automaton at all;
* the patterns of one command share a ``StepBudget`` of name characters
  read by the automaton; past it the command gets NO [LIMIT].
"""

from __future__ import annotations

import re
from typing import Final

from imapd.core.errors import ImapError

ANY: Final = "*"
LEVEL: Final = "%"
# Runs of two or more wildcards; a character class repeated has nothing to
# backtrack over, so this scan is linear.
_WILDCARD_RUN: Final = re.compile(r"[*%]{2,}")
_FIRST_WILDCARD: Final = re.compile(r"[*%]")


# Automaton steps (name characters read) one command may spend on its
# patterns: about 0.25 us each, so ~75 ms of CPU on the reactor at most (a
# normal client's NOOP p99 stays under 100 ms behind it). Only patterns
# with ``%`` and two or more wildcards that pass the ordered-runs check
# spend any: ``*``-only patterns and single-wildcard ones cost nothing here.
MAX_STEPS: Final = 300_000


class StepBudget:
    """Name characters the automata of one command may still read; shared by
    the patterns of a LIST-EXTENDED (RFC 5258) so their number does not
    multiply the bound."""

    __slots__ = ("remaining",)

    def __init__(self, steps: int = MAX_STEPS) -> None:
        self.remaining = steps

    def spend(self, steps: int) -> None:
        self.remaining -= steps
        if self.remaining < 0:
            raise ImapError.no("Mailbox patterns too costly to match (work limit)", "LIMIT")

    def refund(self, steps: int) -> None:
        """Give back steps spent ahead for characters never read."""
        self.remaining += steps


def _one_wildcard(run: re.Match[str]) -> str:
    return ANY if ANY in run.group() else LEVEL


def collapse(pattern: str) -> str:
    """The pattern with every run of wildcards replaced by the one wildcard
    it is equivalent to: ``*`` if the run has a ``*`` (``*`` absorbs ``%``
    on either side), else ``%``. Linear, at C speed, whatever the size."""
    return _WILDCARD_RUN.sub(_one_wildcard, pattern)


class ListPattern:
    """A compiled LIST pattern; ``matches(name)`` is the predicate.

    Construction only collapses the pattern and measures it (linear, C
    speed); the automaton is built on the first name that passes the cheap
    checks, and a name that does has at least as many characters as the
    pattern has literals, so the automaton is never larger than twice the
    longest name examined. Bit ``i`` of the state set means "the first ``i``
    tokens have matched the name so far"; bit ``len(tokens)`` set at the
    end means a match."""

    __slots__ = ("_accept", "_budget", "_delimiter", "_has_level", "_level", "_literal_count",
                 "_literals", "_middle", "_pattern", "_prefix", "_star", "_suffix", "_wild")

    def __init__(self, pattern: str, delimiter: str, budget: StepBudget | None = None) -> None:
        self._budget = budget if budget is not None else StepBudget()
        self._pattern = collapse(pattern)
        self._delimiter = delimiter
        self._literal_count = (len(self._pattern) - self._pattern.count(ANY)
                               - self._pattern.count(LEVEL))
        first = _FIRST_WILDCARD.search(self._pattern)
        self._prefix = self._pattern if first is None else self._pattern[: first.start()]
        last = max(self._pattern.rfind(ANY), self._pattern.rfind(LEVEL))
        self._suffix = self._pattern[last + 1:] if first is not None else ""
        # The literal runs strictly between the first and the last wildcard.
        inner = self._pattern[len(self._prefix): len(self._pattern) - len(self._suffix)]
        self._middle = tuple(run for run in re.split(r"[*%]", inner) if run)
        self._has_level = LEVEL in self._pattern
        self._literals: dict[str, int] | None = None
        self._star = self._level = self._wild = self._accept = 0

    def _build(self) -> dict[str, int]:
        literals: dict[str, int] = {}
        for index, token in enumerate(self._pattern):
            bit = 1 << index
            if token == ANY:
                self._star |= bit
            elif token == LEVEL:
                self._level |= bit
            else:
                literals[token] = literals.get(token, 0) | bit
        self._wild = self._star | self._level
        self._accept = 1 << len(self._pattern)
        self._literals = literals
        return literals

    def matches(self, name: str) -> bool:
        """Does ``name`` match the whole pattern (RFC 3501 §6.3.8)?"""
        if self._literal_count == len(self._pattern):
            return name == self._pattern  # no wildcard
        if (len(name) < self._literal_count or not name.startswith(self._prefix)
                or not name.endswith(self._suffix) or not self._runs_in_order(name)):
            return False
        if not self._has_level:
            return True  # only ``*``: the ordered runs decide (module docstring)
        self._budget.spend(len(name))  # NO [LIMIT] rather than unbounded work
        literals = self._literals if self._literals is not None else self._build()
        wild, star, delimiter = self._wild, self._star, self._delimiter
        states = 1 | ((1 & wild) << 1)  # a leading wildcard may match nothing
        for index, char in enumerate(name):
            # Literal tokens that match this character advance; wildcards
            # consume it and stay (``%`` not on the delimiter); a wildcard
            # reached may then also match nothing, so the next token is live
            # (one shift is enough: no two wildcards are adjacent).
            states = (((states & literals.get(char, 0)) << 1)
                      | (states & (star if char == delimiter else wild)))
            states |= (states & wild) << 1
            if not states:
                self._budget.refund(len(name) - index - 1)  # only what was read counts
                return False
        return bool(states & self._accept)

    def _runs_in_order(self, name: str) -> bool:
        """The middle literal runs occur in ``name``, in order and without
        overlapping, between the prefix and the suffix (leftmost each)."""
        position, end = len(self._prefix), len(name) - len(self._suffix)
        for run in self._middle:
            found = name.find(run, position, end)
            if found < 0:
                return False
            position = found + len(run)
        return True

    def __call__(self, name: str) -> bool:
        return self.matches(name)

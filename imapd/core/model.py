"""Value types shared by every layer: sequence sets, flags, secrets.

Nothing here does I/O or knows the wire format; the wire layer parses into
these types and the store and handlers consume them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

# System flags, RFC 3501 §2.3.2. Flags are compared case-insensitively on the
# wire but stored in this canonical spelling.
SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
RECENT = "\\Recent"
SYSTEM_FLAGS: tuple[str, ...] = (ANSWERED, FLAGGED, DELETED, SEEN, DRAFT)
_CANONICAL_SYSTEM = {f.lower(): f for f in SYSTEM_FLAGS + (RECENT,)}


def canonical_flag(flag: str) -> str:
    """Return the canonical spelling of a system flag, or the keyword as given.

    RFC 3501 §2.3.2: system flags begin with a backslash and are
    case-insensitive; keywords are atoms (compared case-insensitively by most
    servers, but stored as first written).
    """
    return _CANONICAL_SYSTEM.get(flag.lower(), flag)


@dataclass(frozen=True, slots=True)
class SeqRange:
    """One element of a sequence set: ``n`` or ``a:b``.

    ``None`` stands for ``*`` (the largest number in use). ``start`` and
    ``end`` may be given in either order (RFC 3501 §9, seq-range).
    """

    start: int | None
    end: int | None

    def bounds(self, largest: int) -> tuple[int, int]:
        """The inclusive (low, high) numbers this range covers, with ``*`` = largest."""
        a = largest if self.start is None else self.start
        b = largest if self.end is None else self.end
        return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A sequence set (RFC 3501 §9 ``sequence-set``) of message numbers or UIDs.

    ``saved`` is True for the SEARCHRES ``$`` marker (RFC 5182), in which
    case ``ranges`` is empty.
    """

    ranges: tuple[SeqRange, ...]
    saved: bool = False

    @classmethod
    def single(cls, n: int) -> SequenceSet:
        return cls((SeqRange(n, n),))

    def iter_numbers(self, largest: int) -> Iterator[int]:
        """Yield the numbers covered, ascending and without duplicates,
        clipped to 1..largest. ``*`` resolves to ``largest``."""
        if largest <= 0:
            return
        spans = sorted(r.bounds(largest) for r in self.ranges)
        last = 0
        for low, high in spans:
            low = max(low, last + 1, 1)
            high = min(high, largest)
            for n in range(low, high + 1):
                yield n
            last = max(last, high)

    def contains(self, n: int, largest: int) -> bool:
        for r in self.ranges:
            low, high = r.bounds(largest)
            if low <= n <= high:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or other credential. Its repr never shows the value, so a
    stray log line or traceback cannot leak it."""

    value: bytes

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

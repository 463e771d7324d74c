"""Message flags as the store keeps them: a bit mask of system flags plus an
ordered tuple of keywords (RFC 3501 §2.3.2).

``\\Recent`` is never stored: it is a property of a session's view.
Keywords compare case-insensitively; a mailbox remembers the spelling a
keyword was first stored with and uses it from then on.
"""

from __future__ import annotations

import enum
from typing import Iterable

from imapd.core.errors import ImapError
from imapd.core.model import ANSWERED, DELETED, DRAFT, FLAGGED, RECENT, SEEN, canonical_flag

SYSTEM_BITS: dict[str, int] = {ANSWERED: 1, FLAGGED: 2, DELETED: 4, SEEN: 8, DRAFT: 16}
SEEN_BIT = SYSTEM_BITS[SEEN]
DELETED_BIT = SYSTEM_BITS[DELETED]
_BIT_ORDER = tuple(SYSTEM_BITS.items())

MAX_KEYWORD_CHARS = 128
# atom-specials of RFC 3501 §9 plus the backslash reserved for system flags.
_FORBIDDEN = frozenset('(){ %*"\\]')


class FlagOp(enum.Enum):
    """How STORE combines the given flags with the message's (RFC 3501 §6.4.6)."""

    REPLACE = "FLAGS"
    ADD = "+FLAGS"
    REMOVE = "-FLAGS"


def _check_keyword(keyword: str) -> None:
    if not keyword or len(keyword) > MAX_KEYWORD_CHARS:
        raise ImapError.bad(f"Invalid keyword length: {keyword[:20]!r}")
    for char in keyword:
        if char in _FORBIDDEN or ord(char) <= 0x20 or ord(char) >= 0x7F:
            raise ImapError.bad(f"Invalid character in keyword {keyword!r}")


def split_flags(flags: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Split client flags into (system bits, keywords in first-seen order,
    duplicates removed case-insensitively).

    Raises ``ImapError`` BAD for ``\\Recent`` (RFC 3501 §2.3.2: the client
    cannot set it), unknown ``\\``-flags and malformed keywords.
    """
    bits = 0
    keywords: list[str] = []
    seen_lower: set[str] = set()
    for raw in flags:
        flag = canonical_flag(raw)
        if flag == RECENT:
            raise ImapError.bad("\\Recent cannot be stored")
        if flag.startswith("\\"):
            bit = SYSTEM_BITS.get(flag)
            if bit is None:
                raise ImapError.bad(f"Unknown system flag {raw}")
            bits |= bit
            continue
        _check_keyword(flag)
        if flag.lower() not in seen_lower:
            seen_lower.add(flag.lower())
            keywords.append(flag)
    return bits, tuple(keywords)


def join_flags(bits: int, keywords: tuple[str, ...]) -> tuple[str, ...]:
    """The flag tuple callers see: system flags in a fixed order, then keywords."""
    system = tuple(name for name, bit in _BIT_ORDER if bits & bit)
    return system + keywords if keywords else system


def encode_keywords(keywords: tuple[str, ...]) -> str:
    return " ".join(keywords)


def decode_keywords(text: str) -> tuple[str, ...]:
    return tuple(text.split(" ")) if text else ()


def apply_op(
    op: FlagOp,
    current: tuple[int, tuple[str, ...]],
    given: tuple[int, tuple[str, ...]],
) -> tuple[int, tuple[str, ...]]:
    """The new (bits, keywords) after STORE ``op`` with ``given`` flags.
    Keywords in ``given`` must already be in the mailbox's spelling."""
    bits, keywords = current
    given_bits, given_keywords = given
    if op is FlagOp.REPLACE:
        return given_bits, given_keywords
    if op is FlagOp.ADD:
        extra = tuple(k for k in given_keywords if k not in keywords)
        return bits | given_bits, keywords + extra
    removed = set(given_keywords)
    return bits & ~given_bits, tuple(k for k in keywords if k not in removed)

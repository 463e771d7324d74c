"""Mailbox names: validation, INBOX canonicalisation, hierarchy, LIST patterns.

Pure functions, shared by every backend. Names are Unicode ``str`` (modified
UTF-7 exists only on the wire), the hierarchy delimiter is ``/``
(RFC 3501 §5.1, §6.3.8), and ``INBOX`` is case-insensitive (RFC 3501 §5.1).
"""

from __future__ import annotations

import unicodedata
from typing import Callable, Iterable

from imapd.core.errors import ImapError
from imapd.mail.listpattern import ListPattern, StepBudget

DELIMITER = "/"
INBOX = "INBOX"

# Bounds on what a client can make us store and walk. Generous for humans,
# small enough that one name can never become a resource problem.
MAX_NAME_CHARS = 1000
MAX_COMPONENT_CHARS = 255
MAX_DEPTH = 32

_WILDCARDS = frozenset("*%")


def _invalid(reason: str) -> ImapError:
    return ImapError.no(f"Invalid mailbox name: {reason}", "CANNOT")


def _check_characters(name: str) -> None:
    for char in name:
        if char in _WILDCARDS:
            raise _invalid("wildcards * and % are not allowed")
        category = unicodedata.category(char)
        if category == "Cc":
            raise _invalid("control characters are not allowed")
        if category == "Cs":
            raise _invalid("unpaired surrogates are not allowed")


def _check_components(name: str) -> None:
    components = name.split(DELIMITER)
    if len(components) > MAX_DEPTH:
        raise _invalid(f"more than {MAX_DEPTH} hierarchy levels")
    for component in components:
        if component == "":
            raise _invalid("empty hierarchy level (leading, trailing or double '/')")
        if component in (".", ".."):
            raise _invalid("'.' and '..' are not allowed as hierarchy levels")
        if len(component) > MAX_COMPONENT_CHARS:
            raise _invalid(f"a hierarchy level is longer than {MAX_COMPONENT_CHARS} characters")


def canonical_inbox(name: str) -> str:
    """Spell a leading ``INBOX`` component in upper case (RFC 3501 §5.1:
    INBOX is case-insensitive; we extend that to its inferiors, as clients
    expect ``inbox/x`` and ``INBOX/x`` to be the same mailbox)."""
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def normalize_name(name: str) -> str:
    """Validate a mailbox name and return its canonical spelling.

    Raises ``ImapError`` NO [CANNOT] with the reason for: an empty name,
    ``*`` or ``%`` (LIST wildcards, RFC 3501 §6.3.8), control characters,
    unpaired surrogates, empty levels (leading, trailing or double ``/``),
    ``.`` or ``..`` levels, and names over the length or depth limits.
    """
    if name == "":
        raise _invalid("the name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise _invalid(f"longer than {MAX_NAME_CHARS} characters")
    _check_characters(name)
    _check_components(name)
    return canonical_inbox(name)


def normalize_create_name(name: str) -> str:
    """Like ``normalize_name`` but accepts one trailing delimiter, which
    RFC 3501 §6.3.3 defines as "the client intends to create names under
    this one": the mailbox created is the name without it."""
    if name.endswith(DELIMITER) and not name.endswith(DELIMITER * 2):
        name = name[:-1]
    return normalize_name(name)


def is_inbox(name: str) -> bool:
    return name == INBOX


def ancestors(name: str) -> list[str]:
    """The superior names of ``name``, outermost first:
    ``a/b/c`` -> ``["a", "a/b"]``."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def parent(name: str) -> str | None:
    head, sep, _ = name.rpartition(DELIMITER)
    return head if sep else None


def is_inferior(name: str, of: str) -> bool:
    """True when ``name`` is strictly below ``of`` in the hierarchy."""
    return name.startswith(of + DELIMITER)


def renamed(name: str, old: str, new: str) -> str:
    """The name ``name`` gets when the subtree ``old`` becomes ``new``."""
    if name == old:
        return new
    assert is_inferior(name, old)
    return new + name[len(old):]


def combine_reference(reference: str, pattern: str) -> str:
    """RFC 3501 §6.3.8: the reference name and the mailbox name (which may
    hold wildcards) are interpreted together. We concatenate them, which is
    what every example in the RFC does (reference ``~smith/Mail/`` + ``foo.*``).
    """
    return reference + pattern


def list_root(reference: str) -> str:
    """The root name reported for ``LIST reference ""`` (RFC 3501 §6.3.8:
    "the hierarchy delimiter and the root name of the name given in the
    reference"): the reference's first level plus the delimiter, or ""."""
    head, sep, _ = reference.partition(DELIMITER)
    return head + sep if sep else ""


def _canonical_pattern(pattern: str) -> str:
    # A pattern that starts with the literal INBOX level must match INBOX
    # whatever its case (RFC 3501 §5.1); wildcards elsewhere stay exact.
    if len(pattern) >= len(INBOX) and pattern[: len(INBOX)].upper() == INBOX:
        rest = pattern[len(INBOX):]
        if rest == "" or rest[0] in "/*%":
            return INBOX + rest
    return pattern


def compile_pattern(pattern: str, budget: StepBudget | None = None) -> Callable[[str], bool]:
    """A predicate telling whether a canonical mailbox name matches a LIST
    pattern: ``*`` matches anything, ``%`` anything but the delimiter
    (RFC 3501 §6.3.8). Matching is case-sensitive except for INBOX. The
    matcher never backtracks: its cost is bounded by pattern length times
    name length whatever the client sends, and within ``budget`` (shared by
    the patterns of one command; its own otherwise), past which it raises
    NO [LIMIT] (``listpattern``)."""
    return ListPattern(_canonical_pattern(pattern), DELIMITER, budget)


def implied_parents(names: Iterable[str], matches: Callable[[str], bool]) -> set[str]:
    """Superiors of ``names`` that match the pattern. Used by LSUB: when
    ``%`` matches a level that is not itself subscribed but has subscribed
    inferiors, it is listed with ``\\Noselect`` (RFC 3501 §6.3.9)."""
    found: set[str] = set()
    for name in names:
        for superior in ancestors(name):
            if matches(superior):
                found.add(superior)
    return found

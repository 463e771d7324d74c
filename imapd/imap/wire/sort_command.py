"""The SORT command's typed form (RFC 5256 §3, RFC 5957 §3).

Kept beside ``commands`` (which re-exports it in the ``Command`` union) so
that module stays within its size budget.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # commands imports this module; no cycle at run time
    from imapd.imap.wire.commands import SearchAnd


class SortKey(enum.Enum):
    """``sort-key`` (RFC 5256 §4) plus DISPLAYFROM / DISPLAYTO (RFC 5957 §4)."""

    ARRIVAL = "ARRIVAL"
    CC = "CC"
    DATE = "DATE"
    FROM = "FROM"
    SIZE = "SIZE"
    SUBJECT = "SUBJECT"
    TO = "TO"
    DISPLAYFROM = "DISPLAYFROM"
    DISPLAYTO = "DISPLAYTO"


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """``sort-criterion = ["REVERSE" SP] sort-key``."""

    key: SortKey
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    """``[UID] SORT (criteria) charset search-keys`` (RFC 5256 §3). The
    charset is mandatory in SORT (``search-criteria = charset 1*(SP
    search-key)``, §4) and upper-cased; ``criteria`` is the top-level AND of
    the search keys, as in ``Search``. ``return_options``: None for a plain
    SORT, else the ESORT result options (RFC 5267 §3.2, ``SORT_RETURN_OPTIONS``
    and ``PARTIAL`` with its range in ``partial``), answered with ESEARCH."""

    tag: str
    uid: bool
    program: tuple[SortCriterion, ...]
    charset: str
    criteria: SearchAnd
    return_options: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


# ESORT (RFC 5267 §3.2): what ``SORT RETURN (...)`` may ask for; MIN and MAX
# name the first and last message in sort order, ALL lists them in it.
SORT_RETURN_OPTIONS = ("MIN", "MAX", "COUNT", "ALL", "PARTIAL")

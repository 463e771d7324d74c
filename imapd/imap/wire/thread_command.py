"""The THREAD command's typed form (RFC 5256 §3, §4).

Kept beside ``commands`` (which lists it in the ``Command`` union) so that
module stays within its size budget.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # commands imports this module; no cycle at run time
    from imapd.imap.wire.commands import SearchAnd


class ThreadAlgorithm(enum.Enum):
    """The ``thread-alg`` values imapd implements (RFC 5256 §3)."""

    ORDEREDSUBJECT = "ORDEREDSUBJECT"
    REFERENCES = "REFERENCES"


@dataclass(frozen=True, slots=True)
class Thread:
    """``[UID] THREAD thread-alg charset search-keys`` (RFC 5256 §4). The
    charset is mandatory (no ``CHARSET`` keyword) and upper-cased;
    ``criteria`` is the top-level AND of the search keys, as in ``Search``."""

    tag: str
    uid: bool
    algorithm: ThreadAlgorithm
    charset: str
    criteria: SearchAnd

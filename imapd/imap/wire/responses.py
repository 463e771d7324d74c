"""Server responses as values (RFC 3501 §7). ``imapd.imap.wire.encode`` writes them.

Handlers return sequences of these; they never produce bytes themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from imapd.imap.wire.values import Value


class Status(enum.Enum):
    OK = "OK"
    NO = "NO"
    BAD = "BAD"
    PREAUTH = "PREAUTH"
    BYE = "BYE"


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """A bracketed response code, e.g. ``[UIDNEXT 4392]`` or
    ``[PERMANENTFLAGS (\\Seen \\*)]`` (RFC 3501 §7.1). ``args`` are written
    space-separated after the name."""

    name: str
    args: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class Tagged:
    """``tag OK|NO|BAD [code] text`` — the command's completion."""

    tag: str
    status: Status
    text: str
    code: ResponseCode | None = None


@dataclass(frozen=True, slots=True)
class Untagged:
    """``* OK|NO|BAD|PREAUTH|BYE [code] text`` — an untagged status response."""

    status: Status
    text: str
    code: ResponseCode | None = None


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text`` — continuation request (RFC 3501 §7.5). ``data`` (already
    base64, for SASL challenges) replaces the text when given."""

    text: str = "Ready"
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Capability:
    """``* CAPABILITY IMAP4rev1 ...`` (§7.2.1)."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListResponse:
    """``* LIST (attrs) "/" name`` or ``* LSUB ...`` (§7.2.2, §7.2.3).

    ``delimiter`` None means NIL (flat namespace). ``extended`` carries
    LIST-EXTENDED data items (RFC 5258), empty for plain LIST.
    """

    attributes: tuple[str, ...]
    delimiter: str | None
    name: str
    lsub: bool = False
    extended: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """``* STATUS name (MESSAGES 231 UIDNEXT 44292)`` (§7.2.4); items in the
    order the client asked."""

    mailbox: str
    items: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SearchResponse:
    """``* SEARCH 2 3 6`` (§7.2.5). ``modseq`` is the CONDSTORE trailer.
    ``keyword`` "SORT" makes it RFC 5256's ``* SORT 2 84 882`` (sort-data
    has the same shape, and the same trailer: RFC 7162 §3.1.5)."""

    numbers: tuple[int, ...]
    modseq: int | None = None
    keyword: str = "SEARCH"


@dataclass(frozen=True, slots=True)
class FlagsResponse:
    """``* FLAGS (\\Answered ...)`` (§7.2.6)."""

    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exists:
    """``* 23 EXISTS`` (§7.3.1)."""

    count: int


@dataclass(frozen=True, slots=True)
class Recent:
    """``* 5 RECENT`` (§7.3.2)."""

    count: int


@dataclass(frozen=True, slots=True)
class Expunge:
    """``* 44 EXPUNGE`` (§7.4.1)."""

    seq: int


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """``* 23 FETCH (FLAGS (\\Seen) UID 4827313)`` (§7.4.2).

    ``items`` are (name, value) pairs in output order. The name is written as
    an atom exactly as given (``"BODY[1.HEADER.FIELDS (FROM)]<0>"``), so the
    handler that knows the section spelling owns it.
    """

    seq: int
    items: tuple[tuple[str, Value], ...]


@dataclass(frozen=True, slots=True)
class Generic:
    """Any other untagged data response: ``* NAME value value ...``.

    For extensions (ENABLED, ID, NAMESPACE, ESEARCH, VANISHED, ...) whose
    grammar is a plain sequence of values after a keyword. ``number``, when
    given, precedes the name (``* 3 SOMETHING``).
    """

    name: str
    values: tuple[Value, ...] = field(default=())
    number: int | None = None


Response = Union[
    Tagged,
    Untagged,
    Continuation,
    Capability,
    ListResponse,
    StatusResponse,
    SearchResponse,
    FlagsResponse,
    Exists,
    Recent,
    Expunge,
    FetchResponse,
    Generic,
]

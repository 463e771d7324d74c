"""Typed IMAP commands: one frozen dataclass per command (RFC 3501 §6).

The parser (``imapd.wire.parse``) produces these; handlers consume them.
Strings that name mailboxes are already decoded from modified UTF-7 to
``str`` (RFC 3501 §5.1.3) and ``INBOX`` in any case is normalised to
``"INBOX"``. Other strings (user names, search values) are decoded text.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Union

from imapd.model import Secret, SequenceSet


# --- any state (§6.1) -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Capability:
    tag: str


@dataclass(frozen=True, slots=True)
class Noop:
    tag: str


@dataclass(frozen=True, slots=True)
class Logout:
    tag: str


# --- not authenticated (§6.2) ------------------------------------------------

@dataclass(frozen=True, slots=True)
class StartTLS:
    tag: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """``AUTHENTICATE mech [initial-response]`` (§6.2.2, SASL-IR RFC 4959).

    ``initial_response`` is the still-base64 text after the mechanism
    (``"="`` means an empty response), or None when absent.
    """

    tag: str
    mechanism: str  # upper-cased
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login:
    tag: str
    username: str
    password: Secret


# --- authenticated (§6.3) ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Select:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Examine:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Create:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Delete:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    tag: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """``LIST reference pattern`` (§6.3.8). Both are decoded from mUTF-7;
    the pattern keeps its ``*`` and ``%`` wildcards."""

    tag: str
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Lsub:
    tag: str
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Status:
    """``STATUS mailbox (items)`` (§6.3.10); items upper-cased, in order."""

    tag: str
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Append:
    """``APPEND mailbox [flags] [date-time] literal`` (§6.3.11)."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    internal_date: datetime.datetime | None  # timezone-aware
    message: bytes


# --- selected (§6.4) ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Check:
    tag: str


@dataclass(frozen=True, slots=True)
class Close:
    tag: str


@dataclass(frozen=True, slots=True)
class Expunge:
    tag: str


# SEARCH keys (§6.4.4). The parser normalises synonyms: FROM x is
# SearchHeader("FROM", x); ANSWERED is SearchFlag("\\Answered", True);
# UNKEYWORD k is SearchFlag(k, False); NEW is SearchAnd(RECENT, UNSEEN);
# OLD is SearchFlag("\\Recent", False); a parenthesised list is SearchAnd.

@dataclass(frozen=True, slots=True)
class SearchAll:
    pass


@dataclass(frozen=True, slots=True)
class SearchFlag:
    flag: str  # canonical system flag or keyword
    present: bool


class DateField(enum.Enum):
    INTERNAL = "INTERNAL"  # BEFORE / ON / SINCE
    SENT = "SENT"          # SENTBEFORE / SENTON / SENTSINCE (Date: header)


class DateOp(enum.Enum):
    BEFORE = "BEFORE"
    ON = "ON"
    SINCE = "SINCE"


@dataclass(frozen=True, slots=True)
class SearchDate:
    field: DateField
    op: DateOp
    date: datetime.date


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """HEADER field value, and FROM/TO/CC/BCC/SUBJECT (field upper-cased)."""

    field: str
    value: str


class TextScope(enum.Enum):
    BODY = "BODY"
    TEXT = "TEXT"


@dataclass(frozen=True, slots=True)
class SearchText:
    scope: TextScope
    value: str


@dataclass(frozen=True, slots=True)
class SearchSize:
    larger: bool  # True: LARGER n, False: SMALLER n
    size: int


@dataclass(frozen=True, slots=True)
class SearchSeq:
    seqset: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchUid:
    seqset: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    keys: tuple[SearchKey, ...]


SearchKey = Union[
    SearchAll, SearchFlag, SearchDate, SearchHeader, SearchText, SearchSize,
    SearchSeq, SearchUid, SearchNot, SearchOr, SearchAnd,
]


@dataclass(frozen=True, slots=True)
class Search:
    """``[UID] SEARCH [CHARSET c] keys`` (§6.4.4). ``charset`` upper-cased or
    None; ``criteria`` is the top-level AND of the keys."""

    tag: str
    uid: bool
    charset: str | None
    criteria: SearchAnd


class FetchKind(enum.Enum):
    ENVELOPE = "ENVELOPE"
    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822 = "RFC822"
    RFC822_HEADER = "RFC822.HEADER"
    RFC822_SIZE = "RFC822.SIZE"
    RFC822_TEXT = "RFC822.TEXT"
    BODY = "BODY"                  # BODY without a section: structure, no extensions
    BODYSTRUCTURE = "BODYSTRUCTURE"
    UID = "UID"
    BODY_SECTION = "BODY[]"        # BODY[section]<partial> and BODY.PEEK[...]


class SectionText(enum.Enum):
    HEADER = "HEADER"
    HEADER_FIELDS = "HEADER.FIELDS"
    HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT"
    TEXT = "TEXT"
    MIME = "MIME"


@dataclass(frozen=True, slots=True)
class Section:
    """A body section spec (§6.4.5): ``1.2.HEADER.FIELDS (From To)``.

    ``part`` is the list of part numbers (empty for the whole message),
    ``text`` the optional text specifier, ``fields`` the header names as the
    client wrote them (upper-cased), only for HEADER.FIELDS[.NOT].
    """

    part: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Partial:
    """``<origin.count>`` (§6.4.5)."""

    origin: int
    count: int


@dataclass(frozen=True, slots=True)
class FetchAttribute:
    kind: FetchKind
    section: Section | None = None  # only for BODY_SECTION
    peek: bool = False              # BODY.PEEK[...]
    partial: Partial | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """``[UID] FETCH set items`` (§6.4.5). Macros ALL/FAST/FULL are expanded
    by the parser into their attribute lists (in the RFC's order)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    attributes: tuple[FetchAttribute, ...]


class StoreMode(enum.Enum):
    REPLACE = "FLAGS"
    ADD = "+FLAGS"
    REMOVE = "-FLAGS"


@dataclass(frozen=True, slots=True)
class Store:
    """``[UID] STORE set [+|-]FLAGS[.SILENT] (flags)`` (§6.4.6)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    mode: StoreMode
    silent: bool
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Copy:
    """``[UID] COPY set mailbox`` (§6.4.7)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    mailbox: str


Command = Union[
    Capability, Noop, Logout,
    StartTLS, Authenticate, Login,
    Select, Examine, Create, Delete, Rename, Subscribe, Unsubscribe,
    List, Lsub, Status, Append,
    Check, Close, Expunge, Search, Fetch, Store, Copy,
]


@dataclass(frozen=True, slots=True)
class CommandSyntaxError:
    """What the parser returns instead of raising: the command could not be
    parsed. ``tag`` is the tag when one was readable (answer ``tag BAD``),
    otherwise None (answer ``* BAD``)."""

    tag: str | None
    reason: str

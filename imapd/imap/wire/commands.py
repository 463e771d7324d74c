"""Typed IMAP commands: one frozen dataclass per command (RFC 3501 §6).

The parser (``imapd.imap.wire.parse``) produces these; handlers consume them.
Strings that name mailboxes are already decoded from modified UTF-7 to
``str`` (RFC 3501 §5.1.3) and ``INBOX`` in any case is normalised to
``"INBOX"``. Other strings (user names, search values) are decoded text.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Union

from imapd.core.model import Secret, SequenceSet
from imapd.core.spool import MessageData
from imapd.imap.wire.catenate_command import CatenatePart
from imapd.imap.wire.thread_command import Thread as Thread
from imapd.imap.wire.thread_command import ThreadAlgorithm as ThreadAlgorithm
# SORT (RFC 5256) and QUOTA (RFC 9208) live in their own modules; re-exported
# for ``c.Sort``, ``c.GetQuota`` etc.
from imapd.imap.wire.quota_command import (
    GetQuota as GetQuota, GetQuotaRoot as GetQuotaRoot, SetQuota as SetQuota,
)
from imapd.imap.wire.sort_command import Sort as Sort, SortCriterion as SortCriterion, SortKey as SortKey


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
class QResync:
    """The QRESYNC select parameter (RFC 7162 §3.2.5):
    ``QRESYNC (uidvalidity modseq [known-uids [(known-seqs known-uids)]])``.

    ``known_uids`` is the client's UID list (None: not given);
    ``seq_match`` the optional (sequence numbers, UIDs) sample. ``*`` is
    not allowed in any of these sets (the parser refuses it).
    """

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """``SELECT mailbox [(select-params)]`` (§6.3.1); ``condstore`` is the
    RFC 7162 §3.1.8 CONDSTORE parameter, ``qresync`` §3.2.5's QRESYNC one."""

    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Examine:
    """``EXAMINE mailbox [(select-params)]`` (§6.3.2); see ``Select``."""

    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """``CREATE mailbox [(USE (use-attrs))]`` (§6.3.3; RFC 4466 §2.3
    create-params, RFC 6154 §3 USE). ``special_use`` is None without the
    USE parameter, else its attributes (``"\\Sent"``) as written, with
    system-style capitalisation (``\\sent`` -> ``\\Sent``)."""

    tag: str
    mailbox: str
    special_use: tuple[str, ...] | None = None


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


# RFC 5258 §3 selection options, RFC 6154 §6 SPECIAL-USE: the ones we know.
LIST_SELECTION_OPTIONS = ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")
# RFC 5258 §3 return options, RFC 5819 STATUS, RFC 6154 SPECIAL-USE.
LIST_RETURN_OPTIONS = ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")


@dataclass(frozen=True, slots=True)
class List:
    """``LIST reference pattern`` (§6.3.8). Both are decoded from mUTF-7;
    the pattern keeps its ``*`` and ``%`` wildcards.

    LIST-EXTENDED (RFC 5258 §3): ``selection`` is None when no selection
    options were given, else the upper-cased options (``()`` for an empty
    list); ``patterns`` is None for a single pattern, else every pattern of
    the parenthesised form (``pattern`` is then its first);
    ``return_options`` None without RETURN, else the upper-cased options;
    ``status_items`` the items of ``RETURN (STATUS (...))`` (RFC 5819).
    Options are unique, in the client's order.
    """

    tag: str
    reference: str
    pattern: str
    selection: tuple[str, ...] | None = None
    patterns: tuple[str, ...] | None = None
    return_options: tuple[str, ...] | None = None
    status_items: tuple[str, ...] = ()

    @property
    def extended(self) -> bool:
        """An extended LIST (RFC 5258 §3): any of the three extensions used."""
        return not (self.selection is None and self.patterns is None and self.return_options is None)

    @property
    def all_patterns(self) -> tuple[str, ...]:
        return self.patterns if self.patterns is not None else (self.pattern,)


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
class AppendMessage:
    """One message of an APPEND: ``[flags] [date-time] literal``. A large
    ``message`` is a ``SpooledLiteral`` (read like bytes; see imapd.core.spool)."""

    flags: tuple[str, ...]
    internal_date: datetime.datetime | None  # timezone-aware
    message: MessageData
    catenate: tuple[CatenatePart, ...] | None = None  # RFC 4469: the parts, ``message`` unused


@dataclass(frozen=True, slots=True)
class Append:
    """``APPEND mailbox [flags] [date-time] literal`` (§6.3.11); MULTIAPPEND
    (RFC 3502 §6) adds more messages after the first: ``more``."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    internal_date: datetime.datetime | None  # timezone-aware
    message: MessageData  # bytes, or a SpooledLiteral when large (imapd.core.spool)
    more: tuple[AppendMessage, ...] = ()
    catenate: tuple[CatenatePart, ...] | None = None  # the first message's (RFC 4469)

    @property
    def messages(self) -> tuple[AppendMessage, ...]:
        """Every message, in the client's order."""
        first = AppendMessage(self.flags, self.internal_date, self.message, self.catenate)
        return (first, *self.more)


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


@dataclass(frozen=True, slots=True)
class SearchModSeq:
    """``MODSEQ [entry-name entry-type] n`` (RFC 7162 §3.1.5): messages whose
    MODSEQ is at least ``modseq``. ``entry`` is the unquoted entry name
    (``/flags/\\seen``), ``entry_type`` ``priv``/``shared``/``all``
    (lower-cased); both None when absent."""

    modseq: int
    entry: str | None = None
    entry_type: str | None = None


SearchKey = Union[
    SearchAll, SearchFlag, SearchDate, SearchHeader, SearchText, SearchSize,
    SearchSeq, SearchUid, SearchNot, SearchOr, SearchAnd, SearchModSeq,
]

# RFC 4731 ESEARCH and RFC 5182 SEARCHRES result options.
SEARCH_RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE")
# RFC 5267 §4: UPDATE keeps the search live, CONTEXT is a hint; PARTIAL
# (§4.4) takes a range (``Search.partial``).
CONTEXT_RETURN_OPTIONS = ("UPDATE", "CONTEXT")
PARTIAL = "PARTIAL"


@dataclass(frozen=True, slots=True)
class Search:
    """``[UID] SEARCH [RETURN (opts)] [CHARSET c] keys`` (§6.4.4, RFC 4731
    §3.1). ``charset`` upper-cased or None; ``criteria`` is the top-level AND
    of the keys. ``return_options`` is None for a plain SEARCH, else the
    upper-cased result options (``SEARCH_RETURN_OPTIONS``) without
    duplicates, in the client's order; ``()`` for ``RETURN ()``. With
    ``PARTIAL m:n`` among them, ``partial`` is (low, high) (RFC 5267 §4.4)."""

    tag: str
    uid: bool
    charset: str | None
    criteria: SearchAnd
    return_options: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class CancelUpdate:
    """``CANCELUPDATE "tag" ...`` (RFC 5267 §4.3)."""

    tag: str
    search_tags: tuple[str, ...]


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
    MODSEQ = "MODSEQ"              # RFC 7162 §3.1.4.2
    BINARY_SECTION = "BINARY[]"    # RFC 3516 §4.2 BINARY[part]<partial>, BINARY.PEEK
    BINARY_SIZE = "BINARY.SIZE[]"  # RFC 3516 §4.3 BINARY.SIZE[part]


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
    section: Section | None = None  # only for BODY_SECTION, BINARY_SECTION, BINARY_SIZE
    peek: bool = False              # BODY.PEEK[...]
    partial: Partial | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """``[UID] FETCH set items [(modifiers)]`` (§6.4.5). Macros ALL/FAST/FULL
    are expanded by the parser into their attribute lists (in the RFC's
    order). Modifiers (RFC 7162 §3.1.4.1, §3.2.6): ``changedsince`` (only
    messages whose MODSEQ is above it), ``vanished`` (UID FETCH with
    CHANGEDSINCE only: also report expunged UIDs)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    changedsince: int | None = None
    vanished: bool = False


class StoreMode(enum.Enum):
    REPLACE = "FLAGS"
    ADD = "+FLAGS"
    REMOVE = "-FLAGS"


@dataclass(frozen=True, slots=True)
class Store:
    """``[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] (flags)``
    (§6.4.6, RFC 7162 §3.1.3)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    mode: StoreMode
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """``[UID] COPY set mailbox`` (§6.4.7)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    mailbox: str


# --- session extensions: IDLE, ENABLE, NAMESPACE, ID, UNSELECT, COMPRESS -------

@dataclass(frozen=True, slots=True)
class Idle:
    """``IDLE`` (RFC 2177 §3); the client ends it with the line ``DONE``,
    which the handler reads as a continuation, not as a command."""

    tag: str


@dataclass(frozen=True, slots=True)
class Enable:
    """``ENABLE 1*(SP capability)`` (RFC 5161 §3.1); names upper-cased
    (capability names are case-insensitive), in the client's order."""

    tag: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Namespace:
    """``NAMESPACE`` (RFC 2342 §5)."""

    tag: str


@dataclass(frozen=True, slots=True)
class Id:
    """``ID ("field" "value" ...)`` or ``ID NIL`` (RFC 2971 §3.1).

    ``params`` is None for NIL, else the (field, value) pairs in order; a
    value is None for NIL. Strings are decoded as UTF-8 (invalid octets
    replaced): the data is informational only (RFC 2971 §3).
    """

    tag: str
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Unselect:
    """``UNSELECT`` (RFC 3691 §2)."""

    tag: str


@dataclass(frozen=True, slots=True)
class Compress:
    """``COMPRESS algorithm`` (RFC 4978 §3); the algorithm upper-cased
    (only ``DEFLATE`` is defined; the handler refuses others)."""

    tag: str
    algorithm: str


# --- UIDPLUS and MOVE (RFC 4315, RFC 6851) ------------------------------------

@dataclass(frozen=True, slots=True)
class Move:
    """``[UID] MOVE set mailbox`` (RFC 6851 §3.1)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class UidExpunge:
    """``UID EXPUNGE uid-set`` (RFC 4315 §2.1)."""

    tag: str
    seqset: SequenceSet


Command = Union[
    Capability, Noop, Logout,
    StartTLS, Authenticate, Login,
    Select, Examine, Create, Delete, Rename, Subscribe, Unsubscribe,
    List, Lsub, Status, Append,
    Check, Close, Expunge, Search, Fetch, Store, Copy,
    Move, UidExpunge,
    Idle, Enable, Namespace, Id, Unselect, Compress,
    GetQuota, GetQuotaRoot, SetQuota,
    CancelUpdate,
    Sort,
    Thread,
]


@dataclass(frozen=True, slots=True)
class CommandSyntaxError:
    """What the parser returns instead of raising: the command could not be
    parsed. ``tag`` is the tag when one was readable (answer ``tag BAD``),
    otherwise None (answer ``* BAD``)."""

    tag: str | None
    reason: str
    # True when the syntax was fine but a mailbox name is not valid modified
    # UTF-7 (RFC 3501 §5.1.3): such a mailbox cannot exist, so the answer is
    # NO (as Dovecot answers), not BAD.
    invalid_name: bool = False

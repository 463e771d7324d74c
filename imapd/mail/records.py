"""Values the mail core takes and returns (see ``backend`` and ``service``)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple, Sequence

from imapd.core.spool import MessageData

NOSELECT = "\\Noselect"
HAS_CHILDREN = "\\HasChildren"
HAS_NO_CHILDREN = "\\HasNoChildren"


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    """One name in a LIST/LSUB result.

    ``exists``: a mailbox or a ``\\Noselect`` placeholder by this name exists.
    ``selectable``: it is a real mailbox (RFC 3501 §6.3.4 placeholders are
    not). ``subscribed``: the name is in the subscription list. For LSUB
    (``subscribed_only``) an unsubscribed superior of a subscribed name is
    returned with ``subscribed=False`` (RFC 3501 §6.3.9). ``special_use`` is
    an RFC 6154 attribute such as ``"\\\\Sent"`` (several are separated by
    spaces, see ``special_uses``), or None.
    """

    name: str
    exists: bool
    selectable: bool
    has_children: bool
    subscribed: bool
    special_use: str | None = None

    def list_attributes(self) -> tuple[str, ...]:
        """Name attributes for a LIST response (RFC 3501 §7.2.2, RFC 3348)."""
        attributes: list[str] = []
        if not self.selectable:
            attributes.append(NOSELECT)
        attributes.append(HAS_CHILDREN if self.has_children else HAS_NO_CHILDREN)
        attributes.extend(self.special_uses)
        return tuple(attributes)

    @property
    def special_uses(self) -> tuple[str, ...]:
        """The RFC 6154 attributes of the mailbox, e.g. ``("\\\\Sent",)``."""
        return tuple(self.special_use.split()) if self.special_use else ()

    def lsub_attributes(self) -> tuple[str, ...]:
        """Name attributes for an LSUB response (RFC 3501 §6.3.9)."""
        return () if self.subscribed else (NOSELECT,)


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """Everything STATUS can ask for (RFC 3501 §6.3.10, RFC 7162 §3.1.9,
    RFC 8438 SIZE, RFC 9051 §6.3.11 DELETED). ``recent`` counts messages no
    session has claimed yet; ``deleted`` those flagged ``\\Deleted`` and
    ``deleted_size`` their octets (what EXPUNGE would free)."""

    name: str
    messages: int
    recent: int
    uidnext: int
    uidvalidity: int
    unseen: int
    highestmodseq: int
    size: int
    deleted: int = 0
    deleted_size: int = 0

    def item(self, name: str) -> int:
        """The value of a STATUS data item by its IMAP name (``"UIDNEXT"``)."""
        return int(getattr(self, name.lower()))


@dataclass(frozen=True, slots=True)
class AppendItem:
    """One message for ``append_many`` (RFC 3501 §6.3.11, RFC 3502).

    ``internal_date`` must be timezone-aware; None means "now".
    ``meta`` is the caller's opaque analysis blob, returned unchanged.
    ``message`` may be a ``SpooledLiteral`` (a large APPEND, imapd.core.spool):
    the store reads it like bytes and must not keep it after returning.
    """

    message: MessageData
    flags: tuple[str, ...] = ()
    internal_date: datetime.datetime | None = None
    meta: bytes = b""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """UIDVALIDITY and the UIDs assigned, in the order given (RFC 4315 APPENDUID)."""

    uidvalidity: int
    uids: tuple[int, ...]
    # The inclusive UID range this call claimed as \\Recent for the caller
    # (``MailBackend.append(claim=True)``), or None.
    claimed: tuple[int, int] | None = None

    @property
    def uid(self) -> int:
        return self.uids[0]


class MessageRecord(NamedTuple):
    """What FETCH needs of a message besides its bytes. ``flags`` never
    contains ``\\Recent`` (the view adds it). ``meta`` is b"" unless asked for.
    (A NamedTuple, like FlagState: they are built by the 100,000.)"""

    uid: int
    flags: tuple[str, ...]
    internal_date: datetime.datetime
    size: int
    modseq: int
    meta: bytes = b""


class FlagState(NamedTuple):
    """A message's flags and MODSEQ after a change (RFC 7162 §3.1.4)."""

    uid: int
    flags: tuple[str, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class StoreResult:
    """Result of STORE (RFC 3501 §6.4.6, RFC 7162 §3.1.3).

    ``states``: every requested message that still exists and passed the
    UNCHANGEDSINCE test, with its flags after the store (changed or not).
    ``changed``: the UIDs whose flags actually changed (they got a new MODSEQ).
    ``modified``: UIDs that failed the UNCHANGEDSINCE test (``[MODIFIED]``).
    """

    states: tuple[FlagState, ...]
    changed: frozenset[int]
    modified: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CopyResult:
    """COPY/MOVE result: the target's UIDVALIDITY and (source UID, new UID)
    pairs in ascending source order (RFC 4315 COPYUID)."""

    uidvalidity: int
    pairs: tuple[tuple[int, int], ...]
    # As ``AppendResult.claimed``, for ``MailBackend.copy(claim=True)``.
    claimed: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """The state of a mailbox when it was selected, read in one transaction.

    ``uids`` ascending; ``recent`` the UIDs that are ``\\Recent`` in this
    session; ``keywords`` every keyword defined in the mailbox (for the
    FLAGS response, RFC 3501 §7.2.6); ``first_unseen`` the UID of the first
    message without ``\\Seen`` (for ``OK [UNSEEN n]``), or None.
    """

    uidvalidity: int
    uidnext: int
    highestmodseq: int
    uids: Sequence[int]
    recent: frozenset[int]
    keywords: tuple[str, ...]
    first_unseen: int | None


@dataclass(eq=False)
class MessageBody:
    """A message's exact bytes, readable in chunks.

    ``chunks()`` yields the whole message, ``size`` octets in all, from a
    consistent snapshot (an expunge by another session while streaming does
    not cut it short). Call ``close()`` when done (iterating to the end also
    releases it).
    """

    size: int
    _chunks: Callable[[], Iterator[bytes]]
    _close: Callable[[], None] = field(default=lambda: None)

    def chunks(self) -> Iterator[bytes]:
        return self._chunks()

    def close(self) -> None:
        self._close()


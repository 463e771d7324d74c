"""The state of the in-memory engine, shareable by several backends.

``MemoryData`` is "the store": users, their mailbox trees, messages,
expunge history and subscriptions. Several ``MemoryBackend`` objects over
one ``MemoryData`` act like several processes sharing one data directory:
each has its own feed, and every change rings all of them (see ``feed``).
Nothing here awaits, so each backend call is atomic; validation always runs
before the first mutation, so a call that raises changed nothing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from imapd.mail.flags import join_flags
from imapd.mail.records import FlagState
from imapd.storage.memory.feed import MemoryFeed

MAX_UID = 2**32 - 1          # nz-number, RFC 3501 §9
MAX_UIDVALIDITY = 2**32 - 1
MAX_KEYWORDS_PER_MAILBOX = 1000


@dataclass(slots=True)
class Message:
    """One message. ``data`` is the exact bytes (RFC822.SIZE is their length)."""

    uid: int
    bits: int
    keywords: tuple[str, ...]
    internal_date: datetime.datetime
    data: bytes
    meta: bytes
    modseq: int
    # SORT/THREAD's facts (``imapd.message.sortfacts``), computed at APPEND
    # and shared by copies; None: none (``MailBackend.sort_facts``).
    facts: bytes | None = None

    @property
    def flags(self) -> tuple[str, ...]:
        return join_flags(self.bits, self.keywords)

    def state(self) -> FlagState:
        return FlagState(self.uid, self.flags, self.modseq)


@dataclass(slots=True)
class Mailbox:
    """One row of a user's tree. ``messages`` is kept in ascending UID order
    (UIDs are only ever appended in increasing order, and removal keeps the
    order of a dict). ``keywords``: folded -> the spelling first stored
    (RFC 3501 §2.3.2, keywords are case-insensitive). ``expunged``: (uid,
    modseq) for the life of the mailbox (RFC 7162 §3.2.5.2)."""

    id: int
    user: str
    name: str
    selectable: bool
    uidvalidity: int
    special_use: str | None = None
    uidnext: int = 1
    highestmodseq: int = 1
    recent_from: int = 1
    messages: dict[int, Message] = field(default_factory=dict)
    keywords: dict[str, str] = field(default_factory=dict)
    expunged: list[tuple[int, int]] = field(default_factory=list)

    def bump(self) -> int:
        """A new MODSEQ above every earlier one (RFC 7162 §3.1)."""
        self.highestmodseq += 1
        return self.highestmodseq


@dataclass(slots=True)
class User:
    """A user's tree by name, subscriptions, and the defaults
    ``ensure_user`` has provisioned (each once per user, ever)."""

    name: str
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    subscriptions: set[str] = field(default_factory=set)
    provisioned: set[tuple[str, str | None]] = field(default_factory=set)
    # RFC 9208 limits (bytes, messages); None = unlimited.
    storage_limit: int | None = None
    messages_limit: int | None = None


class MemoryData:
    """The shared store (see the module docstring)."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.by_id: dict[int, Mailbox] = {}
        self.feeds: list[MemoryFeed] = []
        self._next_id = 1
        self._last_uidvalidity = 0

    def user(self, name: str) -> User:
        """The user's record, created empty (no INBOX) on first mention."""
        user = self.users.get(name)
        if user is None:
            user = self.users[name] = User(name)
        return user

    def new_uidvalidity(self) -> int:
        """A UIDVALIDITY never handed out before by this store, so never
        reused among a user's mailboxes (RFC 3501 §2.3.1.1). Callers check
        ``uidvalidity_left`` before mutating."""
        self._last_uidvalidity += 1
        return self._last_uidvalidity

    def uidvalidity_left(self) -> int:
        return MAX_UIDVALIDITY - self._last_uidvalidity

    def add_mailbox(
        self, user: User, name: str, selectable: bool, special_use: str | None
    ) -> Mailbox:
        """A new row with a fresh id and UIDVALIDITY (a placeholder gets one
        too: harmless, and it keeps every ref distinct)."""
        mailbox = Mailbox(self._next_id, user.name, name, selectable, self.new_uidvalidity(),
                          special_use)
        self._next_id += 1
        user.mailboxes[name] = mailbox
        self.by_id[mailbox.id] = mailbox
        return mailbox

    def remove_mailbox(self, user: User, name: str) -> Mailbox:
        mailbox = user.mailboxes.pop(name)
        del self.by_id[mailbox.id]
        return mailbox

    def ring(self, mailbox_id: int, modseq: int) -> None:
        """Ring the subscribers of ``mailbox_id`` in every backend sharing
        this store, before the mutating call returns."""
        for feed in list(self.feeds):
            feed.ring(mailbox_id, modseq)

"""What a test server's store holds, read straight from the mail core.

``TestServer.mailbox("INBOX")`` returns a ``MailboxState``: a snapshot of
one mailbox taken when it is called (read on the reactor through
``MailService``, never over IMAP, so an assertion does not depend on the
client under test nor disturb its session: the read is like an EXAMINE,
RFC 3501 §6.3.2, and claims no ``\\Recent``). Take a new one after the
client acts again.

    state = server.mailbox("INBOX")
    assert state.exists == 2
    assert "\\Seen" in state.messages[0].flags
    assert state.messages[1].subject == "hello"
"""

from __future__ import annotations

import datetime
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

from imapd.mail.errors import NoSuchMailbox
from imapd.mail.service import MailService


class MailboxNotFound(LookupError):
    """The mailbox asked for does not exist; the message names the user's
    existing mailboxes."""

    def __init__(self, user: str, name: str, existing: list[str]) -> None:
        self.user = user
        self.name = name
        self.existing = existing
        shown = ", ".join(repr(n) for n in existing) or "none"
        super().__init__(f"user {user!r} has no mailbox {name!r}; existing mailboxes: {shown}")


@dataclass(frozen=True)
class StoredMessage:
    """One stored message: its UID, flags (without ``\\Recent``, which
    belongs to a session, RFC 3501 §2.3.2), internal date (RFC 3501
    §2.3.3), MODSEQ (RFC 7162) and exact bytes as stored."""

    uid: int
    flags: frozenset[str]
    internal_date: datetime.datetime
    modseq: int
    raw: bytes
    _parsed: list[EmailMessage] = field(default_factory=list, repr=False, compare=False)

    @property
    def message(self) -> EmailMessage:
        """The bytes parsed with ``email.policy.default`` (parsed once)."""
        if not self._parsed:
            parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
            self._parsed.append(parsed)
        return self._parsed[0]

    @property
    def subject(self) -> str | None:
        """The decoded Subject (RFC 2047 words decoded), or None."""
        value = self.message["Subject"]
        return None if value is None else str(value)

    @property
    def size(self) -> int:
        """RFC822.SIZE (RFC 3501 §7.4.2): the stored octets."""
        return len(self.raw)


@dataclass(frozen=True)
class MailboxState:
    """A mailbox as of one read: ``messages`` in UID order; ``keywords``
    defined in it (what FLAGS lists beyond the system flags, RFC 3501
    §7.2.6); UIDVALIDITY, UIDNEXT (RFC 3501 §2.3.1.1) and HIGHESTMODSEQ
    (RFC 7162 §3.1.1)."""

    user: str
    name: str
    messages: list[StoredMessage]
    keywords: tuple[str, ...]
    uidvalidity: int
    uidnext: int
    highestmodseq: int

    @property
    def uids(self) -> list[int]:
        return [message.uid for message in self.messages]

    @property
    def exists(self) -> int:
        """The message count (what ``* n EXISTS`` says, RFC 3501 §7.3.1)."""
        return len(self.messages)

    @property
    def flags(self) -> dict[int, frozenset[str]]:
        """Each message's flags by UID."""
        return {message.uid: message.flags for message in self.messages}

    def message(self, uid: int) -> StoredMessage:
        """The message with this UID (``KeyError`` naming the UIDs there are)."""
        for message in self.messages:
            if message.uid == uid:
                return message
        raise KeyError(f"no UID {uid} in {self.name!r}; UIDs: {self.uids}")


async def mailbox_names(mail: MailService, user: str) -> list[str]:
    """Every selectable mailbox of ``user``, INBOX first (LIST "" "*")."""
    listed = await mail.list_mailboxes(user, "", "*")
    return [info.name for info in listed if info.selectable]


async def read_mailbox(mail: MailService, user: str, name: str) -> MailboxState:
    """Read ``user``'s mailbox ``name`` (run on the reactor thread);
    ``MailboxNotFound`` if there is none."""
    try:
        watch = await mail.open(user, name, readonly=True)
    except NoSuchMailbox:
        raise MailboxNotFound(user, name, await mailbox_names(mail, user)) from None
    try:
        snapshot = watch.snapshot
        records = await watch.fetch_records(list(snapshot.uids))
        messages: list[StoredMessage] = []
        for record in records:
            raw = await watch.read_message(record.uid)
            if raw is None:  # expunged meanwhile
                continue
            messages.append(StoredMessage(record.uid, frozenset(record.flags),
                                          record.internal_date, record.modseq, raw))
        return MailboxState(user, watch.name, messages, tuple(snapshot.keywords),
                            snapshot.uidvalidity, snapshot.uidnext, snapshot.highestmodseq)
    finally:
        watch.close()

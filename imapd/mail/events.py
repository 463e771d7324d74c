"""Change events: what a session learns of changes to its open mailbox.

``MailboxWatch.catch_up`` (``imapd.mail.watch``) returns them, read from the
backend's ``changes_since`` after the doorbell rang: the changes made to the
mailbox by any session (this one included), in this process or another one
sharing the data directory. ``imapd.imap.session.view.SelectedView`` turns
them into untagged responses at the moments RFC 3501 §5.2 and §7.4.1 allow.

Events for one catch-up arrive as one batch, in this order: expunges, flag
changes, additions, then rename/delete. Each batch describes the mailbox as
of one committed state, so applying the batch in order keeps the session's
UID list equal to the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from imapd.mail.records import FlagState


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    """New messages (APPEND, COPY, MOVE into the mailbox), UIDs ascending,
    all above every UID the watch knew. ``recent`` is the subset that is
    ``\\Recent`` in this session (RFC 3501 §2.3.2). ``keywords``: the
    distinct keywords the new messages carry, so a client told they exist
    is also told the FLAGS list that names them (RFC 3501 §7.2.6)."""

    uids: tuple[int, ...]
    recent: frozenset[int]
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """Flags of known messages changed; ``states`` hold the latest flags.
    Changes made through the session itself come back too: the IMAP view
    drops what the client was already shown (RFC 3501 §6.4.6)."""

    states: tuple[FlagState, ...]


@dataclass(frozen=True, slots=True)
class MessagesExpunged:
    """Known messages were expunged (by anyone, this session included)."""

    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class MailboxRenamed:
    """The selected mailbox now has this name (RFC 2180 §3.4: the session
    keeps working on the renamed mailbox)."""

    new_name: str


@dataclass(frozen=True, slots=True)
class MailboxDeleted:
    """The selected mailbox was deleted by another session (RFC 2180 §3)."""


ChangeEvent = Union[MessagesAdded, FlagsChanged, MessagesExpunged, MailboxRenamed, MailboxDeleted]


"""Change events, and the ``Selection`` through which a session receives them.

A ``Selection`` is what ``MailStore.select`` returns: the store's side of one
session's SELECT/EXAMINE. The store pushes the changes made to the mailbox
(by any session, in this process or another one sharing the data directory)
into it as events; ``imapd.imap.session.view.SelectedView`` turns them into
untagged responses at the moments RFC 3501 §5.2 and §7.4.1 allow.

Events for one synchronisation arrive as one batch, in this order:
expunges, flag changes, additions, then rename/delete. Each batch describes
the mailbox as of one committed state, so applying the batch in order keeps
the session's UID list equal to the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

from imapd.mail.records import FlagState, MailboxSnapshot


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    """New messages (APPEND, COPY, MOVE into the mailbox), UIDs ascending,
    all above every UID the selection knew. ``recent`` is the subset that is
    ``\\Recent`` in this session (RFC 3501 §2.3.2). ``keywords``: the
    distinct keywords the new messages carry, so a client told they exist
    is also told the FLAGS list that names them (RFC 3501 §7.2.6)."""

    uids: tuple[int, ...]
    recent: frozenset[int]
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """Flags of known messages changed; ``states`` hold the latest flags.

    ``own`` is True when the change was made through this selection: the
    session's command handler has already reported it (STORE's FETCH
    responses, RFC 3501 §6.4.6), so the view only refreshes flags it was
    still holding from others' changes and does not queue a new FETCH.
    """

    states: tuple[FlagState, ...]
    own: bool = False


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
Listener = Callable[[Sequence[ChangeEvent]], None]


class Selection:
    """One session's selection of one mailbox, as the store tracks it.

    Backends subclass it to keep their own bookkeeping. ``listener`` is set
    by the view; events delivered before it is set are buffered.
    ``highestmodseq`` follows the mailbox as changes are delivered.
    """

    def __init__(
        self,
        user: str,
        name: str,
        readonly: bool,
        snapshot: MailboxSnapshot,
    ) -> None:
        self.user = user
        self.name = name
        self.readonly = readonly
        self.snapshot = snapshot
        self.uidvalidity = snapshot.uidvalidity
        self.highestmodseq = snapshot.highestmodseq
        self.deleted = False
        self.closed = False
        self._listener: Listener | None = None
        self._buffered: list[ChangeEvent] = []

    @property
    def listener(self) -> Listener | None:
        return self._listener

    @listener.setter
    def listener(self, listener: Listener | None) -> None:
        self._listener = listener
        if listener is not None and self._buffered:
            buffered, self._buffered = self._buffered, []
            listener(buffered)

    def deliver(self, events: Sequence[ChangeEvent]) -> None:
        """Called by the backend with one batch of changes."""
        if not events or self.closed:
            return
        for event in events:
            if isinstance(event, MailboxRenamed):
                self.name = event.new_name
            elif isinstance(event, MailboxDeleted):
                self.deleted = True
        if self._listener is None:
            self._buffered.extend(events)
        else:
            self._listener(events)

    def close(self) -> None:
        """Stop receiving events (UNSELECT, CLOSE, SELECT of another mailbox,
        logout). Idempotent. Backends extend it to unregister."""
        self.closed = True
        self._listener = None
        self._buffered = []

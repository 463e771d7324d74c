"""MailboxWatch: the protocol-neutral catch-up state of one open mailbox.

``MailService.open`` returns one per session that opens a mailbox (IMAP
SELECT/EXAMINE, later a POP3 maildrop). It knows the state the session was
last brought to (HIGHESTMODSEQ, UIDNEXT, the UIDs it knows), the UID ranges
it claimed as ``\\Recent`` (RFC 3501 §2.3.2), and whether the doorbell rang
since it last caught up. It knows nothing of any protocol: what a client was
*told* is the protocol view's business (``imapd.imap.session.view``).

Changes reach the session only through ``catch_up()``: the doorbell
(``MailBackend.feed``) just sets ``rang`` and calls ``on_ring``; the session
then awaits ``catch_up()`` at a moment its protocol allows. No session ever
writes to another session's connection.
"""

from __future__ import annotations

from typing import Callable, Sequence

from imapd.mail.backend import MailBackend, MailboxRef
from imapd.mail.events import ChangeEvent
from imapd.mail.flags import FlagOp
from imapd.mail.records import (
    CopyResult, FlagState, MailboxSnapshot, MessageBody, MessageRecord, StoreResult,
)


class MailboxWatch:
    """One session's open mailbox. Built by ``MailService.open``.

    Attributes: ``user``; ``name`` (current; follows RENAME once caught
    up); ``readonly``; ``ref``; ``snapshot`` (as opened, with ``recent`` =
    the UIDs recent in this session); ``highestmodseq`` (as caught up);
    ``deleted`` (the mailbox went away); ``rang`` (a doorbell rang since the
    last ``catch_up``); ``on_ring`` (called on the reactor thread when it
    rings; must only schedule work, never write to a client).
    """

    user: str
    name: str
    readonly: bool
    ref: MailboxRef
    snapshot: MailboxSnapshot
    highestmodseq: int
    deleted: bool
    rang: bool
    on_ring: Callable[[], None] | None

    @property
    def uidvalidity(self) -> int:
        return self.ref.uidvalidity

    async def catch_up(self) -> list[ChangeEvent]:
        """Bring the watch up to date with one ``changes_since`` and return
        the changes as one batch in the order ``imapd.mail.events``
        describes (expunges, flag changes, additions with the subset recent
        in this session, rename, delete). A read-write watch claims new
        unclaimed messages (``claim_recent``); a read-only one reports
        unclaimed ones as recent without claiming (RFC 3501 §6.3.2). Safe to
        call when nothing changed (returns []); concurrent calls are
        serialized. Clears ``rang`` before reading, so a ring during the read
        is not lost."""
        raise NotImplementedError

    # Message operations on this mailbox; mutations through a read-only
    # watch raise ReadOnly, a deleted mailbox NoSuchMailbox.

    async def fetch_records(
        self, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        raise NotImplementedError

    async def fetch_flags(self, uids: Sequence[int] | None = None) -> list[FlagState]:
        raise NotImplementedError

    async def read_message(
        self, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        raise NotImplementedError

    async def open_message(self, uid: int) -> MessageBody | None:
        raise NotImplementedError

    async def store_flags(
        self,
        uids: Sequence[int],
        op: FlagOp,
        flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        """STORE; ``\\Recent`` or unknown system flags: InvalidFlag."""
        raise NotImplementedError

    async def expunge(self, uids: Sequence[int] | None = None) -> list[int]:
        raise NotImplementedError

    async def copy(self, uids: Sequence[int], target: str) -> CopyResult:
        """COPY to the mailbox named ``target`` (TargetMissing if it does
        not exist or is a placeholder)."""
        raise NotImplementedError

    async def move(self, uids: Sequence[int], target: str) -> CopyResult:
        raise NotImplementedError

    async def changes_since(self, modseq: int) -> list[FlagState]:
        """Messages (any UID) whose MODSEQ is above ``modseq``, ascending
        (RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.5). Does not move the watch."""
        raise NotImplementedError

    async def expunged_since(self, modseq: int) -> list[int]:
        """UIDs expunged with a MODSEQ above ``modseq``, ascending (RFC 7162
        §3.2.5.2 VANISHED (EARLIER)). Does not move the watch."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop watching (unsubscribe from the feed). Idempotent."""
        raise NotImplementedError

"""MailService: the mail rules every protocol uses, once, over any backend.

Hierarchy and subscription rules (RFC 3501 §6.3.3-§6.3.9, planned in
``imapd.mail.hierarchy`` and applied with ``MailBackend.edit_tree``), name
validation (``imapd.mail.names``), STATUS, ``open`` (a ``MailboxWatch``), and
``deliver`` = message analysis + one durable append (group commit is the
backend's: concurrent deliveries share commits). IMAP APPEND uses
``deliver`` now; LMTP, POP3 and admin use the same service next.

Errors are ``imapd.mail.errors``; names are Unicode with ``/`` as the
hierarchy delimiter, ``INBOX`` case-insensitive (see ``names``).
"""

from __future__ import annotations

from typing import Sequence

from imapd.core.runtime import Runtime
from imapd.mail.backend import MailBackend
from imapd.mail.records import AppendItem, AppendResult, MailboxInfo, MailboxStatus
from imapd.mail.watch import MailboxWatch


class MailService:
    """See the module docstring. ``runtime`` runs the analysis of large
    messages off the reactor thread (None: inline). ``default_mailboxes``:
    (name, special-use or None) created once per user (RFC 6154)."""

    def __init__(
        self,
        backend: MailBackend,
        runtime: Runtime | None = None,
        default_mailboxes: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        self.backend = backend
        self.runtime = runtime
        self.default_mailboxes = tuple(default_mailboxes)

    async def list_mailboxes(
        self, user: str, reference: str, pattern: str, subscribed_only: bool = False
    ) -> list[MailboxInfo]:
        """LIST / LSUB (RFC 3501 §6.3.8, §6.3.9), exactly as the old
        ``MailStore.list_mailboxes`` contract (INBOX first, then by name)."""
        raise NotImplementedError

    async def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> None:
        raise NotImplementedError

    async def delete_mailbox(self, user: str, name: str) -> None:
        raise NotImplementedError

    async def rename_mailbox(self, user: str, old: str, new: str) -> None:
        raise NotImplementedError

    async def subscribe(self, user: str, name: str) -> None:
        raise NotImplementedError

    async def unsubscribe(self, user: str, name: str) -> None:
        raise NotImplementedError

    async def subscriptions(self, user: str) -> list[str]:
        raise NotImplementedError

    async def status(self, user: str, name: str) -> MailboxStatus:
        raise NotImplementedError

    async def deliver(self, user: str, name: str, items: Sequence[AppendItem]) -> AppendResult:
        """Analyse each message (``imapd.message.analyze``; the blob becomes
        ``meta``, large messages analysed via ``runtime.in_thread``) and
        append them all in one atomic, durable call; the new messages are
        ``\\Recent`` for exactly one session (the longest-open read-write
        watch of the target in this process claims them in the same
        transaction, else the first session to catch up). Target missing or
        a placeholder: TargetMissing; bad flags: InvalidFlag."""
        raise NotImplementedError

    async def open(self, user: str, name: str, readonly: bool) -> MailboxWatch:
        """SELECT / EXAMINE (RFC 3501 §6.3.1, §6.3.2): a watch on the mailbox
        as of one committed state; read-write claims unclaimed messages as
        \\Recent. NoSuchMailbox for unknown names and placeholders."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close every open watch and the backend."""
        raise NotImplementedError

"""Mail errors: what went wrong, in mail terms, below every protocol.

The mail core and the storage engines raise these; each protocol maps them
once (IMAP: ``imapd.imap.commands.errors`` to NO/BAD with RFC 5530 codes;
later POP3 to ``-ERR [SYS/...]``, LMTP to enhanced status codes, RFC 3463).
``text`` is a human-readable reason a client may be shown.
"""

from __future__ import annotations


class MailError(Exception):
    """Base of every mail-level failure; a change that raised was not made."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class NoSuchMailbox(MailError):
    """The mailbox does not exist (or is a ``\\Noselect`` placeholder, or was
    deleted while open). IMAP: NO [NONEXISTENT] (RFC 5530 §3)."""


class TargetMissing(MailError):
    """The target of APPEND/COPY/MOVE does not exist. IMAP: NO [TRYCREATE]
    (RFC 3501 §6.3.11, §6.4.7)."""


class AlreadyExists(MailError):
    """A mailbox by that name exists. IMAP: NO [ALREADYEXISTS] (RFC 5530)."""


class HasChildren(MailError):
    """A placeholder with inferiors cannot be deleted. IMAP: NO [HASCHILDREN]
    (RFC 9051 §7.1)."""


class Cannot(MailError):
    """The operation can never succeed as asked (invalid name, DELETE INBOX,
    RENAME into itself). IMAP: NO [CANNOT] (RFC 5530)."""


class ReadOnly(MailError):
    """A change through a read-only open. IMAP: NO [READ-ONLY] (RFC 5530)."""


class OverQuota(MailError):
    """The change would exceed the user's quota. IMAP: NO [OVERQUOTA]
    (RFC 5530, RFC 9208)."""


class OverLimit(MailError):
    """A server limit (UID space, name length, mailbox count). IMAP: NO
    [LIMIT] (RFC 5530)."""


class InvalidFlag(MailError):
    """``\\Recent`` or an unknown system flag was given. IMAP: BAD (RFC 3501
    §2.3.2: ``\\Recent`` cannot be set by a client)."""


class Unavailable(MailError):
    """The store cannot serve the request now (busy past the bounded wait,
    database down); retrying later may work. IMAP: NO [UNAVAILABLE]."""


class StorageFull(MailError):
    """The store's disk is full: the change was not made, nothing is lost,
    and it can work again once space returns. IMAP: NO [OVERQUOTA] (RFC 5530
    §3; what Dovecot answers for ENOSPC); LMTP: 452 4.3.1 (RFC 3463)."""


class InUse(MailError):
    """Another session holds what this needs (e.g. an exclusive maildrop).
    IMAP: NO [INUSE] (RFC 5530)."""

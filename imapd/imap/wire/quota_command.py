"""The QUOTA commands (RFC 9208) as typed command objects; apart from
``imapd.imap.wire.commands`` (which re-exports them) to keep that module
one reader's length."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GetQuota:
    """``GETQUOTA quota-root-name`` (RFC 9208 §4.2); the root as sent."""

    tag: str
    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    """``GETQUOTAROOT mailbox`` (RFC 9208 §4.3)."""

    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    """``SETQUOTA quota-root-name (resource limit ...)`` (RFC 9208 §4.1.4);
    resource names upper-cased, in the order given (an empty list removes
    every limit)."""

    tag: str
    root: str
    limits: tuple[tuple[str, int], ...]

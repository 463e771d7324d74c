"""What a source (Maildir, mbox) hands the importer: folders of messages,
read lazily so a multi-gigabyte source is never held in memory."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Callable

from imapd.mail.watch import check_flags
from imapd.mail.errors import MailError

_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass
class SourceMessage:
    """One message: ``label`` names it in reports (a path, ``file@offset``);
    ``read()`` returns its bytes as the store keeps them (CRLF line ends;
    OSError/ValueError when unreadable); ``flags`` are IMAP flags (RFC 3501
    §2.3.2); ``internal_date`` is timezone-aware."""

    label: str
    read: Callable[[], bytes]
    flags: tuple[str, ...]
    internal_date: datetime.datetime
    size_hint: int = 0


@dataclass
class SourceFolder:
    """A folder: ``path`` is its name below the import root as hierarchy
    components (``()`` is the root: INBOX, or ``--folder``); ``problems``
    are items found unusable while scanning (label, reason), reported
    and counted as errors."""

    path: tuple[str, ...]
    label: str
    messages: list[SourceMessage] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def stored_form(raw: bytes) -> bytes:
    """The bytes to store: bare LF line ends become CRLF (RFC 5322 §2.1,
    as ``imapd deliver`` does), so RFC822.SIZE and fetched bodies are what
    IMAP clients expect; ValueError for an empty message."""
    if not raw.strip():
        raise ValueError("empty message")
    data = _BARE_LF.sub(b"\r\n", raw)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def valid_flags(flags: list[str]) -> tuple[str, ...]:
    """``flags`` without those IMAP would refuse (a keyword that is not an
    atom, RFC 3501 §9 flag-keyword), duplicates removed, order kept."""
    kept: list[str] = []
    for flag in flags:
        if flag in kept:
            continue
        try:
            check_flags((flag,))
        except MailError:
            continue
        kept.append(flag)
    return tuple(kept)


def from_timestamp(seconds: float) -> datetime.datetime:
    """A file time as an aware UTC datetime, whole seconds (the resolution
    of INTERNALDATE, RFC 3501 §2.3.3)."""
    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc)

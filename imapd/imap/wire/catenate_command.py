"""The parts of a CATENATE message (RFC 4469 §5): literal text, or an IMAP
URL of a message or section in one of the user's mailboxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from imapd.core.spool import MessageData


@dataclass(frozen=True, slots=True)
class CatText:
    """``TEXT literal``: octets taken as they are (a spooled literal when large)."""

    data: MessageData


@dataclass(frozen=True, slots=True)
class CatUrl:
    """``URL "..."``: the IMAP URL as the client wrote it (RFC 5092)."""

    url: str


CatenatePart = Union[CatText, CatUrl]

__all__ = ["CatText", "CatUrl", "CatenatePart"]

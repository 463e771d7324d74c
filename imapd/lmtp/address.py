"""Envelope paths (RFC 5321 §4.1.2) and recipient lookup for LMTP and the
delivery command: local part case-insensitive, domains configurable,
``user+detail`` subaddressing (RFC 5233) into the folder ``detail``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

# RFC 5321 §4.5.3.1.3: a path is at most 256 octets.
MAX_PATH = 256


class PathError(ValueError):
    """A malformed ``MAIL FROM:`` / ``RCPT TO:`` argument (501 5.5.4)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed ``FROM:<path> params`` argument: the address (``""`` for
    the null reverse-path ``<>``) and the ESMTP parameters, keys upper-case."""

    address: str
    params: dict[str, str]


def parse_path(argument: str, keyword: str) -> Envelope:
    """Parse ``KEYWORD:<address> [PARAM[=VALUE] ...]`` (RFC 5321 §4.1.1.2,
    §4.1.1.3); a space after the colon is tolerated, as Postfix does."""
    head, colon, rest = argument.partition(":")
    if not colon or head.strip().upper() != keyword:
        raise PathError(f"Syntax: {keyword}:<address>")
    rest = rest.lstrip(" ")
    if not rest.startswith("<") or ">" not in rest:
        raise PathError("Address must be in angle brackets")
    close = rest.index(">")
    address = rest[1:close]
    if len(address) > MAX_PATH or any(c in address for c in "<> \t\r\n"):
        raise PathError("Bad address")
    if address.startswith("@") and ":" in address:
        address = address.split(":", 1)[1]  # source route, RFC 5321 §4.1.2: ignored
    params: dict[str, str] = {}
    for word in rest[close + 1:].split():
        key, _, value = word.partition("=")
        params[key.upper()] = value
    return Envelope(address, params)


@dataclass(frozen=True, slots=True)
class Recipient:
    """An accepted recipient: the envelope address as given, the account,
    and the mailbox it goes to (``detail`` if that mailbox exists at
    delivery time, else INBOX)."""

    address: str
    user: str
    detail: str | None


Exists = Callable[[str], Awaitable[bool]]


async def resolve(address: str, domains: tuple[str, ...], separator: str,
                  exists: Exists) -> Recipient | None:
    """The account ``address`` names, or None (550 5.1.1). ``domains``:
    accepted domains (empty: any); ``separator``: the subaddress
    delimiter (empty: none). The user is tried as written, then
    lower-cased (local parts are matched case-insensitively here)."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if not local:
        return None
    if domains and domain.lower() not in domains:
        return None
    detail: str | None = None
    if separator and separator in local:
        local, detail = local.split(separator, 1)
        detail = detail or None
    for candidate in dict.fromkeys((local, local.lower())):
        if candidate and await exists(candidate):
            return Recipient(address, candidate, detail)
    return None

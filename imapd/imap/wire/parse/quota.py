"""Parsers for QUOTA (RFC 9208 §4.1, ABNF in §7): GETQUOTA, GETQUOTAROOT
and SETQUOTA. ``parse`` registers them in its command table; each function
quotes its ABNF and reads the arguments after the command name.
"""

from __future__ import annotations

from typing import Callable

from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import MAX_NUMBER64, ParseError, Reader

# SETQUOTA names each resource at most once; a list longer than the known
# resources is bounded anyway by the line limit, this keeps it small.
MAX_SETQUOTA_RESOURCES = 16


def _root(reader: Reader) -> str:
    """``quota-root-name = astring`` (RFC 9208 §7), as UTF-8."""
    try:
        return reader.astring("quota root").decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("Invalid quota root: not UTF-8") from None


def _getquota(reader: Reader, tag: str) -> c.Command:
    """``getquota = "GETQUOTA" SP quota-root-name`` (RFC 9208 §7)."""
    reader.sp("quota root")
    return c.GetQuota(tag, _root(reader))


def _getquotaroot(reader: Reader, tag: str) -> c.Command:
    """``getquotaroot = "GETQUOTAROOT" SP mailbox`` (RFC 9208 §7)."""
    reader.sp("mailbox name")
    return c.GetQuotaRoot(tag, reader.mailbox())


def _setquota(reader: Reader, tag: str) -> c.Command:
    """``setquota = "SETQUOTA" SP quota-root-name SP setquota-list``,
    ``setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"``,
    ``setquota-resource = resource-name SP resource-limit``,
    ``resource-limit = number64`` (RFC 9208 §7)."""
    reader.sp("quota root")
    root = _root(reader)
    reader.sp("quota limits")
    reader.expect(b"(", "Invalid quota limits: expected '('")
    limits: list[tuple[str, int]] = []
    while not reader.skip(b")"):
        if limits:
            reader.expect(b" ", "Invalid quota limits: expected space or ')'")
        if len(limits) >= MAX_SETQUOTA_RESOURCES:
            raise ParseError("Too many quota resources")
        name = reader.atom("resource name").decode("ascii").upper()
        reader.sp("resource limit")
        limits.append((name, reader.number("resource limit", MAX_NUMBER64)))
    return c.SetQuota(tag, root, tuple(limits))


QUOTA_COMMANDS: dict[str, Callable[[Reader, str], c.Command]] = {
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot,
    "SETQUOTA": _setquota,
}

__all__ = ["QUOTA_COMMANDS"]

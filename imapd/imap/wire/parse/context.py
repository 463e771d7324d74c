"""Grammar of search result options and contexts: ESEARCH (RFC 4731 §3.1),
SEARCHRES (RFC 5182 §4) and CONTEXT=SEARCH (RFC 5267 §4, §6)::

    search-return-opts = SP "RETURN" SP "(" [search-return-opt
                         *(SP search-return-opt)] ")"
    search-return-opt  =/ "MIN" / "MAX" / "ALL" / "COUNT" / "SAVE"
                          / "UPDATE" / "CONTEXT"
                          / "PARTIAL" SP partial-range
    partial-range      = nz-number ":" nz-number
    cancelupdate       = "CANCELUPDATE" 1*(SP quoted)

``PARTIAL 4:2`` is the same range as ``2:4`` (RFC 5267 §4.4: the range is
written low first in the response); ``*`` is not a number here, so
``PARTIAL 1:*`` is a syntax error.
"""

from __future__ import annotations

from typing import Callable

from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import ParseError, Reader

SearchReturn = tuple[tuple[str, ...] | None, tuple[int, int] | None]


def parse_search_return(reader: Reader) -> SearchReturn:
    """``[ "RETURN" SP "(" ... ")" SP ]`` at the start of the search program
    (grammar in the module docstring). Returns (options, partial range):
    options upper-cased without duplicates (PARTIAL among them when given),
    None without RETURN; the range (low, high) or None."""
    if not reader.peek_is(b"RETURN "):
        return None, None
    reader.pos += len(b"RETURN")
    reader.sp("search return options")
    reader.expect(b"(", "Invalid RETURN options: expected '('")
    options: list[str] = []
    partial: tuple[int, int] | None = None
    while not reader.skip(b")"):
        if options:
            reader.expect(b" ", "Invalid RETURN options: expected space or ')'")
        option = reader.keyword()
        if option == c.PARTIAL:
            if partial is not None:
                raise ParseError("PARTIAL given twice")
            partial = _partial_range(reader)
        elif option not in c.SEARCH_RETURN_OPTIONS and option not in c.CONTEXT_RETURN_OPTIONS:
            raise ParseError(f"Unsupported SEARCH RETURN option {option[:40]}")
        options.append(option)
    reader.sp("search criteria")
    return tuple(dict.fromkeys(options)), partial


def _partial_range(reader: Reader) -> tuple[int, int]:
    """``SP partial-range`` (RFC 5267 §6), low end first."""
    reader.sp("range for PARTIAL")
    first = reader.nz_number("range for PARTIAL")
    reader.expect(b":", "Invalid range for PARTIAL: expected ':'")
    second = reader.nz_number("range for PARTIAL")
    return (min(first, second), max(first, second))


def _cancelupdate(reader: Reader, tag: str) -> c.Command:
    """``"CANCELUPDATE" 1*(SP quoted)`` (RFC 5267 §4.3): the tags of the
    searches whose updates stop."""
    tags: list[str] = []
    while not reader.at_eol() or not tags:
        reader.sp("search tag")
        raw = reader.quoted("search tag")
        tags.append(raw.decode("utf-8", errors="replace"))
    return c.CancelUpdate(tag, tuple(tags))


CONTEXT_COMMANDS: dict[str, Callable[[Reader, str], c.Command]] = {
    "CANCELUPDATE": _cancelupdate,
}

__all__ = ["CONTEXT_COMMANDS", "parse_search_return"]

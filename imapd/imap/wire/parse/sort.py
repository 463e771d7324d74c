"""SORT and UID SORT arguments (RFC 5256 §4; RFC 5957 §4 display keys)::

    sort            = ["UID" SP] "SORT" [SP sort-return-opts] SP sort-criteria
                      SP search-criteria
    sort-return-opts = "RETURN" SP "(" [sort-return-opt *(SP sort-return-opt)] ")"
    sort-return-opt = "MIN" / "MAX" / "COUNT" / "ALL" / "PARTIAL" SP partial-range
                      (RFC 5267 §3.2, §4.4; ESORT)
    sort-criteria   = "(" sort-criterion *(SP sort-criterion) ")"
    sort-criterion  = ["REVERSE" SP] sort-key
    sort-key        = "ARRIVAL" / "CC" / "DATE" / "FROM" / "SIZE" /
                      "SUBJECT" / "TO" / "DISPLAYFROM" / "DISPLAYTO"
    search-criteria = charset 1*(SP search-key)

Unlike SEARCH, the charset is not optional and has no ``CHARSET`` keyword.
"""

from __future__ import annotations

from imapd.imap.wire.commands import CONTEXT_RETURN_OPTIONS
from imapd.imap.wire.lexer import ParseError, Reader
from imapd.imap.wire.parse.context import parse_search_return
from imapd.imap.wire.parse.search import SearchParser, parse_charset
from imapd.imap.wire.sort_command import SORT_RETURN_OPTIONS, Sort, SortCriterion, SortKey

# A key listed more than this many times is pointless; the bound keeps a
# client from making every comparison arbitrarily long.
MAX_CRITERIA = 32
_KEYS = {key.value: key for key in SortKey}


def _criterion(reader: Reader) -> SortCriterion:
    name = reader.atom("sort key").decode("ascii").upper()
    reverse = name == "REVERSE"
    if reverse:
        reader.sp("sort key after REVERSE")
        name = reader.atom("sort key").decode("ascii").upper()
    key = _KEYS.get(name)
    if key is None:
        raise ParseError(f"Unknown sort key {name[:40]}")
    return SortCriterion(key, reverse)


def parse_sort(reader: Reader, tag: str, uid: bool) -> Sort:
    """The arguments after ``SORT`` (see the module docstring)."""
    reader.sp("sort criteria")
    options, partial = parse_search_return(reader)
    for option in options or ():
        # CONTEXT=SORT (RFC 5267 §4) adds UPDATE and CONTEXT; SAVE is not for SORT here.
        if option not in SORT_RETURN_OPTIONS and option not in CONTEXT_RETURN_OPTIONS:
            raise ParseError(f"Unsupported SORT RETURN option {option[:40]}")
    reader.expect(b"(", "Invalid sort criteria: expected '('")
    program = [_criterion(reader)]
    while not reader.skip(b")"):
        reader.expect(b" ", "Invalid sort criteria: expected space or ')'")
        program.append(_criterion(reader))
        if len(program) > MAX_CRITERIA:
            raise ParseError("Too many sort criteria")
    reader.sp("charset")
    charset = parse_charset(reader)
    reader.sp("search criteria")
    criteria = SearchParser(reader, charset).criteria()
    return Sort(tag, uid, tuple(program), charset, criteria, options, partial)

"""SEARCH criteria (RFC 3501 §6.4.4, grammar §9 ``search-key``).

Synonyms are normalised as ``imapd.imap.wire.commands`` documents: FROM/TO/CC/
BCC/SUBJECT become ``SearchHeader``, flag keys become ``SearchFlag``,
``NEW`` is ``(RECENT UNSEEN)``, a parenthesised list is ``SearchAnd``.
Recursion (parentheses, NOT, OR) is counted against ``max_nesting`` so a
hostile ``NOT NOT NOT ...`` is a syntax error, not a stack overflow.

String values are decoded with the CHARSET: UTF-8 and US-ASCII (treated as
UTF-8, so raw UTF-8 from clients that forget CHARSET is accepted); for any
other charset the command still parses (undecodable octets replaced) so the
handler can answer ``NO [BADCHARSET]`` (RFC 3501 §6.4.4).
"""

from __future__ import annotations

from typing import Callable

from imapd.core.model import ANSWERED, DELETED, DRAFT, FLAGGED, RECENT, SEEN
from imapd.imap.wire.commands import (
    DateField,
    DateOp,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSeq,
    SearchSize,
    SearchText,
    SearchUid,
    TextScope,
)
from imapd.imap.wire.lexer import MAX_NUMBER64, ParseError, Reader

UTF8_CHARSETS = frozenset({"UTF-8", "US-ASCII"})

_FLAG_KEYS: dict[str, SearchFlag] = {
    "ANSWERED": SearchFlag(ANSWERED, True),
    "DELETED": SearchFlag(DELETED, True),
    "DRAFT": SearchFlag(DRAFT, True),
    "FLAGGED": SearchFlag(FLAGGED, True),
    "RECENT": SearchFlag(RECENT, True),
    "SEEN": SearchFlag(SEEN, True),
    "UNANSWERED": SearchFlag(ANSWERED, False),
    "UNDELETED": SearchFlag(DELETED, False),
    "UNDRAFT": SearchFlag(DRAFT, False),
    "UNFLAGGED": SearchFlag(FLAGGED, False),
    "UNSEEN": SearchFlag(SEEN, False),
    "OLD": SearchFlag(RECENT, False),
}
NEW_KEY = SearchAnd((SearchFlag(RECENT, True), SearchFlag(SEEN, False)))
HEADER_SHORTHANDS = frozenset({"FROM", "TO", "CC", "BCC", "SUBJECT"})
_DATE_KEYS: dict[str, tuple[DateField, DateOp]] = {
    "BEFORE": (DateField.INTERNAL, DateOp.BEFORE),
    "ON": (DateField.INTERNAL, DateOp.ON),
    "SINCE": (DateField.INTERNAL, DateOp.SINCE),
    "SENTBEFORE": (DateField.SENT, DateOp.BEFORE),
    "SENTON": (DateField.SENT, DateOp.ON),
    "SENTSINCE": (DateField.SENT, DateOp.SINCE),
}


def decode_search_string(raw: bytes, charset: str | None) -> str:
    """Decode a search value with the command's CHARSET (see module doc)."""
    if charset is None or charset in UTF8_CHARSETS:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("Search string is not valid UTF-8") from None
    return raw.decode("utf-8", errors="replace")


class SearchParser:
    """Parses the search keys of one command; holds the charset."""

    def __init__(self, reader: Reader, charset: str | None) -> None:
        self.reader = reader
        self.charset = charset

    def criteria(self) -> SearchAnd:
        """``search-key *(SP search-key)`` up to the end of the command."""
        keys = [self.key()]
        while not self.reader.at_eol():
            self.reader.expect(b" ", "Invalid search key: expected a space")
            keys.append(self.key())
        return SearchAnd(tuple(keys))

    def key(self) -> SearchKey:
        reader = self.reader
        if reader.at_eol():
            raise ParseError("Missing search key")
        if reader.skip(b"("):
            return self._parenthesized()
        first = reader.peek()
        if 0x30 <= first <= 0x39 or first in (0x2A, 0x24):  # digit, "*", "$"
            return SearchSeq(reader.seqset())
        name = reader.atom("search key").decode("ascii").upper()
        if name in _FLAG_KEYS:
            return _FLAG_KEYS[name]
        if name == "NEW":
            return NEW_KEY
        if name == "ALL":
            return SearchAll()
        handler = self._HANDLERS.get(name)
        if handler is None:
            raise ParseError(f"Unknown search key {name[:40]}")
        return handler(self, name)

    def _parenthesized(self) -> SearchAnd:
        reader = self.reader
        reader.enter()
        keys = [self.key()]
        while not reader.skip(b")"):
            if reader.at_eol():
                raise ParseError("Unbalanced parentheses in search criteria")
            reader.expect(b" ", "Invalid search key list: expected space or ')'")
            keys.append(self.key())
        reader.leave()
        return SearchAnd(tuple(keys))

    def _value(self, name: str, what: str = "value") -> str:
        self.reader.sp(f"{what} for {name}")
        return decode_search_string(self.reader.astring(f"{what} for {name}"), self.charset)

    def _header_short(self, name: str) -> SearchKey:
        return SearchHeader(name, self._value(name))

    def _header(self, name: str) -> SearchKey:
        self.reader.sp("header field name for HEADER")
        field = self.reader.astring("header field name for HEADER")
        if not field or any(c <= 0x20 or c >= 0x7F or c == 0x3A for c in field):
            raise ParseError("Invalid header field name for HEADER")
        return SearchHeader(field.decode("ascii").upper(), self._value(name))

    def _text(self, name: str) -> SearchKey:
        return SearchText(TextScope(name), self._value(name))

    def _keyword(self, name: str) -> SearchKey:
        self.reader.sp(f"keyword for {name}")
        keyword = self.reader.atom(f"keyword for {name}").decode("ascii")
        return SearchFlag(keyword, name == "KEYWORD")

    def _date(self, name: str) -> SearchKey:
        self.reader.sp(f"date for {name}")
        field, op = _DATE_KEYS[name]
        return SearchDate(field, op, self.reader.date())

    def _size(self, name: str) -> SearchKey:
        self.reader.sp(f"size for {name}")
        return SearchSize(name == "LARGER", self.reader.number(f"size for {name}", MAX_NUMBER64))

    def _uid(self, name: str) -> SearchKey:
        self.reader.sp("sequence set for UID")
        return SearchUid(self.reader.seqset("UID set"))

    def _not(self, name: str) -> SearchKey:
        self.reader.sp("search key after NOT")
        self.reader.enter()
        key = SearchNot(self.key())
        self.reader.leave()
        return key

    def _modseq(self, name: str) -> SearchKey:
        """``"MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer``
        (RFC 7162 §3.1.5), ``entry-name = DQUOTE "/flags/" attr-flag DQUOTE``,
        ``entry-type-req = "priv" / "shared" / "all"``."""
        reader = self.reader
        reader.sp("mod-sequence for MODSEQ")
        entry: str | None = None
        entry_type: str | None = None
        if reader.peek() in (0x22, 0x7B):
            raw = reader.string("entry name for MODSEQ")
            if not raw.lower().startswith(b"/flags/") or len(raw) == 7 or any(
                ch <= 0x20 or ch >= 0x7F for ch in raw
            ):
                raise ParseError("Invalid entry name for MODSEQ: expected \"/flags/<flag>\"")
            entry = raw.decode("ascii")
            reader.sp("entry type for MODSEQ")
            entry_type = reader.atom("entry type for MODSEQ").decode("ascii").lower()
            if entry_type not in ("priv", "shared", "all"):
                raise ParseError("Invalid entry type for MODSEQ: expected priv, shared or all")
            reader.sp("mod-sequence for MODSEQ")
        return SearchModSeq(reader.number("mod-sequence for MODSEQ", MAX_NUMBER64), entry, entry_type)

    def _or(self, name: str) -> SearchKey:
        self.reader.enter()
        self.reader.sp("first search key for OR")
        left = self.key()
        self.reader.sp("second search key for OR")
        right = self.key()
        self.reader.leave()
        return SearchOr(left, right)

    _HANDLERS: dict[str, Callable[[SearchParser, str], SearchKey]] = {
        **dict.fromkeys(HEADER_SHORTHANDS, _header_short),
        "HEADER": _header,
        "BODY": _text,
        "TEXT": _text,
        "KEYWORD": _keyword,
        "UNKEYWORD": _keyword,
        **dict.fromkeys(_DATE_KEYS, _date),
        "LARGER": _size,
        "SMALLER": _size,
        "UID": _uid,
        "NOT": _not,
        "OR": _or,
        "MODSEQ": _modseq,
    }


def parse_search_program(reader: Reader) -> tuple[str | None, SearchAnd]:
    """``[CHARSET SP astring SP] search-key *(SP search-key)`` after
    ``SEARCH SP``; returns (upper-cased charset or None, criteria)."""
    charset: str | None = None
    if reader.peek_is(b"CHARSET "):
        reader.pos += len(b"CHARSET")
        reader.sp("charset name")
        charset = parse_charset(reader)
        reader.sp("search criteria after CHARSET")
    return charset, SearchParser(reader, charset).criteria()


def parse_charset(reader: Reader) -> str:
    """A charset name (an astring of printable ASCII), upper-cased: SEARCH's
    CHARSET argument, and SORT's and THREAD's mandatory one (RFC 5256 §3)."""
    raw = reader.astring("charset name")
    if not raw or any(c < 0x21 or c > 0x7E for c in raw):
        raise ParseError("Invalid charset name")
    return raw.decode("ascii").upper()

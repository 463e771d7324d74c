"""Tokens of the IMAP command grammar (RFC 3501 §4, §9) over one frame.

``Reader`` walks a complete command frame (as produced by the framer:
lines with their line ends, literals inline) and reads one token at a time.
Every method either returns the token and advances, or raises
``ParseError`` with a reason a human can act on; ``parse_command`` turns
that into a ``CommandSyntaxError``. No method recurses, and nesting of
parentheses is counted against ``Limits.max_nesting`` by the callers via
``enter``/``leave``.
"""

from __future__ import annotations

import datetime
import re
from typing import Mapping

from imapd.core.model import SeqRange, SequenceSet, canonical_flag
from imapd.core.spool import MessageData, SpooledLiteral
from imapd.imap.wire.mutf7 import decode_mutf7

MAX_NUMBER = 2**32 - 1    # RFC 3501 §9 number: unsigned 32-bit
MAX_NUMBER64 = 2**63 - 1  # RFC 9051 number64, for sizes and offsets

# Character classes (RFC 3501 §9). CHAR is %x01-7F; CTL %x00-1F / %x7F.
_ATOM_SPECIALS = b'(){ %*"\\]'
ATOM_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in _ATOM_SPECIALS)
ASTRING_CHARS = ATOM_CHARS + b"]"
LIST_CHARS = ASTRING_CHARS + b"%*"
TAG_CHARS = bytes(c for c in ASTRING_CHARS if c != ord("+"))


def _class_pattern(chars: bytes) -> re.Pattern[bytes]:
    return re.compile(b"[" + b"".join(b"\\x%02x" % c for c in chars) + b"]+")


_ATOM = _class_pattern(ATOM_CHARS)
_ASTRING = _class_pattern(ASTRING_CHARS)
_LIST = _class_pattern(LIST_CHARS)
_TAG = _class_pattern(TAG_CHARS)
_DIGITS = re.compile(rb"[0-9]+")
# The longest mailbox name decoded at all: a name may have 1000 characters
# (``imapd.mail.names``), at most 8 octets each in modified UTF-7 (a lone
# non-BMP character is ``&`` + 6 base64 + ``-``); a longer one is refused
# in O(1), not after decoding (issue 13).
MAX_MAILBOX_OCTETS = 8 * 1024
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}(\r?\n)")
# Quoted string body: anything but CR, LF, NUL, quote and backslash, or a
# backslash-escaped quote/backslash. 8-bit octets are accepted (raw UTF-8,
# as RFC 6855 clients send it).
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_BAD_ESCAPE = re.compile(rb'"(?:[^"\\\r\n\x00]|\\["\\])*\\')
_SEQSET = re.compile(rb"(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?(?:,(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?)*")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([-+])([0-9]{2})([0-9]{2})"'
)


class ParseError(Exception):
    """A syntax error with a human-readable reason.

    ``invalid_name`` marks a well-formed argument whose mailbox name is not
    valid modified UTF-7: the command is syntactically fine, but no such
    mailbox can exist, so it is answered NO rather than BAD.
    """

    def __init__(self, reason: str, invalid_name: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.invalid_name = invalid_name


class Reader:
    """A cursor over one command frame. ``spooled`` maps the offset in
    ``data`` where a literal's octets would start to the spooled literal
    holding them (``framer.SpooledPart``; large literals are not inline)."""

    def __init__(
        self, data: bytes, max_nesting: int = 32,
        spooled: Mapping[int, SpooledLiteral] | None = None,
    ) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0
        self.max_nesting = max_nesting
        self.spooled = spooled or {}

    # --- position and punctuation --------------------------------------------

    def peek(self) -> int:
        """The next octet, or -1 at the end of the frame."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def peek_is(self, text: bytes) -> bool:
        """Case-insensitive look-ahead for ``text``."""
        return self.data[self.pos:self.pos + len(text)].upper() == text.upper()

    def at_eol(self) -> bool:
        """At the final line end (CRLF, or bare LF, see ``framer``)."""
        remaining = len(self.data) - self.pos
        return remaining <= 2 and self.data[self.pos:] in (b"\r\n", b"\n", b"")

    def end(self) -> None:
        """The command must be over here (RFC 3501 §9: command ends in CRLF)."""
        if not self.at_eol():
            if self.peek() == 0x20:
                raise ParseError("Unexpected extra arguments")
            raise ParseError("Unexpected characters at end of command")

    def sp(self, before: str = "argument") -> None:
        """One space, which must be followed by the named argument."""
        if self.peek() != 0x20:
            if self.at_eol():
                raise ParseError(f"Missing {before}")
            raise ParseError(f"Expected a space before {before}")
        self.pos += 1
        if self.at_eol():
            raise ParseError(f"Missing {before}")

    def skip(self, char: bytes) -> bool:
        """Consume ``char`` if it is next."""
        if self.data[self.pos:self.pos + 1] == char:
            self.pos += 1
            return True
        return False

    def expect(self, char: bytes, reason: str) -> None:
        if not self.skip(char):
            raise ParseError(reason)

    def enter(self) -> None:
        """One level deeper in parentheses or NOT/OR operands."""
        self.depth += 1
        if self.depth > self.max_nesting:
            raise ParseError("Too deeply nested")

    def leave(self) -> None:
        self.depth -= 1

    # --- simple tokens ---------------------------------------------------------

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        found = pattern.match(self.data, self.pos)
        if found is None:
            raise ParseError(f"Missing {what}" if self.at_eol() else f"Invalid {what}")
        self.pos = found.end()
        return found.group()

    def tag(self) -> bytes:
        return self._match(_TAG, "tag")

    def atom(self, what: str = "atom") -> bytes:
        return self._match(_ATOM, what)

    def keyword(self) -> str:
        """An atom read as an upper-cased keyword (command and item names)."""
        return self.atom("keyword").decode("ascii").upper()

    def number(self, what: str = "number", limit: int = MAX_NUMBER) -> int:
        digits = self._match(_DIGITS, what)
        if len(digits) > 20 or int(digits) > limit:
            raise ParseError(f"Invalid {what}: too large")
        return int(digits)

    def nz_number(self, what: str = "number", limit: int = MAX_NUMBER) -> int:
        value = self.number(what, limit)
        if value == 0:
            raise ParseError(f"Invalid {what}: must not be zero")
        return value

    # --- strings ---------------------------------------------------------------

    def quoted(self, what: str) -> bytes:
        found = _QUOTED.match(self.data, self.pos)
        if found is None:
            if _BAD_ESCAPE.match(self.data, self.pos):
                raise ParseError(f"Invalid escape in quoted {what}")
            raise ParseError(f"Unterminated or invalid quoted {what}")
        self.pos = found.end()
        return re.sub(rb'\\(["\\])', rb"\1", found.group(1))

    def literal(self, what: str, binary_ok: bool = False) -> bytes:
        """``{n}CRLF`` + n octets (also ``{n+}``, RFC 7888; ``~{n}`` when
        ``binary_ok``, RFC 3516). The framer already checked the sizes.
        A spooled literal is copied into memory: use ``literal_data`` where
        the value may stay in its spool file (APPEND messages)."""
        content = self.literal_data(what, binary_ok)
        return content if isinstance(content, bytes) else bytes(content)

    def literal_data(self, what: str, binary_ok: bool = False) -> MessageData:
        """Like ``literal``, but a spooled literal is returned as it is."""
        found = _LITERAL.match(self.data, self.pos)
        if found is None:
            raise ParseError(f"Invalid literal for {what}")
        if found.group(1) and not binary_ok:
            raise ParseError(f"literal8 not allowed for {what}")
        size = int(found.group(2))
        start = found.end()
        spooled = self.spooled.get(start)
        if spooled is not None:
            if len(spooled) != size:
                raise ParseError(f"Truncated literal for {what}")
            if not found.group(1) and spooled.find(b"\x00") >= 0:
                raise ParseError(f"NUL octet in literal for {what}")  # RFC 3501 §4.3
            self.pos = start  # its octets are not in ``data``
            return spooled
        if start + size > len(self.data):
            raise ParseError(f"Truncated literal for {what}")
        content = self.data[start:start + size]
        if not found.group(1) and b"\x00" in content:
            raise ParseError(f"NUL octet in literal for {what}")  # RFC 3501 §4.3
        self.pos = start + size
        return content

    def string(self, what: str) -> bytes:
        """RFC 3501 ``string = quoted / literal``."""
        if self.peek() == 0x22:
            return self.quoted(what)
        if self.peek() == 0x7B:
            return self.literal(what)
        raise ParseError(f"Missing {what}" if self.at_eol() else f"Invalid {what}: expected a string")

    def astring(self, what: str) -> bytes:
        """RFC 3501 ``astring = 1*ASTRING-CHAR / string``."""
        if self.peek() in (0x22, 0x7B):
            return self.string(what)
        return self._match(_ASTRING, what)

    def list_mailbox(self, what: str = "mailbox pattern") -> bytes:
        """RFC 3501 ``list-mailbox = 1*list-char / string``."""
        if self.peek() in (0x22, 0x7B):
            return self.string(what)
        return self._match(_LIST, what)

    def mailbox(self, what: str = "mailbox name") -> str:
        """RFC 3501 ``mailbox = "INBOX" / astring``, decoded from modified
        UTF-7 (§5.1.3); ``INBOX`` in any case becomes ``"INBOX"`` (§5.1)."""
        return normalize_mailbox(self.decode_mailbox(self.astring(what), what))

    @staticmethod
    def decode_mailbox(raw: bytes, what: str) -> str:
        if len(raw) > MAX_MAILBOX_OCTETS:  # refused before any decoding work
            raise ParseError(f"Invalid {what}: too long", invalid_name=True)
        try:
            return decode_mutf7(raw)
        except ValueError as exc:
            raise ParseError(f"Invalid {what}: {exc}", invalid_name=True) from None

    @staticmethod
    def decode_pattern(raw: bytes) -> str:
        """A LIST/LSUB reference or pattern (RFC 3501 §6.3.8). One that is
        not valid modified UTF-7 is taken as written (8-bit as UTF-8), so
        LIST answers OK with whatever matches it, which is normally nothing
        (imaptest's ``atoms`` script expects ``ok`` here)."""
        try:
            return decode_mutf7(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    # --- compound tokens ---------------------------------------------------------

    def seqset(self, what: str = "sequence set") -> SequenceSet:
        """RFC 3501 ``sequence-set`` (ranges in any order, ``*``), or ``$``
        (RFC 5182 SEARCHRES)."""
        if self.skip(b"$"):
            return SequenceSet((), saved=True)
        text = self._match(_SEQSET, what)
        ranges: list[SeqRange] = []
        for element in text.split(b","):
            low, _, high = element.partition(b":")
            start = self._seq_number(low, what)
            ranges.append(SeqRange(start, self._seq_number(high, what) if high else start))
        return SequenceSet(tuple(ranges))

    @staticmethod
    def _seq_number(text: bytes, what: str) -> int | None:
        if text == b"*":
            return None
        if len(text) > 10 or not 0 < int(text) <= MAX_NUMBER:
            raise ParseError(f"Invalid {what}: numbers must be 1 to 4294967295")
        return int(text)

    def date(self) -> datetime.date:
        """RFC 3501 ``date = date-text / DQUOTE date-text DQUOTE``."""
        quoted = self.skip(b'"')
        found = _DATE.match(self.data, self.pos)
        if found is None:
            raise ParseError("Missing date" if self.at_eol() else "Invalid date (expected d-Mon-yyyy)")
        self.pos = found.end()
        if quoted:
            self.expect(b'"', "Unterminated quoted date")
        day, month, year = found.groups()
        return _make_date(int(day), _month(month), int(year))

    def date_time(self) -> datetime.datetime:
        """RFC 3501 ``date-time``: ``"dd-Mon-yyyy hh:mm:ss +zzzz"``."""
        found = _DATE_TIME.match(self.data, self.pos)
        if found is None:
            raise ParseError("Invalid date-time (expected \"dd-Mon-yyyy hh:mm:ss +zzzz\")")
        self.pos = found.end()
        day, month, year, hour, minute, second, sign, zone_h, zone_m = found.groups()
        try:
            offset = datetime.timedelta(hours=int(zone_h), minutes=int(zone_m))
            zone = datetime.timezone(-offset if sign == b"-" else offset)
            return datetime.datetime(
                int(year), _month(month), int(day.strip()),
                int(hour), int(minute), int(second), tzinfo=zone,
            )
        except ValueError:
            raise ParseError("Invalid date-time: out of range") from None

    def flag(self) -> str:
        """RFC 3501 ``flag``: a system flag (``\\Seen``), ``\\``-extension or
        keyword atom, with system flags in canonical spelling."""
        backslash = self.skip(b"\\")
        name = self.atom("flag").decode("ascii")
        return canonical_flag("\\" + name) if backslash else name

    def flag_list(self) -> tuple[str, ...]:
        """RFC 3501 ``flag-list = "(" [flag *(SP flag)] ")"``."""
        self.expect(b"(", "Invalid flag list: expected '('")
        flags: list[str] = []
        while not self.skip(b")"):
            if flags:
                self.expect(b" ", "Invalid flag list: expected space or ')'")
            if self.at_eol():
                raise ParseError("Unterminated flag list")
            flags.append(self.flag())
        return tuple(flags)


def normalize_mailbox(name: str) -> str:
    """``INBOX`` is case-insensitive (RFC 3501 §5.1); other names are not."""
    return "INBOX" if name.upper() == "INBOX" else name


def _month(name: bytes) -> int:
    try:
        return _MONTHS.index(name.decode("ascii").upper()) + 1
    except ValueError:
        raise ParseError("Invalid month name in date") from None


def _make_date(day: int, month: int, year: int) -> datetime.date:
    try:
        return datetime.date(year, month, day)
    except ValueError:
        raise ParseError("Invalid date: out of range") from None

"""Client-side IMAP response parsing for the load generator (RFC 3501 §7, §9).

The load generator must not trust a server: every response is parsed here
and anything that does not follow the RFC 3501 §9 grammar (closely enough
for a real client to use it) raises ``Malformed``. A fast server that
answers garbage must show up as errors, not as throughput.

``split_response`` finds where one response ends on the wire (lines and
``{n}`` literals). ``parse_response`` turns it into a ``Response``.
Values are: ``bytes`` (atom, quoted string, literal or number text),
``None`` (NIL) and ``list`` (parenthesized list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

Value = Union[bytes, None, "list[Value]"]

STATUS_WORDS = frozenset({b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH"})
TAGGED_STATUS = frozenset({b"OK", b"NO", b"BAD"})
# Untagged data names after "* " that take arbitrary values (RFC 3501 §7.2,
# RFC 4731 ESEARCH, RFC 5161 ENABLED, RFC 2971 ID, RFC 2342 NAMESPACE,
# RFC 7162 VANISHED).
DATA_NAMES = frozenset({
    b"CAPABILITY", b"LIST", b"LSUB", b"STATUS", b"SEARCH", b"FLAGS", b"ESEARCH",
    b"ENABLED", b"ID", b"NAMESPACE", b"VANISHED", b"SORT", b"THREAD", b"XLIST",
})
NUMBERED = frozenset({b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH"})

# One token of a value: a parenthesis, NIL, a quoted string, a literal
# header, or an atom (which may carry a [section] with spaces and parens
# inside, and a <partial> suffix: BODY[HEADER.FIELDS (FROM)]<0>).
_TOKEN = re.compile(
    rb"(?P<open>\()|(?P<close>\))"
    rb'|"(?P<quoted>(?:[^"\\\r\n]|\\["\\])*)"'
    rb"|~?\{(?P<literal>\d+)\+?\}\r\n"
    rb"|(?P<atom>[^ ()\"{\r\n\[\]\x00-\x1f\x7f]+(?:\[[^\]\r\n]*\](?:<\d+>)?)?)"
)
_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\+?\}\r\n$")
_NUMBER = re.compile(rb"\d+")
_TAG = re.compile(rb"[^ (){%*\"\\\]\x00-\x1f\x7f+]+")
_UNQUOTE = re.compile(rb'\\(["\\])')


class Malformed(Exception):
    """A response that breaks the RFC 3501 §9 grammar."""


@dataclass(slots=True)
class Response:
    """One server response.

    ``kind`` is ``"tagged"``, ``"untagged"`` or ``"continuation"``. For a
    status response ``name`` is OK/NO/BAD/BYE/PREAUTH, ``code`` the text of
    a ``[resp-text-code]`` (without brackets) and ``text`` the human text.
    For numbered data (``* 3 FETCH``) ``number`` is set and ``name`` is the
    data name; ``values`` holds the parsed values after the name.
    """

    kind: str
    tag: bytes = b""
    name: bytes = b""
    number: int | None = None
    code: bytes | None = None
    text: bytes = b""
    values: list[Value] = field(default_factory=list)
    raw: bytes = b""


def literal_length(line: bytes) -> int | None:
    """If ``line`` (ending with CRLF) ends with a literal header ``{n}``,
    the literal's length, else None."""
    match = _LITERAL_AT_END.search(line, max(0, len(line) - 24))
    return int(match.group(1)) if match else None


def unquote(value: bytes) -> bytes:
    return _UNQUOTE.sub(rb"\1", value)


def parse_values(raw: bytes, pos: int, end: int) -> list[Value]:
    """Parse space-separated values from ``raw[pos:end]`` (end = start of
    the final CRLF). Raises ``Malformed``."""
    stack: list[list[Value]] = [[]]
    expect_space = False
    while pos < end:
        if expect_space:
            if raw[pos] == 0x29 or (raw[pos] == 0x28 and raw[pos - 1] == 0x29):
                pass  # ')' may follow a value, '(' a ')' (1*body, address lists)
            elif raw[pos] != 0x20:
                raise Malformed(f"expected SP at {pos}: {raw[pos:pos + 20]!r}")
            else:
                pos += 1
                if pos >= end or raw[pos] == 0x29:
                    raise Malformed(f"stray SP at {pos - 1}")
        match = _TOKEN.match(raw, pos)
        if match is None:
            raise Malformed(f"bad token at {pos}: {raw[pos:pos + 20]!r}")
        group = match.lastgroup
        pos = match.end()
        expect_space = True
        if group == "open":
            stack.append([])
            expect_space = False
        elif group == "close":
            if len(stack) == 1:
                raise Malformed(f"unbalanced ')' at {pos - 1}")
            inner = stack.pop()
            stack[-1].append(inner)
        elif group == "quoted":
            stack[-1].append(unquote(match.group("quoted")))
        elif group == "literal":
            size = int(match.group("literal"))
            if pos + size > end:  # the literal may not run past the data
                raise Malformed("literal longer than the response")
            stack[-1].append(raw[pos:pos + size])
            pos += size
        else:
            atom = match.group("atom")
            stack[-1].append(None if atom == b"NIL" else atom)
    if len(stack) != 1:
        raise Malformed("unbalanced '('")
    return stack[0]


def _status_tail(raw: bytes, pos: int, end: int) -> tuple[bytes | None, bytes]:
    """resp-text after a status word: optional ``[code]`` then text."""
    if pos >= end:
        return None, b""  # RFC 3501 requires text, but many servers omit it
    if raw[pos] != 0x20:
        raise Malformed("expected SP after status word")
    pos += 1
    if pos < end and raw[pos] == 0x5B:  # '['
        close = raw.find(b"]", pos, end)
        if close < 0:
            raise Malformed("unterminated response code")
        code = raw[pos + 1:close]
        if not code:
            raise Malformed("empty response code")
        return code, raw[close + 1:end].lstrip(b" ")
    return None, raw[pos:end]


def parse_response(raw: bytes) -> Response:
    """Parse one complete response (as delimited by the wire, CRLF
    included). Raises ``Malformed``."""
    if not raw.endswith(b"\r\n"):
        raise Malformed("response does not end with CRLF")
    end = len(raw) - 2
    if raw.startswith(b"+"):
        if raw[1:2] not in (b" ", b"\r"):
            raise Malformed("continuation without SP")
        return Response("continuation", text=raw[2:end], raw=raw)
    space = raw.find(b" ", 0, end)
    if space <= 0:
        raise Malformed(f"no tag: {raw[:40]!r}")
    tag = raw[:space]
    word_end = raw.find(b" ", space + 1, end)
    if word_end < 0:
        word_end = end
    word = raw[space + 1:word_end]
    if tag != b"*":
        if not _TAG.fullmatch(tag):
            raise Malformed(f"invalid tag {tag!r}")
        if word.upper() not in TAGGED_STATUS:
            raise Malformed(f"tagged response without OK/NO/BAD: {raw[:60]!r}")
        code, text = _status_tail(raw, word_end, end)
        return Response("tagged", tag=tag, name=word.upper(), code=code, text=text, raw=raw)
    upper = word.upper()
    if upper in STATUS_WORDS:
        code, text = _status_tail(raw, word_end, end)
        return Response("untagged", tag=b"*", name=upper, code=code, text=text, raw=raw)
    if upper in DATA_NAMES:
        values = parse_values(raw, word_end + 1, end) if word_end < end else []
        return Response("untagged", tag=b"*", name=upper, values=values, raw=raw)
    if _NUMBER.fullmatch(word):
        name_end = raw.find(b" ", word_end + 1, end)
        if name_end < 0:
            name_end = end
        name = raw[word_end + 1:name_end].upper()
        if name not in NUMBERED:
            raise Malformed(f"unknown numbered data {name!r}")
        values = parse_values(raw, name_end + 1, end) if name_end < end else []
        if name == b"FETCH" and (len(values) != 1 or not isinstance(values[0], list)):
            raise Malformed("FETCH data is not one parenthesized list")
        return Response("untagged", tag=b"*", name=name, number=int(word), values=values, raw=raw)
    raise Malformed(f"unknown untagged response {raw[:60]!r}")


def fetch_items(response: Response) -> dict[bytes, Value]:
    """The msg-att of a FETCH response as {ITEM NAME (upper-cased): value}.
    Raises ``Malformed`` if it is not name/value pairs."""
    if response.name != b"FETCH" or not response.values:
        raise Malformed("not a FETCH response")
    items = response.values[0]
    assert isinstance(items, list)
    if len(items) % 2:
        raise Malformed("FETCH msg-att has an odd number of elements")
    result: dict[bytes, Value] = {}
    for i in range(0, len(items), 2):
        name = items[i]
        if not isinstance(name, bytes):
            raise Malformed("FETCH item name is not an atom")
        result[name.upper()] = items[i + 1]
    return result

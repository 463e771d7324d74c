"""The stress checker's own IMAP response reader (RFC 3501 §7, §9).

Deliberately independent of ``imapd.imap.wire``: the checker must not share the
server's parser, or a bug in it would be made on both sides and cancel out.
It understands only what the checker asks for: status responses with their
response codes (RFC 3501 §7.1), EXISTS/RECENT/EXPUNGE (§7.3, §7.4.1),
FLAGS (§7.2.6), FETCH with FLAGS/UID/MODSEQ (§7.4.2, RFC 7162 §3.1.4),
VANISHED (RFC 7162 §3.2.10) and continuation requests (§7.5). Literals
(``{n}`` at the end of a line, §4.3) are read and kept inline.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Union

# A parsed token: an atom or number (str), a quoted/literal string (Quoted),
# or a parenthesised list.
Token = Union[str, "Quoted", list["Token"]]
_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}$")
_STATUS = {"OK", "NO", "BAD", "BYE", "PREAUTH"}
# One token after optional white space: ( ) "quoted" {literal}CRLF atom
# (RFC 3501 §4; atoms here may hold brackets, e.g. BODY[...]).
_TOKEN = re.compile(rb'[ \r\n]*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|\{(\d+)\+?\}\r\n|([^ ()"\r\n]+))')
_UNESCAPE = re.compile(rb"\\(.)")


@dataclass(frozen=True)
class Quoted:
    """A string that was quoted or a literal (so ``"NIL"`` is not NIL)."""

    text: str


@dataclass
class Response:
    """One server response. ``tag`` is ``*``, ``+`` or the command's tag;
    ``number`` the leading number of ``* n WORD``; ``word`` the response
    name, upper-cased; ``code``/``code_args`` the ``[...]`` response code
    of a status response; ``data`` the tokens after the word."""

    raw: bytes
    tag: str
    word: str = ""
    number: int | None = None
    code: str | None = None
    code_args: list[Token] = field(default_factory=list)
    data: list[Token] = field(default_factory=list)
    text: str = ""


def tokenize(data: bytes, pos: int = 0) -> tuple[list[Token], int]:
    """Tokens from ``pos`` to the end of ``data`` or to an unmatched ``)``;
    returns them and the position after that ``)`` (or the end)."""
    stack: list[list[Token]] = [[]]
    while (match := _TOKEN.match(data, pos)) is not None:
        pos = match.end()
        opening, closing, quoted, literal, atom = match.groups()
        if opening:
            inner: list[Token] = []
            stack[-1].append(inner)
            stack.append(inner)
        elif closing:
            if len(stack) == 1:
                return stack[0], pos
            stack.pop()
        elif quoted is not None:
            stack[-1].append(Quoted(_UNESCAPE.sub(rb"\1", quoted).decode("utf-8", "replace")))
        elif literal is not None:
            size = int(literal)
            stack[-1].append(Quoted(data[pos:pos + size].decode("utf-8", "replace")))
            pos += size
        else:
            stack[-1].append(atom.decode("utf-8", "replace"))
    return stack[0], len(data)


def _status_tail(response: Response, rest: bytes) -> None:
    """Response code and text of a status response (RFC 3501 §7.1)."""
    if rest.startswith(b"["):
        close = rest.find(b"]")
        if close < 0:
            close = len(rest)
        name, _, args = rest[1:close].partition(b" ")
        response.code = name.decode("ascii", "replace").upper()
        response.code_args, _ = tokenize(args)
        rest = rest[close + 1:].lstrip(b" ")
    response.text = rest.decode("utf-8", "replace")


def parse_response(line: bytes) -> Response:
    """One response line (without its final CRLF, literals inline)."""
    if line == b"+" or line.startswith(b"+ "):
        return Response(line, "+", text=line[2:].decode("utf-8", "replace"))
    tag, _, rest = line.partition(b" ")
    response = Response(line, tag.decode("ascii", "replace"))
    first, _, tail = rest.partition(b" ")
    if tag == b"*" and first.isdigit():
        response.number = int(first)
        first, _, tail = tail.partition(b" ")
    response.word = first.decode("ascii", "replace").upper()
    if response.word in _STATUS:
        _status_tail(response, tail)
    else:
        response.data, _ = tokenize(tail)
    return response


def atoms(tokens: list[Token]) -> list[str]:
    """The atoms of a flat list (flag lists); anything else is skipped."""
    return [token for token in tokens if isinstance(token, str)]


def fetch_items(tokens: list[Token]) -> dict[str, Token]:
    """``FETCH (NAME value ...)`` as a dict with upper-cased names."""
    items = tokens[0] if tokens and isinstance(tokens[0], list) else []
    out: dict[str, Token] = {}
    for index in range(0, len(items) - 1, 2):
        name = items[index]
        if isinstance(name, str):
            out[name.upper()] = items[index + 1]
    return out


class LineReader:
    """Reads whole responses from an asyncio stream: a line whose end
    announces a literal continues after the literal's bytes (RFC 3501 §4.3)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.received = 0

    async def response(self) -> bytes:
        """The next response, literals inline, without the last CRLF."""
        parts: list[bytes] = []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            self.received += len(line)
            parts.append(line)
            match = _LITERAL_AT_END.search(line[:-2])
            if match is None:
                return b"".join(parts)[:-2]
            literal = await self.reader.readexactly(int(match.group(1)))
            self.received += len(literal)
            parts.append(literal)

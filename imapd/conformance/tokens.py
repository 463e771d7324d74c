"""Tokenising script lines and server responses (conformance README §5).

Script expectations and server responses are split into the same five kinds
of IMAP arguments — atom, quoted string, literal, NIL and list — the way
Dovecot's ``imap_parser`` does with ``ATOM_ALLCHARS``, so that both sides
line up argument by argument (``body[header.fields (from)]`` becomes the atom
``body[header.fields``, the list ``(from)`` and the atom ``]`` on both sides).

Everything here works on ``bytes``: literals may hold 8-bit data and NULs.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class ArgKind(enum.Enum):
    """The five argument types of README §5."""

    ATOM = "atom"
    STRING = "string"
    LITERAL = "literal"
    NIL = "nil"
    LIST = "list"


#: Kinds whose ``text`` is compared as a string (README §8.1: the type of an
#: atom, quoted string or literal is irrelevant when matching).
TEXT_KINDS = frozenset({ArgKind.ATOM, ArgKind.STRING, ArgKind.LITERAL})


@dataclass(frozen=True)
class Arg:
    """One IMAP argument: ``text`` for atoms/strings/literals, ``items`` for lists."""

    kind: ArgKind
    text: bytes = b""
    items: tuple[Arg, ...] = field(default_factory=tuple)
    literal8: bool = False

    @property
    def is_text(self) -> bool:
        return self.kind in TEXT_KINDS


def atom(text: bytes) -> Arg:
    return Arg(ArgKind.ATOM, text)


def make_list(items: list[Arg] | tuple[Arg, ...]) -> Arg:
    return Arg(ArgKind.LIST, items=tuple(items))


class TokenizeError(ValueError):
    """A syntax error; ``args`` holds what was parsed before it (README §5, lenient parsing)."""

    def __init__(self, message: str, args: list[Arg]) -> None:
        super().__init__(message)
        self.args_before_error = args


_LITERAL_RE = re.compile(rb"(~?)\{(\d+)(\+?)\}(\r?\n)")


class _Tokenizer:
    """Recursive-descent tokenizer over one logical line (README §5)."""

    def __init__(self, data: bytes, *, multiline_strings: bool) -> None:
        self.data = data
        self.pos = 0
        # Script lines (MULTILINE_STR) may carry CR/LF inside quoted strings.
        self.multiline_strings = multiline_strings

    def parse_top(self) -> list[Arg]:
        result: list[Arg] = []
        try:
            self._parse_items(result, in_list=False)
        except TokenizeError as exc:
            raise TokenizeError(str(exc), result) from None
        return result

    def _skip_spaces(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] == 0x20:
            self.pos += 1

    def _at_line_end(self) -> bool:
        return self.pos >= len(self.data) or self.data[self.pos] in b"\r\n"

    def _parse_items(self, out: list[Arg], *, in_list: bool) -> None:
        while True:
            self._skip_spaces()
            if self._at_line_end():
                if in_list:
                    raise TokenizeError("unterminated list", out)
                return
            byte = self.data[self.pos]
            if byte == 0x29:  # ')'
                if in_list:
                    self.pos += 1
                    return
                raise TokenizeError("unexpected ')'", out)
            out.append(self._parse_one(in_list=in_list))

    def _parse_one(self, *, in_list: bool) -> Arg:
        byte = self.data[self.pos]
        if byte == 0x28:  # '('
            self.pos += 1
            items: list[Arg] = []
            try:
                self._parse_items(items, in_list=True)
            except TokenizeError as exc:
                raise TokenizeError(str(exc), items) from None
            return make_list(items)
        if byte == 0x22:  # '"'
            return self._parse_quoted()
        if byte == 0x7B or (byte == 0x7E and self.data[self.pos + 1 : self.pos + 2] == b"{"):
            return self._parse_literal()
        return self._parse_atom(in_list=in_list)

    def _parse_quoted(self) -> Arg:
        self.pos += 1
        text = bytearray()
        while self.pos < len(self.data):
            byte = self.data[self.pos]
            if byte == 0x22:
                self.pos += 1
                return Arg(ArgKind.STRING, bytes(text))
            if byte == 0x5C and self.pos + 1 < len(self.data):  # backslash escape
                self.pos += 1
                byte = self.data[self.pos]
            elif byte in b"\r\n" and not self.multiline_strings:
                raise TokenizeError("CR/LF inside quoted string", [])
            text.append(byte)
            self.pos += 1
        raise TokenizeError("unterminated quoted string", [])

    def _parse_literal(self) -> Arg:
        match = _LITERAL_RE.match(self.data, self.pos)
        if match is None:
            raise TokenizeError("invalid literal", [])
        size = int(match.group(2))
        start = match.end()
        if start + size > len(self.data):
            raise TokenizeError("literal longer than the data", [])
        self.pos = start + size
        return Arg(ArgKind.LITERAL, self.data[start : start + size], literal8=bool(match.group(1)))

    def _parse_atom(self, *, in_list: bool) -> Arg:
        start = self.pos
        stop_bytes = b" \r\n)" if in_list else b" \r\n"
        while self.pos < len(self.data) and self.data[self.pos] not in stop_bytes:
            self.pos += 1
        text = self.data[start : self.pos]
        if text.upper() == b"NIL":
            return Arg(ArgKind.NIL, text)
        return Arg(ArgKind.ATOM, text)


def tokenize_script(data: bytes) -> list[Arg]:
    """Tokenise a script line strictly (quoted strings may span lines); raises TokenizeError."""
    return _Tokenizer(data, multiline_strings=True).parse_top()


def tokenize_response(data: bytes) -> list[Arg]:
    """Tokenise server input leniently: on a syntax error keep the arguments before it.

    README §5: the human-readable text after OK/NO/BAD/BYE is parsed as ordinary
    arguments too, and only the leading ones matter.
    """
    try:
        return _Tokenizer(data, multiline_strings=False).parse_top()
    except TokenizeError as exc:
        return exc.args_before_error


def format_args(args: list[Arg] | tuple[Arg, ...], *, limit: int = 400) -> str:
    """Render arguments for messages: strings quoted, literals shown as ``{N}"..."``."""
    text = " ".join(_format_arg(arg) for arg in args)
    if len(text) > limit:
        return text[:limit] + f"... ({len(text) - limit} more chars)"
    return text


def _format_arg(arg: Arg) -> str:
    if arg.kind is ArgKind.LIST:
        return "(" + " ".join(_format_arg(item) for item in arg.items) + ")"
    if arg.kind is ArgKind.STRING:
        return '"' + printable(arg.text).replace('"', '\\"') + '"'
    if arg.kind is ArgKind.LITERAL:
        prefix = "~" if arg.literal8 else ""
        return f'{prefix}{{{len(arg.text)}}}"{printable(arg.text)}"'
    return printable(arg.text)


def printable(data: bytes) -> str:
    """Show bytes readably: ASCII as is, CR/LF/TAB escaped, other bytes as \\xNN."""
    out: list[str] = []
    for byte in data:
        if byte == 0x0D:
            out.append("\\r")
        elif byte == 0x0A:
            out.append("\\n")
        elif byte == 0x09:
            out.append("\\t")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)

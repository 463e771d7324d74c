"""A small, independent reader of server response lines, for tests only.

It turns encoded bytes back into plain Python trees so the encoder can be
checked structurally: ``str`` for atoms, ``bytes`` for strings (quoted or
literal), ``int`` for numbers, ``None`` for NIL, ``list`` for lists. It is
deliberately strict about what RFC 3501 §4 and §9 allow, so encoder bugs
(unescaped quotes, raw CR/LF, wrong literal counts) make it fail.
"""

from __future__ import annotations

from typing import Union

Tree = Union[str, bytes, int, None, list["Tree"]]
_ATOM_STOP = b' ()"{\r\n'


class ReadError(Exception):
    pass


class ResponseReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read_line(self) -> list[Tree]:
        """All space-separated items of one response up to its final CRLF."""
        items: list[Tree] = []
        while True:
            items.append(self.read_item())
            if self.data.startswith(b"\r\n", self.pos):
                self.pos += 2
                if self.pos != len(self.data):
                    raise ReadError("data after the final CRLF")
                return items
            self.expect(b" ")

    def expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            raise ReadError(f"expected {token!r} at {self.pos}: {self.data[self.pos:self.pos + 20]!r}")
        self.pos += len(token)

    def read_item(self) -> Tree:
        char = self.data[self.pos:self.pos + 1]
        if char == b"(":
            return self.read_list()
        if char == b'"':
            return self.read_quoted()
        # "~" starts a literal8 only when "{" follows; alone it is an atom
        # character (RFC 3501's own example mailbox is ~/Mail/foo).
        if char == b"{" or self.data.startswith(b"~{", self.pos):
            return self.read_literal()
        return self.read_atom()

    def read_list(self) -> list[Tree]:
        self.expect(b"(")
        items: list[Tree] = []
        while not self.data.startswith(b")", self.pos):
            back_to_back = bool(items) and isinstance(items[-1], list) and self.data.startswith(b"(", self.pos)
            if items and not back_to_back:
                self.expect(b" ")
            items.append(self.read_item())
        self.expect(b")")
        return items

    def read_quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        while True:
            if self.pos >= len(self.data):
                raise ReadError("unterminated quoted string")
            byte = self.data[self.pos]
            self.pos += 1
            if byte == 0x22:
                return bytes(out)
            if byte == 0x5C:
                escaped = self.data[self.pos:self.pos + 1]
                if escaped not in (b'"', b"\\"):
                    raise ReadError("bad escape in quoted string")
                out += escaped
                self.pos += 1
            elif byte in (0x0D, 0x0A, 0x00) or byte >= 0x80:
                raise ReadError("forbidden octet in quoted string")
            else:
                out.append(byte)

    def read_literal(self) -> bytes:
        if self.data.startswith(b"~", self.pos):
            self.pos += 1
        self.expect(b"{")
        end = self.data.index(b"}\r\n", self.pos)
        size = int(self.data[self.pos:end])
        start = end + 3
        if start + size > len(self.data):
            raise ReadError("literal runs past the data")
        self.pos = start + size
        return self.data[start:start + size]

    def read_atom(self) -> Tree:
        start = self.pos
        depth = 0  # "BODY[HEADER.FIELDS (A B)]<0>" is one item name
        while self.pos < len(self.data):
            byte = self.data[self.pos:self.pos + 1]
            if byte == b"[":
                depth += 1
            elif byte == b"]":
                depth -= 1
            elif byte in _ATOM_STOP and depth == 0:
                break
            self.pos += 1
        text = self.data[start:self.pos]
        if not text:
            raise ReadError(f"empty atom at {start}")
        if text.isdigit():
            return int(text)
        if text == b"NIL":
            return None
        return text.decode("ascii")


def read_response(data: bytes) -> list[Tree]:
    return ResponseReader(data).read_line()

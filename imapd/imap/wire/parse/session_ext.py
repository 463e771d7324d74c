"""Parsers for the session extensions: IDLE, ENABLE, NAMESPACE, ID,
UNSELECT, COMPRESS. ``parse`` registers them in its command table; each
function quotes its ABNF and reads the arguments after the command name.
"""

from __future__ import annotations

from typing import Callable

from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import Reader


def _enable(reader: Reader, tag: str) -> c.Command:
    """RFC 5161 §4: ``"ENABLE" 1*(SP capability)``, ``capability = atom``."""
    names: list[str] = []
    while True:
        reader.sp("capability name")
        names.append(reader.atom("capability name").decode("ascii").upper())
        if reader.peek() != 0x20:
            return c.Enable(tag, tuple(names))


def _nil(reader: Reader) -> bool:
    """Consume the atom ``NIL`` if it is next (not a longer atom)."""
    if not reader.peek_is(b"NIL"):
        return False
    start = reader.pos
    if reader.atom("NIL").upper() == b"NIL":
        return True
    reader.pos = start
    return False


def _id_string(reader: Reader, what: str) -> str:
    return reader.string(what).decode("utf-8", "replace")


def _id(reader: Reader, tag: str) -> c.Command:
    """RFC 2971 §4: ``"ID" SP id_params_list`` where
    ``id_params_list = "(" #(string SP nstring) ")" / nil`` (the list is
    space-separated in practice and in RFC 9051's grammar). An empty list
    is accepted. RFC 2971 §3.3 limits (30 pairs, field 30 octets, value
    1024) bind the sender; the server does not refuse on them (§3: no
    denial of service based on ID data), the line limit bounds the size."""
    reader.sp("ID parameter list")
    if _nil(reader):
        return c.Id(tag, None)
    reader.expect(b"(", "Invalid ID parameters: expected '(' or NIL")
    params: list[tuple[str, str | None]] = []
    while not reader.skip(b")"):
        if params:
            reader.expect(b" ", "Invalid ID parameters: expected space or ')'")
        field = _id_string(reader, "ID field")
        reader.sp("ID value")
        value = None if _nil(reader) else _id_string(reader, "ID value")
        params.append((field, value))
    return c.Id(tag, tuple(params))


def _compress(reader: Reader, tag: str) -> c.Command:
    """RFC 4978 §5: ``"COMPRESS" SP algorithm``, ``algorithm = "DEFLATE"``
    (future names must be atoms, so any atom is read here)."""
    reader.sp("compression algorithm")
    return c.Compress(tag, reader.atom("compression algorithm").decode("ascii").upper())


def _no_arguments(kind: Callable[[str], c.Command]) -> Callable[[Reader, str], c.Command]:
    """IDLE (RFC 2177 §4), NAMESPACE (RFC 2342 §6), UNSELECT (RFC 3691 §4)."""
    def parse(reader: Reader, tag: str) -> c.Command:
        return kind(tag)
    return parse


EXTENSION_COMMANDS: dict[str, Callable[[Reader, str], c.Command]] = {
    "IDLE": _no_arguments(c.Idle),
    "ENABLE": _enable,
    "NAMESPACE": _no_arguments(c.Namespace),
    "ID": _id,
    "UNSELECT": _no_arguments(c.Unselect),
    "COMPRESS": _compress,
}

__all__ = ["EXTENSION_COMMANDS"]

"""IMAP data values: the tree that responses are built from.

Handlers and the message model build responses out of these values; only
``imapd.imap.wire.encode`` turns them into bytes and chooses the representation
(RFC 3501 §4):

* ``Atom("\\\\Seen")``      -> written verbatim (flags, FETCH item names, keywords)
* ``IString(b"...")``      -> a string; quoted when safe, a literal when it holds
                              CR, LF, NUL, 8-bit bytes or is long
* ``Literal(b"...")``      -> always a literal (message bodies)
* ``LiteralStream``        -> a literal of known size whose bytes are produced
                              later in chunks (large bodies are not built in memory)
* ``int``                  -> number
* ``None``                 -> NIL
* ``PList((...))``         -> a parenthesized list
* ``MailboxName("Sent")``  -> a mailbox name, encoded in modified UTF-7
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Union


@dataclass(frozen=True, slots=True)
class Atom:
    value: str


@dataclass(frozen=True, slots=True)
class IString:
    value: bytes


@dataclass(frozen=True, slots=True)
class Literal:
    value: bytes
    binary: bool = False  # literal8 ``~{n}`` (RFC 3516)


@dataclass(frozen=True, slots=True)
class LiteralStream:
    """A literal of ``size`` octets whose content is produced by ``chunks()``.

    The encoder writes ``{size}\\r\\n`` and then the chunks as they come, so a
    20 MB body never exists as one bytes object.
    """

    size: int
    chunks: Callable[[], Iterator[bytes]]
    binary: bool = False


@dataclass(frozen=True, slots=True)
class MailboxName:
    value: str


@dataclass(frozen=True, slots=True)
class PList:
    items: tuple[Value, ...]


Value = Union[Atom, IString, Literal, LiteralStream, MailboxName, PList, int, None]


def plist(*items: Value) -> PList:
    return PList(tuple(items))


def nstring(data: bytes | None) -> IString | None:
    """RFC 3501 ``nstring``: NIL for None, otherwise a string."""
    return None if data is None else IString(data)

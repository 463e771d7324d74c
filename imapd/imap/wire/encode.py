"""Response encoder: response values -> wire bytes (RFC 3501 §4, §7, §9).

This is the only module that formats server response bytes. Representation
choices (RFC 3501 §4.3, §9):

* ``IString`` is written quoted when every octet is a 7-bit TEXT-CHAR
  (no NUL, CR, LF, no 8-bit) and it is at most ``MAX_QUOTED`` octets;
  otherwise as a literal ``{n}CRLF...``. Inside quotes ``"`` and ``\\``
  are backslash-escaped.
* ``MailboxName`` is modified UTF-7 (§5.1.3), bare when it consists of
  atom characters (as in the RFC's examples), else quoted; ``NIL`` and the
  empty name and all-digit names are always quoted so they cannot be
  misread (as NIL or a number) by lenient clients.
* ``None`` is ``NIL``; ``int`` must be a non-negative number (bool is
  refused: it is almost certainly a bug).
* ``Atom`` is written verbatim; it must not be empty or contain CR, LF or NUL
  (that would let data inject protocol lines).
* Free text (``resp-text``) has CR/LF replaced by spaces for the same reason.
"""

from __future__ import annotations

from typing import Iterator

from imapd.imap.wire import responses as r
from imapd.imap.wire.mutf7 import encode_mutf7
from imapd.imap.wire.values import Atom, IString, Literal, LiteralStream, MailboxName, PList, Value

MAX_QUOTED = 1000  # longer strings go out as literals (readable, no huge lines)
_NOT_QUOTABLE = frozenset(b"\x00\r\n") | frozenset(range(0x80, 0x100))
_CRLF = b"\r\n"
# RFC 3501 ATOM-CHAR: CHAR except atom-specials ( ) { SP CTL % * " \ ]
_ATOM_SAFE = frozenset(range(0x21, 0x7F)) - frozenset(b'(){%*"\\]')
# Mailbox names are also quoted when they hold "[" so that no client can
# mistake them for a section spelling such as BODY[...].
_BARE_MAILBOX = _ATOM_SAFE - frozenset(b"[")


def encode_response(response: r.Response) -> bytes:
    """The complete bytes of one response, CRLF included."""
    data = encode_response_data(response)
    return data if isinstance(data, bytes) else b"".join(data)


def encode_response_chunks(response: r.Response) -> Iterator[bytes]:
    """The bytes of one response in pieces; ``LiteralStream`` content is
    produced lazily, chunk by chunk, so large bodies never sit in memory."""
    data = encode_response_data(response)
    if isinstance(data, bytes):
        yield data
    else:
        yield from data


def encode_response_data(response: r.Response) -> bytes | Iterator[bytes]:
    """One response as complete bytes when it holds no ``LiteralStream``
    (the writer may then join it with its neighbours), else as the lazy
    chunks of ``encode_response_chunks``.

    FETCH responses made of numbers and lists (``* 5 FETCH (UID 9 FLAGS
    (\\Seen))``, the bulk of ``UID FETCH 1:* (UID FLAGS)``) take a fast
    path, pinned to the generic one by tests; everything else, and every
    value the fast path does not handle, goes through the generic writer."""
    if type(response) is r.FetchResponse:
        fast = _fast_fetch(response)
        if fast is not None:
            return fast
    out = _Writer()
    _write_response(out, response)
    out.raw(_CRLF)
    whole = out.whole()
    return whole if whole is not None else out.finish()


class _Writer:
    """Accumulates small pieces into chunks; streams are separate chunks."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._chunks: list[bytes | LiteralStream] = []

    def raw(self, data: bytes) -> None:
        self._pieces.append(data)

    def stream(self, value: LiteralStream) -> None:
        self._pieces.append(b"%s{%d}\r\n" % (b"~" if value.binary else b"", _number(value.size)))
        self._chunks.append(b"".join(self._pieces))
        self._pieces = []
        self._chunks.append(value)

    def whole(self) -> bytes | None:
        """Everything written, when no stream was written."""
        return None if self._chunks else b"".join(self._pieces)

    def finish(self) -> Iterator[bytes]:
        self._chunks.append(b"".join(self._pieces))
        for chunk in self._chunks:
            if isinstance(chunk, LiteralStream):
                yield from _stream_chunks(chunk)
            elif chunk:
                yield chunk


def _stream_chunks(value: LiteralStream) -> Iterator[bytes]:
    sent = 0
    for chunk in value.chunks():
        sent += len(chunk)
        if sent > value.size:
            raise ValueError(f"LiteralStream produced more than its size {value.size}")
        if chunk:
            yield chunk
    if sent != value.size:
        raise ValueError(f"LiteralStream produced {sent} octets, announced {value.size}")


# --- values -------------------------------------------------------------------

def _number(value: int) -> int:
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"not an IMAP number: {value!r}")
    return value


def _atom(text: str) -> bytes:
    data = text.encode("utf-8")
    if not data or b"\r" in data or b"\n" in data or b"\x00" in data:
        raise ValueError(f"not a valid atom: {text!r}")
    return data


def encode_string(data: bytes) -> bytes:
    """An IMAP ``string``: quoted when possible, else a literal (§4.3)."""
    if len(data) > MAX_QUOTED or not _NOT_QUOTABLE.isdisjoint(data):
        return b"{%d}\r\n%s" % (len(data), data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def encode_mailbox(name: str) -> bytes:
    """A mailbox name (§9 ``mailbox = "INBOX" / astring``) in modified UTF-7
    (§5.1.3): bare as in the RFC's examples (``* LIST () "/" foo/bar``) when
    it is made of atom characters and cannot be mistaken for NIL or a
    number, else a
    quoted string (or literal)."""
    encoded = encode_mutf7(name)
    if encoded and _BARE_MAILBOX.issuperset(encoded) and encoded.upper() != b"NIL" and not encoded.isdigit():
        return encoded
    return encode_string(encoded)


def write_value(out: _Writer, value: Value) -> None:
    if value is None:
        out.raw(b"NIL")
    elif isinstance(value, int):
        out.raw(b"%d" % _number(value))
    elif isinstance(value, Atom):
        out.raw(_atom(value.value))
    elif isinstance(value, IString):
        out.raw(encode_string(value.value))
    elif isinstance(value, Literal):
        prefix = b"~" if value.binary else b""
        out.raw(b"%s{%d}\r\n%s" % (prefix, len(value.value), value.value))
    elif isinstance(value, LiteralStream):
        out.stream(value)
    elif isinstance(value, MailboxName):
        out.raw(encode_mailbox(value.value))
    elif isinstance(value, PList):
        _write_list(out, value.items)
    else:
        raise TypeError(f"not an IMAP value: {value!r}")


def _write_list(out: _Writer, items: tuple[Value, ...]) -> None:
    """A parenthesized list. Items are space-separated, except inside the
    leading run of lists, which are written back to back: that is what the
    grammar asks for in every place lists repeat without a separator,
    ``"(" 1*address ")"`` in an envelope and ``1*body SP media-subtype`` in a
    multipart body structure (RFC 3501 §9), and what clients expect
    (``((NIL NIL "a" "b")(NIL NIL "c" "d"))``)."""
    out.raw(b"(")
    leading_lists = True
    for index, item in enumerate(items):
        is_list = isinstance(item, PList)
        if index and not (leading_lists and is_list):
            out.raw(b" ")
        leading_lists = leading_lists and is_list
        write_value(out, item)
    out.raw(b")")


def _write_spaced(out: _Writer, items: tuple[Value, ...]) -> None:
    for index, item in enumerate(items):
        if index:
            out.raw(b" ")
        write_value(out, item)


def _text(text: str) -> bytes:
    """``text = 1*TEXT-CHAR``: no CR or LF may slip into a status line."""
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8")


def _write_code(out: _Writer, code: r.ResponseCode | None) -> None:
    """``"[" resp-text-code "]" SP`` (§7.1)."""
    if code is None:
        return
    out.raw(b" [" + _atom(code.name))
    if code.args:
        out.raw(b" ")
        _write_spaced(out, code.args)
    out.raw(b"]")


def _write_status(out: _Writer, status: r.Status, text: str, code: r.ResponseCode | None) -> None:
    out.raw(status.value.encode("ascii"))
    _write_code(out, code)
    if text:
        out.raw(b" " + _text(text))


# --- responses -------------------------------------------------------------------

def _write_response(out: _Writer, response: r.Response) -> None:
    if isinstance(response, r.Tagged):
        out.raw(_atom(response.tag) + b" ")
        _write_status(out, response.status, response.text, response.code)
    elif isinstance(response, r.Continuation):
        if response.data is not None and (b"\r" in response.data or b"\n" in response.data):
            raise ValueError("continuation data must be one line of base64")
        out.raw(b"+ " + (response.data if response.data is not None else _text(response.text)))
    else:
        out.raw(b"* ")
        _write_untagged(out, response)


def _write_untagged(out: _Writer, response: r.Response) -> None:
    if isinstance(response, r.Untagged):
        _write_status(out, response.status, response.text, response.code)
    elif isinstance(response, r.Capability):
        out.raw(b" ".join([b"CAPABILITY"] + [_atom(cap) for cap in response.capabilities]))
    elif isinstance(response, (r.ListResponse)):
        _write_list_response(out, response)
    elif isinstance(response, r.StatusResponse):
        out.raw(b"STATUS " + encode_mailbox(response.mailbox) + b" (")
        out.raw(b" ".join(b"%s %d" % (_atom(name), _number(n)) for name, n in response.items))
        out.raw(b")")
    elif isinstance(response, r.SearchResponse):
        keyword = _atom(response.keyword)
        out.raw(b"".join([keyword] + [b" %d" % _number(n) for n in response.numbers]))
        if response.modseq is not None:
            out.raw(b" (MODSEQ %d)" % _number(response.modseq))
    elif isinstance(response, r.FlagsResponse):
        out.raw(b"FLAGS (" + b" ".join(_atom(flag) for flag in response.flags) + b")")
    elif isinstance(response, (r.Exists, r.Recent)):
        name = b"EXISTS" if isinstance(response, r.Exists) else b"RECENT"
        out.raw(b"%d %s" % (_number(response.count), name))
    elif isinstance(response, r.Expunge):
        out.raw(b"%d EXPUNGE" % _number(response.seq))
    elif isinstance(response, r.FetchResponse):
        _write_fetch(out, response)
    elif isinstance(response, r.Generic):
        _write_generic(out, response)
    else:
        raise TypeError(f"not a response: {response!r}")


def _write_list_response(out: _Writer, response: r.ListResponse) -> None:
    """``("LIST" / "LSUB") SP mailbox-list`` (§7.2.2, RFC 5258 extended items)."""
    out.raw(b"LSUB (" if response.lsub else b"LIST (")
    out.raw(b" ".join(_atom(attribute) for attribute in response.attributes))
    out.raw(b") ")
    if response.delimiter is None:
        out.raw(b"NIL")
    else:
        delimiter = response.delimiter.encode("ascii")
        if len(delimiter) != 1 or not 0x01 <= delimiter[0] <= 0x7F or delimiter in b"\r\n":
            raise ValueError(f"invalid hierarchy delimiter {response.delimiter!r}")
        out.raw(encode_string(delimiter))
    out.raw(b" " + encode_mailbox(response.name))
    if response.extended:
        out.raw(b" ")
        _write_list(out, response.extended)


def _write_fetch(out: _Writer, response: r.FetchResponse) -> None:
    """``nz-number SP "FETCH" SP "(" msg-att ")"`` with ``NAME value`` pairs (§7.4.2)."""
    if response.seq < 1:
        raise ValueError(f"FETCH sequence number must be positive: {response.seq}")
    out.raw(b"%d FETCH (" % response.seq)
    for index, (name, value) in enumerate(response.items):
        out.raw((b" " if index else b"") + _atom(name) + b" ")
        write_value(out, value)
    out.raw(b")")


def _write_generic(out: _Writer, response: r.Generic) -> None:
    if response.number is not None:
        out.raw(b"%d " % _number(response.number))
    out.raw(_atom(response.name))
    for value in response.values:
        out.raw(b" ")
        write_value(out, value)


# --- FETCH fast path -------------------------------------------------------------
#
# ``UID FETCH 1:* (UID FLAGS)`` on a large mailbox is one short response per
# message; the generic writer costs tens of calls each. The fast path below
# formats the common values directly and returns None (generic path, which
# also raises the errors) for anything else. Same bytes: tests/imap/wire.

_FAST_CACHE_MAX = 4096
# Item name -> its validated atom followed by SP (``b"FLAGS "``).
_ITEM_LABELS: dict[str, bytes] = {}
# Flag lists repeat (a mailbox has few distinct flag sets, and the view
# shares the PList values): their bytes by identity. The entry holds the
# value itself, so its id cannot be reused while it is cached.
_ATOM_LIST_BYTES: dict[int, tuple[PList, bytes]] = {}


def _generic_bytes(response: r.Response) -> bytes:
    """``encode_response`` without the fast path: the reference it is
    tested against."""
    out = _Writer()
    _write_response(out, response)
    out.raw(_CRLF)
    return b"".join(out.finish())


def _item_label(name: str) -> bytes | None:
    label = _ITEM_LABELS.get(name)
    if label is None:
        try:
            label = _atom(name) + b" "
        except ValueError:
            return None
        if len(_ITEM_LABELS) >= _FAST_CACHE_MAX:
            _ITEM_LABELS.clear()
        _ITEM_LABELS[name] = label
    return label


def _fast_list(value: PList) -> bytes | None:
    """A list of atoms and numbers, else None. Lists of atoms only (flag
    lists) are cached by identity."""
    cached = _ATOM_LIST_BYTES.get(id(value))
    if cached is not None and cached[0] is value:
        return cached[1]
    pieces: list[bytes] = []
    atoms_only = True
    for item in value.items:
        if isinstance(item, Atom) and type(item) is Atom:
            try:
                pieces.append(_atom(item.value))
            except ValueError:
                return None
        elif isinstance(item, int) and type(item) is int and item >= 0:
            pieces.append(b"%d" % item)
            atoms_only = False
        else:
            return None
    data = b"(" + b" ".join(pieces) + b")"
    if atoms_only:
        if len(_ATOM_LIST_BYTES) >= _FAST_CACHE_MAX:
            _ATOM_LIST_BYTES.clear()
        _ATOM_LIST_BYTES[id(value)] = (value, data)
    return data


def _fast_fetch(response: r.FetchResponse) -> bytes | None:
    """``* seq FETCH (...)`` CRLF when every value is a number or a list of
    atoms or numbers, else None (§7.4.2, as ``_write_fetch``)."""
    seq = response.seq
    if type(seq) is not int or seq < 1:
        return None
    parts = [b"* %d FETCH (" % seq]
    separator = b""
    labels, lists = _ITEM_LABELS, _ATOM_LIST_BYTES
    for name, value in response.items:
        label = labels.get(name)
        if label is None:
            label = _item_label(name)
            if label is None:
                return None
        if type(value) is int:
            if value < 0:
                return None
            parts.append(b"%s%s%d" % (separator, label, value))
        elif type(value) is PList:
            cached = lists.get(id(value))
            if cached is not None and cached[0] is value:
                parts.append(separator + label + cached[1])
            else:
                data = _fast_list(value)
                if data is None:
                    return None
                parts.append(separator + label + data)
        else:
            return None
        separator = b" "
    parts.append(b")\r\n")
    return b"".join(parts)

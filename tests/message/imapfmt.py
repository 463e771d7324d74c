"""A minimal IMAP value formatter for tests (RFC 3501 §4), independent of
``imapd.wire.encode`` so that the message model's output can be checked
against written-out expectations before the encoder exists."""

from __future__ import annotations

from imapd.wire.values import Atom, IString, Literal, PList, Value


def fmt(value: Value) -> bytes:
    if value is None:
        return b"NIL"
    if isinstance(value, bool):
        raise TypeError("bool is not an IMAP value")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, Atom):
        return value.value.encode()
    if isinstance(value, IString):
        data = value.value
        if all(0x20 <= c < 0x7F for c in data):
            return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        return b"{%d}\r\n" % len(data) + data
    if isinstance(value, Literal):
        return b"{%d}\r\n" % len(value.value) + value.value
    if isinstance(value, PList):
        return b"(" + b" ".join(fmt(item) for item in value.items) + b")"
    raise TypeError(f"unexpected value {value!r}")


def fmts(value: Value) -> str:
    return fmt(value).decode("latin-1")

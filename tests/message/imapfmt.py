"""Format IMAP values with the project's response encoder
(``imapd.imap.wire.encode``), through its public API, for byte-exact
expectations: the value is wrapped in a FETCH response and unwrapped again."""

from __future__ import annotations

from imapd.imap.wire.encode import encode_response
from imapd.imap.wire.responses import FetchResponse
from imapd.imap.wire.values import Value

_PREFIX = b"* 1 FETCH (X "
_SUFFIX = b")\r\n"


def fmt(value: Value) -> bytes:
    data = encode_response(FetchResponse(1, (("X", value),)))
    assert data.startswith(_PREFIX) and data.endswith(_SUFFIX)
    return data[len(_PREFIX):-len(_SUFFIX)]


def fmts(value: Value) -> str:
    return fmt(value).decode("latin-1")

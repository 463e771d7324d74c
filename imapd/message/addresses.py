"""A lenient RFC 5322 address-list parser producing IMAP address structures.

RFC 3501 §7.4.2 (ENVELOPE) describes each address as
``(addr-name addr-adl addr-mailbox addr-host)``; group syntax (RFC 5322
§3.4) is a start marker ``(NIL NIL "group name" NIL)`` and an end marker
``(NIL NIL NIL NIL)``.  Names keep RFC 2047 encoded words as they are; only
quoting is removed.  When an address has no display name, its comment (if
any) is used, as in ``user@domain (Real Name)`` (the common practice that
Dovecot's imaptest checks).

The parser never raises.  A missing local part or domain is reported as
``MISSING_MAILBOX`` / ``MISSING_DOMAIN``: a NIL host would turn the address
into a group marker for the client.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from imapd.message.headers import skip_comment, unescape

#: (name, adl, mailbox, host), each None for NIL.
Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]

MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"
GROUP_END: Address = (None, None, None, None)

_BLANKS = re.compile(rb"[ \t\r\n]+")
# One token at a position that is not "(" (comments nest: skip_comment).
_TOKEN = re.compile(
    rb'(?P<blank>[ \t\r\n]+)'
    rb'|(?P<qstr>"(?P<content>[^"\\]*(?:\\.[^"\\]*)*\\?)"?)'
    rb'|(?P<dlit>\[[^\]]*\]?)'
    rb'|(?P<special>[<>@,;:.\]])'
    rb'|(?P<atom>[^\s()<>@,;:."\[\]\\]+|\\.?)',
    re.DOTALL,
)


class _Token(NamedTuple):
    kind: str        # "atom", "qstr", "comment", "dlit" or the special itself
    text: bytes      # as written (quoted strings with their quotes)
    value: bytes     # unescaped content (quoted strings, comments)
    space: bool      # blanks or a comment came before it


def _tokenize(data: bytes) -> list[_Token]:
    tokens: list[_Token] = []
    pos, space, size = 0, False, len(data)
    while pos < size:
        if data[pos] == 0x28:  # "(" comment
            end = skip_comment(data, pos)
            inner = data[pos + 1:end - 1] if data[end - 1:end] == b")" else data[pos + 1:end]
            tokens.append(_Token("comment", data[pos:end], unescape(inner), space))
            pos, space = end, True
            continue
        match = _TOKEN.match(data, pos)
        if match is None:  # pragma: no cover - every byte starts some token
            pos += 1
            continue
        kind, text, pos = match.lastgroup or "atom", match.group(), match.end()
        if kind == "blank":
            space = True
            continue
        if kind == "special":
            kind = text.decode("ascii")
        value = unescape(match.group("content")) if kind == "qstr" else text
        tokens.append(_Token(kind, text, value, space))
        space = False
    return tokens


def _join(tokens: list[_Token], use_value: bool) -> bytes:
    """Join tokens, one space where the source had blanks (phrases)."""
    out = bytearray()
    for token in tokens:
        if token.space and out:
            out += b" "
        out += token.value if use_value else token.text
    return bytes(out)


def _compact(tokens: list[_Token]) -> bytes:
    """Join tokens as written, dropping blanks (local parts, domains)."""
    return b"".join(token.text for token in tokens)


def parse_address_list(value: bytes) -> tuple[Address, ...]:
    """Parse an unfolded address-list header value (RFC 5322 §3.4).

    Returns the addresses in order with group markers; an empty tuple when
    nothing address-like is present.
    """
    result: list[Address] = []
    item: list[_Token] = []
    in_group = False
    angle = 0
    for token in _tokenize(value):
        kind = token.kind
        if kind == "<":
            angle += 1
        elif kind == ">":
            angle = max(0, angle - 1)
        elif angle == 0 and kind == ":" and not in_group and _could_be_group(item):
            result.append((None, None, _join(_words(item), True), None))
            in_group, item = True, []
            continue
        elif angle == 0 and kind == ";" and in_group:
            _flush(item, result)
            result.append(GROUP_END)
            in_group, item = False, []
            continue
        elif angle == 0 and kind in (",", ";"):
            _flush(item, result)
            item = []
            continue
        item.append(token)
    _flush(item, result)
    if in_group:
        result.append(GROUP_END)
    return tuple(result)


def _words(tokens: list[_Token]) -> list[_Token]:
    return [t for t in tokens if t.kind != "comment"]


def _could_be_group(item: list[_Token]) -> bool:
    """A ":" starts a group only after a phrase (not inside a route or an
    addr-spec such as ``user@host:port``)."""
    words = _words(item)
    return bool(words) and all(t.kind in ("atom", "qstr", ".") for t in words)


def _flush(item: list[_Token], result: list[Address]) -> None:
    address = _mailbox(item)
    if address is not None:
        result.append(address)


def _mailbox(item: list[_Token]) -> Address | None:
    """One mailbox: ``[phrase] <[route:]addr-spec>`` or ``addr-spec``."""
    if not _words(item):
        return None
    comments = [t.value for t in item if t.kind == "comment"]
    opening = next((i for i, t in enumerate(item) if t.kind == "<"), -1)
    if opening >= 0:
        closing = next(
            (i for i in range(opening + 1, len(item)) if item[i].kind == ">"), len(item)
        )
        phrase = _words(item[:opening])
        inner = _words(item[opening + 1:closing])
        adl, spec = _split_route(inner)
        mailbox, host = _addr_spec(spec)
    else:
        phrase, adl = [], None
        spec = _words(item)
        phrase, spec = _split_sloppy_phrase(spec)
        mailbox, host = _addr_spec(spec)
    name: bytes | None = _join(phrase, True) if phrase else None
    if not name and comments:
        name = _BLANKS.sub(b" ", comments[0]).strip()
    return (name or None, adl, mailbox, host)


def _split_route(inner: list[_Token]) -> tuple[bytes | None, list[_Token]]:
    """``@a,@b:user@host`` -> (b"@a,@b", tokens of ``user@host``)."""
    if not inner or inner[0].kind != "@":
        return None, inner
    colon = next((i for i, t in enumerate(inner) if t.kind == ":"), -1)
    if colon < 0:
        return None, inner
    return _compact(inner[:colon]) or None, inner[colon + 1:]


def _split_sloppy_phrase(spec: list[_Token]) -> tuple[list[_Token], list[_Token]]:
    """``John Smith john@host`` without angle brackets: the local part is the
    run of tokens glued to the ``@``; blank-separated words before it are
    taken as a display name rather than squashed into the mailbox."""
    at = next((i for i, t in enumerate(spec) if t.kind == "@"), -1)
    if at <= 0:
        return [], spec
    start = at - 1
    while start > 0 and not spec[start].space:
        start -= 1
    return spec[:start], spec[start:]


def _addr_spec(spec: list[_Token]) -> tuple[bytes, bytes]:
    at = next((i for i, t in enumerate(spec) if t.kind == "@"), -1)
    if at < 0:
        local, domain = _compact(spec), b""
    else:
        local, domain = _compact(spec[:at]), _compact(spec[at + 1:])
    return local or MISSING_MAILBOX, domain or MISSING_DOMAIN

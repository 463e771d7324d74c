"""BODY and BODYSTRUCTURE values (RFC 3501 §7.4.2 and the ``body`` grammar
of §9).

* body-type-basic: type subtype (params) id description encoding size
* body-type-text: ... then body-fld-lines
* body-type-msg (MESSAGE/RFC822): ... envelope body lines
* multipart: the parts, then the subtype
* BODYSTRUCTURE adds extension data: for a single part body-fld-md5,
  body-fld-dsp, body-fld-lang, body-fld-loc; for a multipart body-fld-param,
  body-fld-dsp, body-fld-lang, body-fld-loc.  All four are always sent.

Types, subtypes, parameter names, encodings and disposition types are
upper-cased (the RFC's own examples do; clients compare them without
case); parameter values and other strings are as written.  Sizes are the
body octets exactly as stored.  A multipart in which no part was found is
described with one empty text/plain part, since the grammar needs at least
one (``1*body``).
"""

from __future__ import annotations

from imapd.message.envelope import envelope_value
from imapd.message.headers import Params
from imapd.message.model import MessageInfo, Part
from imapd.imap.wire.values import IString, PList, Value, nstring

_EMPTY_TEXT_PART = PList((
    IString(b"TEXT"), IString(b"PLAIN"), PList((IString(b"CHARSET"), IString(b"us-ascii"))),
    None, None, IString(b"7BIT"), 0, 0,
))


def body_structure(info: MessageInfo, extended: bool) -> Value:
    """FETCH BODY (``extended=False``) or BODYSTRUCTURE (``extended=True``)."""
    return part_structure(info.root, extended)


def part_structure(part: Part, extended: bool) -> PList:
    """The ``body`` value of one part (RFC 3501 §9)."""
    if part.multipart:
        return _multipart(part, extended)
    items: list[Value] = [
        IString(part.media_type.upper()),
        IString(part.media_subtype.upper()),
        _params(part.params),
        nstring(part.content_id),
        nstring(part.description),
        IString(part.encoding.upper()),
        part.body_size,
    ]
    if part.message is not None:
        items.append(envelope_value(part.message.envelope))
        items.append(part_structure(part.message, extended))
        items.append(part.lines)
    elif part.media_type == b"text":
        items.append(part.lines)
    if extended:
        items.append(nstring(part.md5))
        items.extend(_extension_tail(part))
    return PList(tuple(items))


def _multipart(part: Part, extended: bool) -> PList:
    items: list[Value] = [part_structure(child, extended) for child in part.children]
    if not items:
        items.append(_EMPTY_TEXT_PART if not extended else _empty_extended())
    items.append(IString(part.media_subtype.upper()))
    if extended:
        items.append(_params(part.params))
        items.extend(_extension_tail(part))
    return PList(tuple(items))


def _empty_extended() -> PList:
    return PList(_EMPTY_TEXT_PART.items + (None, None, None, None))


def _extension_tail(part: Part) -> list[Value]:
    """body-fld-dsp, body-fld-lang, body-fld-loc."""
    dsp: Value = None
    if part.disposition is not None:
        dsp = PList((IString(part.disposition.kind.upper()), _params(part.disposition.params)))
    lang: Value = None
    if part.language is not None:
        if len(part.language) == 1:
            lang = IString(part.language[0])
        else:
            lang = PList(tuple(IString(tag) for tag in part.language))
    return [dsp, lang, nstring(part.location)]


def _params(params: Params) -> Value:
    """body-fld-param: ``("NAME" "value" ...)`` or NIL."""
    if not params:
        return None
    return PList(tuple(
        IString(item) for name, val in params for item in (name.upper(), val)
    ))

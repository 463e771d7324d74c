"""CATENATE (RFC 4469): APPEND of a message put together from literal text
and IMAP URLs of messages or sections the user can read.

URLs (RFC 5092 syntax, RFC 4469 §5): only server-relative ones naming a
mailbox of the same user,

    "/" enc-mailbox [";UIDVALIDITY=" n] "/;UID=" n ["/;SECTION=" enc-section]
        ["/;PARTIAL=" origin ["." length]]

are resolved. Absolute ``imap://`` URLs, URLAUTH (RFC 4467) and other
users' mailboxes are not supported: such a URL is ``NO [BADURL url]``
(§5), as is one whose mailbox, UIDVALIDITY, UID or section does not exist.
The parts are resolved in order and joined; the result is one message of
the APPEND, delivered as any other (so quota applies). Its size may not
pass APPENDLIMIT (``NO [TOOBIG]``, §5 and RFC 7889); an empty result is
refused. The work is bounded by that limit: a URL's message is read only
while the total stays under it.
"""

from __future__ import annotations

import re
import urllib.parse

from imapd.core.errors import ImapError
from imapd.imap.commands.context import CommandContext
from imapd.imap.wire.catenate_command import CatenatePart, CatText
from imapd.imap.wire.commands import Partial, Section
from imapd.imap.wire.lexer import ParseError, Reader
from imapd.imap.wire.parse.fetch import parse_section
from imapd.mail.errors import MailError
from imapd.mail.service import MailService
from imapd.message import analyze, apply_partial, section_bytes
from imapd.message.infocache import decode_info

CODE_BADURL = "BADURL"
CODE_TOOBIG = "TOOBIG"
_URL = re.compile(
    r"/(?P<mailbox>[^;/]+)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9][0-9]{0,9}))?"
    r"/;UID=(?P<uid>[1-9][0-9]{0,9})"
    r"(?:/;SECTION=(?P<section>[^/]*))?"
    r"(?:/;PARTIAL=(?P<origin>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?\Z",
    re.IGNORECASE,
)


class BadUrl(Exception):
    """The URL cannot be resolved (RFC 4469 §5 ``BADURL``)."""


def _bad(url: str) -> ImapError:
    """``NO [BADURL url-resp-text]`` (RFC 4469 §6: the URL as text, which
    may not hold "]", CR, LF or NUL: those are left out)."""
    shown = re.sub(r"[\]\r\n\x00]", "", url)[:1000] or "/"
    return ImapError.no(f"Cannot use URL {shown}", CODE_BADURL, shown)


def _section(text: str | None) -> Section:
    """``enc-section`` (percent-decoded) as a FETCH section spec."""
    if not text:
        return Section()
    spec = urllib.parse.unquote(text).encode("utf-8")
    try:
        reader = Reader(b"[" + spec + b"]")
        section = parse_section(reader)
    except ParseError:
        raise BadUrl from None
    if reader.pos != len(reader.data):
        raise BadUrl
    return section


async def resolve_url(mail: MailService, user: str, url: str) -> bytes:
    """The octets ``url`` names in ``user``'s mailboxes (RFC 5092 §5)."""
    found = _URL.match(url)
    if found is None:
        raise BadUrl
    name = urllib.parse.unquote(found.group("mailbox"))
    uid = int(found.group("uid"))
    section = _section(found.group("section"))
    try:
        watch = await mail.open(user, name, readonly=True)
    except MailError:
        raise BadUrl from None
    try:
        wanted = found.group("uidvalidity")
        if wanted is not None and int(wanted) != watch.uidvalidity:
            raise BadUrl
        records = await watch.fetch_records([uid], with_meta=True)
        raw = await watch.read_message(uid) if records else None
    finally:
        watch.close()
    if raw is None:
        raise BadUrl
    try:
        info = decode_info(records[0].meta)
    except ValueError:
        info = analyze(raw)
    data = section_bytes(raw, info, section)
    if data is None:
        raise BadUrl
    if found.group("origin") is not None:
        length = found.group("length")
        data = apply_partial(data, Partial(int(found.group("origin")),
                                           int(length) if length else len(data)))
    return data


async def catenated(ctx: CommandContext, mail: MailService, user: str,
                    parts: tuple[CatenatePart, ...]) -> bytes:
    """The message ``parts`` make (RFC 4469 §5); ``NO [BADURL url]`` for the
    first URL that cannot be resolved, ``NO [TOOBIG]`` past APPENDLIMIT."""
    pieces: list[bytes] = []
    total = 0
    for part in parts:
        if isinstance(part, CatText):
            data = bytes(part.data)
        else:
            try:
                data = await resolve_url(mail, user, part.url)
            except BadUrl:
                raise _bad(part.url) from None
        total += len(data)
        if total > ctx.features.append_limit:
            raise ImapError.no("Catenated message too big", CODE_TOOBIG)
        pieces.append(data)
    if total == 0:
        raise ImapError.no("Catenated message is empty")
    return b"".join(pieces)


__all__ = ["BadUrl", "catenated", "resolve_url"]

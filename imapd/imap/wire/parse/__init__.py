"""Command parser: one complete frame -> a typed command (RFC 3501 §6, §9).

``parse_command`` never raises: anything it cannot read becomes a
``CommandSyntaxError`` carrying the tag (when one was readable) and a
specific reason. Token reading lives in ``lexer``, the two large families
in ``parse_fetch`` and ``parse_search``; this module holds the entry point
and the simple commands, one function per command, each quoting its ABNF.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from imapd.core.config import Limits
from imapd.core.model import Secret
from imapd.core.spool import SpooledLiteral
from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import ParseError, Reader, normalize_mailbox
from imapd.imap.wire.parse.session_ext import EXTENSION_COMMANDS
from imapd.imap.wire.parse.quota import QUOTA_COMMANDS
from imapd.imap.wire.parse.mailbox_ext import list_command, parse_append, parse_create
from imapd.imap.wire.parse.fetch import parse_fetch_items
from imapd.imap.wire.parse.search import parse_search_program
from imapd.imap.wire.parse.context import CONTEXT_COMMANDS, parse_search_return
from imapd.imap.wire.parse.thread import parse_thread
from imapd.imap.wire.parse.sort import parse_sort
from imapd.imap.wire.parse.condstore import (
    parse_fetch_modifiers, parse_move, parse_select_params,
    parse_store_modifiers, parse_uid_expunge,
)

_DEFAULT_NESTING = Limits().max_nesting
_BASE64 = re.compile(rb"=|(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
# RFC 3501 §6.3.10 status-att, plus the extension items handlers may know
# (RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 9051 DELETED, RFC 9208
# DELETED-STORAGE, RFC 7889 APPENDLIMIT).
STATUS_ITEMS = frozenset({
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
    "HIGHESTMODSEQ", "SIZE", "DELETED", "DELETED-STORAGE", "APPENDLIMIT",
})


def parse_command(
    frame: bytes, max_nesting: int = _DEFAULT_NESTING,
    spooled: Mapping[int, SpooledLiteral] | None = None,
) -> c.Command | c.CommandSyntaxError:
    """Parse one command frame (as produced by ``Framer``) into a command.
    ``spooled`` gives the frame's spooled literals by offset
    (``CommandFrame.spooled``); APPEND keeps them as its message data.

    RFC 3501 §9: ``command = tag SP (command-any / command-auth /
    command-nonauth / command-select) CRLF``.
    """
    reader = Reader(frame, max_nesting, spooled)
    try:
        tag = reader.tag().decode("ascii")
    except ParseError:
        return c.CommandSyntaxError(None, "Missing or invalid tag")
    if reader.peek() != 0x20 and not reader.at_eol():  # e.g. "a+b": not a tag
        return c.CommandSyntaxError(None, "Missing or invalid tag")
    try:
        return _parse_after_tag(reader, tag)
    except ParseError as error:
        return c.CommandSyntaxError(tag, error.reason, error.invalid_name)
    except (RecursionError, MemoryError):  # defence in depth; nesting is bounded
        return c.CommandSyntaxError(tag, "Command too complex")


def _parse_after_tag(reader: Reader, tag: str) -> c.Command:
    reader.sp("command name")
    name = reader.keyword()
    if name == "UID":
        reader.sp("command after UID")
        name = reader.keyword()
        uid_parser = _UID_COMMANDS.get(name)
        if uid_parser is None:
            raise ParseError(f"Unknown UID command {name[:40]}")
        command = uid_parser(reader, tag, True)
    else:
        parser = _COMMANDS.get(name)
        if parser is not None:
            command = parser(reader, tag)
        elif name in _UID_COMMANDS:
            command = _UID_COMMANDS[name](reader, tag, False)
        else:
            raise ParseError(f"Unknown command {name[:40]}")
    reader.end()
    return command


# --- any state and not authenticated (§6.1, §6.2) ------------------------------

def _no_arguments(kind: Callable[[str], c.Command]) -> Callable[[Reader, str], c.Command]:
    """CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK, CLOSE, EXPUNGE: no arguments."""
    def parse(reader: Reader, tag: str) -> c.Command:
        return kind(tag)
    return parse


def _authenticate(reader: Reader, tag: str) -> c.Command:
    """``"AUTHENTICATE" SP auth-type [SP (base64 / "=")]`` (§6.2.2, RFC 4959)."""
    reader.sp("authentication mechanism")
    mechanism = reader.atom("authentication mechanism").decode("ascii").upper()
    initial: bytes | None = None
    if reader.peek() == 0x20:
        reader.sp("initial response")
        found = _BASE64.match(reader.data, reader.pos)
        if found is None or not found.group():
            raise ParseError("Invalid initial response: expected base64 or '='")
        reader.pos = found.end()
        initial = found.group()
    return c.Authenticate(tag, mechanism, initial)


def _login(reader: Reader, tag: str) -> c.Command:
    """``"LOGIN" SP userid SP password`` (§6.2.3)."""
    reader.sp("user name")
    raw_user = reader.astring("user name")
    try:
        username = raw_user.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("Invalid user name: not UTF-8") from None
    reader.sp("password")
    password = Secret(reader.astring("password"))
    return c.Login(tag, username, password)


# --- authenticated (§6.3) ---------------------------------------------------------

def _one_mailbox(kind: Callable[[str, str], c.Command]) -> Callable[[Reader, str], c.Command]:
    """CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE: ``SP mailbox``."""
    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp("mailbox name")
        return kind(tag, reader.mailbox())
    return parse


def _select(kind: type[c.Select] | type[c.Examine]) -> Callable[[Reader, str], c.Command]:
    """``("SELECT" / "EXAMINE") SP mailbox [select-params]`` (§6.3.1, §6.3.2;
    RFC 4466 §2.1 parameters, RFC 7162 CONDSTORE and QRESYNC)."""
    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp("mailbox name")
        mailbox = reader.mailbox()
        condstore, qresync = parse_select_params(reader)
        return kind(tag, mailbox, condstore, qresync)
    return parse


def _rename(reader: Reader, tag: str) -> c.Command:
    """``"RENAME" SP mailbox SP mailbox`` (§6.3.5)."""
    reader.sp("mailbox name")
    old = reader.mailbox()
    reader.sp("new mailbox name")
    return c.Rename(tag, old, reader.mailbox("new mailbox name"))


def _list_like(kind: Callable[[str, str, str], c.Command]) -> Callable[[Reader, str], c.Command]:
    """``"LIST" SP mailbox SP list-mailbox`` (§6.3.8), same for LSUB (§6.3.9).
    The reference keeps its spelling (it is a prefix, not a name)."""
    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp("reference name")
        reference = reader.decode_pattern(reader.astring("reference name"))
        reader.sp("mailbox pattern")
        pattern = reader.decode_pattern(reader.list_mailbox())
        return kind(tag, reference, pattern)
    return parse


def _status(reader: Reader, tag: str) -> c.Command:
    """``"STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"`` (§6.3.10)."""
    reader.sp("mailbox name")
    mailbox = reader.mailbox()
    reader.sp("status items")
    reader.expect(b"(", "Invalid status items: expected '('")
    items: list[str] = []
    while True:
        item = reader.atom("status item").decode("ascii").upper()
        if item not in STATUS_ITEMS:
            raise ParseError(f"Unknown status item {item[:40]}")
        items.append(item)
        if reader.skip(b")"):
            return c.Status(tag, mailbox, tuple(items))
        reader.expect(b" ", "Invalid status items: expected space or ')'")


# --- selected (§6.4) -----------------------------------------------------------------

def _search(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``"SEARCH" [search-return-opts] [SP "CHARSET" SP astring] 1*(SP search-key)``
    (§6.4.4, RFC 4731 §3.1, RFC 5267 §4 RETURN options)."""
    reader.sp("search criteria")
    return_options, partial = parse_search_return(reader)
    charset, criteria = parse_search_program(reader)
    return c.Search(tag, uid, charset, criteria, return_options, partial)


def _fetch(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``"FETCH" SP sequence-set SP (macro / fetch-att / "(" ... ")")`` (§6.4.5)."""
    reader.sp("sequence set")
    seqset = reader.seqset()
    reader.sp("FETCH attributes")
    attributes = parse_fetch_items(reader)
    changedsince, vanished = parse_fetch_modifiers(reader, uid)
    return c.Fetch(tag, uid, seqset, attributes, changedsince, vanished)


_STORE_MODES = {"FLAGS": c.StoreMode.REPLACE, "+FLAGS": c.StoreMode.ADD, "-FLAGS": c.StoreMode.REMOVE}


def _store(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``"STORE" SP sequence-set SP store-att-flags`` (§6.4.6), where
    ``store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))``."""
    reader.sp("sequence set")
    seqset = reader.seqset()
    unchangedsince = parse_store_modifiers(reader)
    reader.sp("FLAGS, +FLAGS or -FLAGS")
    sign = b"" if reader.peek() not in (0x2B, 0x2D) else bytes([reader.data[reader.pos]])
    reader.pos += len(sign)
    item = sign.decode("ascii") + reader.atom("FLAGS, +FLAGS or -FLAGS").decode("ascii").upper()
    silent = item.endswith(".SILENT")
    mode = _STORE_MODES.get(item.removesuffix(".SILENT"))
    if mode is None:
        raise ParseError(f"Invalid STORE item {item[:40]}: expected [+|-]FLAGS[.SILENT]")
    reader.sp("flags")
    if reader.peek() == 0x28:
        reader.enter()
        flags = reader.flag_list()
        reader.leave()
    else:
        flags_list = [reader.flag()]
        while reader.skip(b" "):
            flags_list.append(reader.flag())
        flags = tuple(flags_list)
    return c.Store(tag, uid, seqset, mode, silent, flags, unchangedsince)


def _copy(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``"COPY" SP sequence-set SP mailbox`` (§6.4.7)."""
    reader.sp("sequence set")
    seqset = reader.seqset()
    reader.sp("mailbox name")
    return c.Copy(tag, uid, seqset, reader.mailbox())


_COMMANDS: dict[str, Callable[[Reader, str], c.Command]] = {
    "CAPABILITY": _no_arguments(c.Capability),
    "NOOP": _no_arguments(c.Noop),
    "LOGOUT": _no_arguments(c.Logout),
    "STARTTLS": _no_arguments(c.StartTLS),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _select(c.Select),
    "EXAMINE": _select(c.Examine),
    "CREATE": parse_create,         # RFC 4466 create-params, RFC 6154 USE
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": list_command(STATUS_ITEMS),  # RFC 5258 LIST-EXTENDED, RFC 5819
    "LSUB": _list_like(c.Lsub),
    "STATUS": _status,
    "APPEND": parse_append,         # RFC 3502 MULTIAPPEND
    "CHECK": _no_arguments(c.Check),
    "CLOSE": _no_arguments(c.Close),
    "EXPUNGE": _no_arguments(c.Expunge),
    **EXTENSION_COMMANDS,  # IDLE ENABLE NAMESPACE ID UNSELECT COMPRESS (parse_ext)
    **QUOTA_COMMANDS,  # GETQUOTA GETQUOTAROOT SETQUOTA (RFC 9208)
    **CONTEXT_COMMANDS,  # CANCELUPDATE (RFC 5267)
}

# Commands that take the UID prefix (§6.4.8); called with uid=False without it.
_UID_COMMANDS: dict[str, Callable[[Reader, str, bool], c.Command]] = {
    "SEARCH": _search,
    "SORT": parse_sort,             # RFC 5256, RFC 5957
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": parse_move,             # RFC 6851
    "EXPUNGE": parse_uid_expunge,   # RFC 4315: UID EXPUNGE only
    "THREAD": parse_thread,         # RFC 5256
}

__all__ = ["parse_command", "normalize_mailbox", "STATUS_ITEMS"]

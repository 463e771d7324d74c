"""Grammar of the mailbox extensions: LIST-EXTENDED (RFC 5258 §6) with
LIST-STATUS (RFC 5819 §4) and SPECIAL-USE (RFC 6154 §6), CREATE parameters
(RFC 4466 §2.3, RFC 6154 §3 USE) and MULTIAPPEND (RFC 3502 §6).

``parse`` puts these in its command table; each function quotes its ABNF
and reads the arguments after the command name. Unknown options are syntax
errors: RFC 5258 §3 ("the server MUST return a tagged BAD response") and
RFC 4466 §2.3 both ask for BAD.
"""

from __future__ import annotations

from typing import Callable, Collection

from imapd.core.model import canonical_flag
from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import ParseError, Reader
from imapd.imap.wire.parse.catenate import at_catenate, parse_catenate

_SELECTION = frozenset(c.LIST_SELECTION_OPTIONS)
_RETURN = frozenset(c.LIST_RETURN_OPTIONS)
# RFC 5258 §6: list-select-base-opt (RECURSIVEMATCH needs one of these).
_BASE_SELECTION = frozenset({"SUBSCRIBED"})
_MOD_SELECTION = frozenset({"RECURSIVEMATCH"})


def _option_list(reader: Reader, what: str) -> list[str]:
    """``"(" [option *(SP option)] ")"`` of atoms, upper-cased; the caller
    is at ``(``. STATUS in a return list is read by the caller's hook."""
    reader.expect(b"(", f"Invalid {what}: expected '('")
    names: list[str] = []
    while not reader.skip(b")"):
        if names:
            reader.expect(b" ", f"Invalid {what}: expected space or ')'")
        names.append(reader.keyword())
    return names


def _selection_options(reader: Reader) -> tuple[str, ...]:
    """``list-select-opts = "(" [(*(list-select-mod-opt SP) list-select-base-opt
    *(SP list-select-opt)) / (list-select-independent-opt *(SP
    list-select-independent-opt))] ")"`` (RFC 5258 §6); a mod option
    (RECURSIVEMATCH) is only valid together with a base option (SUBSCRIBED),
    and ``list-select-independent-opt =/ "SPECIAL-USE"`` (RFC 6154 §6)."""
    names = _option_list(reader, "LIST selection options")
    for name in names:
        if name not in _SELECTION:
            raise ParseError(f"Unknown LIST selection option {name[:40]}")
    if _MOD_SELECTION.intersection(names) and not _BASE_SELECTION.intersection(names):
        raise ParseError("RECURSIVEMATCH needs another selection option such as SUBSCRIBED")
    return tuple(dict.fromkeys(names))


def _patterns(reader: Reader) -> tuple[str, tuple[str, ...] | None]:
    """``mbox-or-pat = list-mailbox / patterns``,
    ``patterns = "(" list-mailbox *(SP list-mailbox) ")"`` (RFC 5258 §6).
    Returns (first pattern, all patterns or None for the single form)."""
    if reader.peek() != 0x28:
        pattern = reader.decode_pattern(reader.list_mailbox())
        return pattern, None
    reader.pos += 1
    patterns: list[str] = []
    while True:
        patterns.append(reader.decode_pattern(reader.list_mailbox()))
        if reader.skip(b")"):
            return patterns[0], tuple(patterns)
        reader.expect(b" ", "Invalid mailbox patterns: expected space or ')'")


def _status_items(reader: Reader, known: Collection[str]) -> tuple[str, ...]:
    """``"(" status-att *(SP status-att) ")"`` (RFC 3501 §9, RFC 5819 §4)."""
    reader.expect(b"(", "Invalid STATUS return option: expected '('")
    items: list[str] = []
    while True:
        item = reader.keyword()
        if item not in known:
            raise ParseError(f"Unknown status item {item[:40]}")
        items.append(item)
        if reader.skip(b")"):
            return tuple(dict.fromkeys(items))
        reader.expect(b" ", "Invalid status items: expected space or ')'")


def _return_options(reader: Reader, known_status: Collection[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"``,
    ``return-option = "SUBSCRIBED" / "CHILDREN" / status-option / "SPECIAL-USE"``,
    ``status-option = "STATUS" SP "(" status-att *(SP status-att) ")"``
    (RFC 5258 §6, RFC 5819 §4, RFC 6154 §6). Returns (options, STATUS items)."""
    reader.expect(b"(", "Invalid RETURN options: expected '('")
    names: list[str] = []
    status: tuple[str, ...] = ()
    while not reader.skip(b")"):
        if names:
            reader.expect(b" ", "Invalid RETURN options: expected space or ')'")
        name = reader.keyword()
        if name not in _RETURN:
            raise ParseError(f"Unknown LIST return option {name[:40]}")
        if name == "STATUS":
            if "STATUS" in names:
                raise ParseError("STATUS given twice in LIST return options")
            reader.sp("status items")
            status = _status_items(reader, known_status)
        names.append(name)
    return tuple(dict.fromkeys(names)), status


def list_command(known_status: Collection[str]) -> Callable[[Reader, str], c.Command]:
    """A parser for ``list = "LIST" [SP list-select-opts] SP mailbox SP
    mbox-or-pat [SP list-return-opts]`` (RFC 5258 §6; RFC 3501 §6.3.8 is the
    form without the options). ``known_status`` are the STATUS items that
    ``RETURN (STATUS (...))`` accepts."""

    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp("reference name")
        selection: tuple[str, ...] | None = None
        if reader.peek() == 0x28:
            selection = _selection_options(reader)
            reader.sp("reference name")
        reference = reader.decode_pattern(reader.astring("reference name"))
        reader.sp("mailbox pattern")
        pattern, patterns = _patterns(reader)
        return_options: tuple[str, ...] | None = None
        status: tuple[str, ...] = ()
        if reader.peek_is(b" RETURN "):
            reader.pos += len(b" RETURN")
            reader.sp("LIST return options")
            return_options, status = _return_options(reader, known_status)
        return c.List(tag, reference, pattern, selection, patterns, return_options, status)

    return parse


def _use_attribute(reader: Reader) -> str:
    """``use-attr = "\\All" / "\\Archive" / ... / use-attr-ext``,
    ``use-attr-ext = "\\" atom`` (RFC 6154 §6), in canonical spelling."""
    if not reader.skip(b"\\"):
        raise ParseError("Invalid special-use attribute: expected '\\' and a name")
    return canonical_special_use("\\" + reader.atom("special-use attribute").decode("ascii"))


def canonical_special_use(attribute: str) -> str:
    """``\\sent`` -> ``\\Sent``: attributes are case-insensitive (RFC 3501 §7.2.2
    uses atoms); the RFC 6154 names get their registered spelling."""
    known = {name.upper(): name for name in SPECIAL_USE_ATTRIBUTES}
    return known.get(attribute.upper(), canonical_flag(attribute))


SPECIAL_USE_ATTRIBUTES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


def parse_create(reader: Reader, tag: str) -> c.Command:
    """``create = "CREATE" SP mailbox [create-params]`` (RFC 4466 §2.3),
    ``create-params = SP "(" create-param *(SP create-param) ")"``,
    ``create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"``
    (RFC 6154 §6). USE is the only parameter we know; it may appear once."""
    reader.sp("mailbox name")
    mailbox = reader.mailbox()
    if reader.peek() != 0x20:
        return c.Create(tag, mailbox)
    reader.sp("CREATE parameters")
    reader.expect(b"(", "Invalid CREATE parameters: expected '('")
    reader.enter()
    name = reader.keyword()
    if name != "USE":
        raise ParseError(f"Unknown CREATE parameter {name[:40]}")
    reader.sp("special-use attributes")
    reader.expect(b"(", "Invalid USE parameter: expected '('")
    uses: list[str] = []
    while not reader.skip(b")"):
        if uses:
            reader.expect(b" ", "Invalid USE parameter: expected space or ')'")
        uses.append(_use_attribute(reader))
    reader.expect(b")", "Invalid CREATE parameters: expected ')' (USE may appear once)")
    reader.leave()
    return c.Create(tag, mailbox, tuple(dict.fromkeys(uses)))


def _append_message(reader: Reader) -> c.AppendMessage:
    """``append-message = append-opts SP append-data`` with
    ``append-opts = [SP flag-list] [SP date-time]`` and ``append-data =
    literal / literal8`` (RFC 3502 §6, RFC 4466 §2.1, RFC 3516); the caller
    consumed the space before it."""
    flags: tuple[str, ...] = ()
    if reader.peek() == 0x28:  # "("
        reader.enter()
        flags = reader.flag_list()
        reader.leave()
        reader.sp("message literal")
    internal_date = None
    if reader.peek() == 0x22:  # '"'
        internal_date = reader.date_time()
        reader.sp("message literal")
    if at_catenate(reader):  # RFC 4469 §5
        return c.AppendMessage(flags, internal_date, b"", parse_catenate(reader))
    if reader.peek() not in (0x7B, 0x7E):
        raise ParseError("Invalid APPEND: the message must be a literal")
    # A large message stays in its spool file (``imapd.core.spool``).
    return c.AppendMessage(flags, internal_date, reader.literal_data("message", binary_ok=True))


def parse_append(reader: Reader, tag: str) -> c.Command:
    """``append = "APPEND" SP mailbox 1*append-message`` (RFC 3502 §6; one
    message is RFC 3501 §6.3.11). The message literals follow each other,
    each announced with its own ``{n}``."""
    reader.sp("mailbox name")
    mailbox = reader.mailbox()
    reader.sp("message literal")
    first = _append_message(reader)
    more: list[c.AppendMessage] = []
    while reader.peek() == 0x20:
        reader.sp("next message")
        more.append(_append_message(reader))
    return c.Append(tag, mailbox, first.flags, first.internal_date, first.message, tuple(more),
                    first.catenate)


__all__ = ["list_command", "parse_create", "parse_append", "SPECIAL_USE_ATTRIBUTES", "canonical_special_use"]

"""The rules the strict checks apply to one complete client command.

Each function reads a command frame (its lines with CRLF, literals inline,
as imapd's own parser takes them) with imapd's lexer and returns the text
of a violation, or None. Syntax errors are the server's business (it
answers BAD): a rule that cannot read its arguments says nothing.
"""

from __future__ import annotations

import base64
import binascii
import re

from imapd.core.model import SequenceSet
from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import ParseError, Reader
from imapd.imap.wire.mutf7 import decode_mutf7, encode_mutf7
from imapd.imap.wire.parse import parse_command
from imapd.testing.checks_session import (
    AUTHENTICATED, LOGOUT, NOT_AUTHENTICATED, SELECTED, ServerView,
)

# Where each command is valid (RFC 3501 §6.1-§6.4 and the extensions'
# "valid in" clauses). Commands not listed are not judged.
_ANY = frozenset({NOT_AUTHENTICATED, AUTHENTICATED, SELECTED})
_AUTH = frozenset({AUTHENTICATED, SELECTED})
_VALID_IN: dict[str, tuple[frozenset[str], str]] = {}
for _verbs, _states, _where in (
    ("CAPABILITY NOOP LOGOUT ID", _ANY, "in any state (RFC 3501 §6.1)"),
    ("LOGIN AUTHENTICATE STARTTLS", frozenset({NOT_AUTHENTICATED}),
     "before authentication, in the not authenticated state (RFC 3501 §6.2)"),
    ("SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND "
     "NAMESPACE IDLE GETQUOTA GETQUOTAROOT SETQUOTA COMPRESS GETACL SETACL DELETEACL "
     "LISTRIGHTS MYRIGHTS GETMETADATA SETMETADATA", _AUTH,
     "after authentication, in the authenticated or selected state (RFC 3501 §6.3)"),
    ("ENABLE", frozenset({AUTHENTICATED}),
     "in the authenticated state, before any mailbox is selected (RFC 5161 §3.1)"),
    ("CHECK CLOSE EXPUNGE SEARCH FETCH STORE COPY MOVE UNSELECT SORT THREAD CANCELUPDATE",
     frozenset({SELECTED}),
     "in the selected state, after a successful SELECT or EXAMINE (RFC 3501 §6.4)"),
):
    for _verb in _verbs.split():
        _VALID_IN[_verb] = (_states, _where)


def state_problem(verb: str, view: ServerView) -> str | None:
    """``command-in-wrong-state`` (RFC 3501 §3): judged against the state
    the connection reaches once the commands in progress succeed."""
    # Every UID command (RFC 3501 §6.4.8) is a selected-state command.
    rule = _VALID_IN["FETCH"] if verb.startswith("UID ") else _VALID_IN.get(verb)
    if rule is None:
        return None
    state = view.projected_state()
    if state == LOGOUT:
        return (f"{verb} was sent after LOGOUT ({view.state_note}); nothing may follow "
                "LOGOUT: the server closes the connection (RFC 3501 §3, §6.1.3).")
    states, where = rule
    if state in states:
        return None
    return (f"{verb} is valid only {where}, but the connection was in the {state} state "
            f"({view.state_note}).")


# --- mailbox names (RFC 3501 §5.1.3) ------------------------------------------------

_ONE_NAME = frozenset({
    "SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "STATUS",
    "APPEND", "GETQUOTAROOT", "GETACL", "MYRIGHTS", "LISTRIGHTS", "SETACL", "DELETEACL",
})


def _reader_after_verb(frame: bytes) -> Reader:
    """A reader past ``tag SP [UID SP] verb``."""
    reader = Reader(frame)
    reader.tag()
    reader.sp("command name")
    if reader.keyword() == "UID":
        reader.sp("command after UID")
        reader.keyword()
    return reader


# An unquoted argument with 8-bit octets: no astring (a syntax error the
# server answers BAD), but plainly meant as a name; the check says why.
_EIGHT_BIT_ATOM = re.compile(rb'[^\x00-\x20()"{]*[\x80-\xff][^\x00-\x20()"{]*')


def _name(reader: Reader, what: str) -> bytes:
    """An astring, or an unquoted run holding 8-bit octets (the lexer's
    atom stops at the first one)."""
    found = _EIGHT_BIT_ATOM.match(reader.data, reader.pos)
    if found is not None and reader.peek() not in (0x22, 0x7B):
        reader.pos = found.end()
        return found.group()
    return reader.astring(what)


def mailbox_arguments(verb: str, frame: bytes) -> list[bytes]:
    """The raw mailbox names (and LIST references and patterns) of a
    command, as sent: undecoded. Stops quietly at a syntax error."""
    names: list[bytes] = []
    try:
        reader = _reader_after_verb(frame)
        if verb in _ONE_NAME or verb == "RENAME":
            reader.sp()
            names.append(_name(reader, "mailbox name"))
            if verb == "RENAME":
                reader.sp()
                names.append(_name(reader, "mailbox name"))
        elif verb in ("LIST", "LSUB"):
            _list_names(reader, names)
        elif verb.removeprefix("UID ") in ("COPY", "MOVE"):
            reader.sp()
            reader.seqset()
            reader.sp()
            names.append(_name(reader, "mailbox name"))
    except ParseError:
        pass
    return names


def _list_names(reader: Reader, names: list[bytes]) -> None:
    """``LIST [(selection)] reference (pattern / "(" patterns ")")``
    (RFC 3501 §6.3.8, RFC 5258 §3)."""
    reader.sp()
    if reader.peek() == 0x28:   # selection options: atoms, no nesting
        close = reader.data.find(b")", reader.pos)
        if close < 0:
            return
        reader.pos = close + 1
        reader.sp()
    names.append(reader.astring("reference"))
    reader.sp()
    if not reader.skip(b"("):
        names.append(reader.list_mailbox())
        return
    while True:
        names.append(reader.list_mailbox())
        if not reader.skip(b" "):
            return


def mailbox_problem(raw: bytes, utf8_enabled: bool) -> str | None:
    """``mailbox-name-not-modified-utf7``: the name as sent, judged by
    RFC 3501 §5.1.3, or by RFC 6855 §3 (UTF-8) once UTF8=ACCEPT is enabled."""
    shown = raw.decode("utf-8", "backslashreplace")
    if utf8_enabled:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return (f'mailbox name "{shown}" is not valid UTF-8, which names must be once '
                    "UTF8=ACCEPT is enabled (RFC 6855 §3).")
        return None
    try:
        decode_mutf7(raw)
        return None
    except ValueError as error:
        reason = str(error)
    message = f'mailbox name "{shown}" is not valid modified UTF-7 ({reason}).'
    if any(byte >= 0x80 for byte in raw):
        message += (" Raw 8-bit octets (UTF-8) are allowed only after the client enabled "
                    "UTF8=ACCEPT (RFC 6855); a server that did not offer it cannot take them.")
    suggestion = _suggest(raw)
    if suggestion is not None and suggestion != raw:
        message += f' Encode the name as "{suggestion.decode("ascii")}".'
    return message


def _suggest(raw: bytes) -> bytes | None:
    """The canonical spelling of what the client probably meant: decodable
    shifts keep their text, any other ``&`` is an ampersand, 8-bit is UTF-8."""
    text: list[str] = []
    index = 0
    try:
        while index < len(raw):
            if raw[index] == 0x26:
                end = raw.find(b"-", index + 1)
                shifted = _lenient_run(raw[index + 1:end]) if end > index + 1 else None
                if shifted is not None:
                    text.append(shifted)
                    index = end + 1
                    continue
                text.append("&")
                index += 2 if end == index + 1 else 1
                continue
            stop = raw.find(b"&", index)
            stop = len(raw) if stop < 0 else stop
            text.append(raw[index:stop].decode("utf-8"))
            index = stop
        return encode_mutf7("".join(text))
    except ValueError:   # also UnicodeDecodeError: no sure suggestion
        return None


def _lenient_run(encoded: bytes) -> str | None:
    """A shifted run decoded without the canonical-form rules, or None."""
    try:
        padded = encoded.replace(b",", b"/") + b"=" * (-len(encoded) % 4)
        return base64.b64decode(padded, validate=True).decode("utf-16-be")
    except (binascii.Error, ValueError):
        return None


# --- sequence numbers and UIDs (RFC 3501 §2.3.1, §6.4.8, §9) ---------------------------

SEQUENCE_VERBS = frozenset({"FETCH", "STORE", "COPY", "MOVE"})


def sequence_set(frame: bytes) -> tuple[SequenceSet, str] | None:
    """The set of a [UID] FETCH/STORE/COPY/MOVE and its spelling, or None."""
    try:
        reader = _reader_after_verb(frame)
        reader.sp()
        start = reader.pos
        found = reader.seqset()
        return found, reader.data[start:reader.pos].decode("ascii")
    except ParseError:
        return None


def _explicit_numbers(seqset: SequenceSet, with_star: bool = True) -> list[int]:
    """The numbers written in the set (range ends, not what lies between);
    without the ranges that end in ``*`` unless ``with_star``."""
    return [n for r in seqset.ranges
            if with_star or (r.start is not None and r.end is not None)
            for n in (r.start, r.end) if n is not None]


def beyond_exists(verb: str, spelled: str, seqset: SequenceSet, view: ServerView,
                  alone: bool) -> tuple[str, str] | None:
    """``sequence-number-beyond-exists`` or its refinement
    ``uid-as-sequence-number``: (check, message) for a plain command.
    ``alone``: no other command was in progress. Ranges with ``*`` are
    judged only then: a client may pipeline ``FETCH 1:*`` after SELECT,
    before EXISTS arrives, and ``*`` is resolved by the server."""
    limit = view.limit
    told = (f'the server has reported {limit} message{"" if limit == 1 else "s"}, '
            f'last in "{view.exists_note}"')
    has_star = any(r.start is None or r.end is None for r in seqset.ranges)
    if has_star and limit == 0 and alone:
        return "sequence-number-beyond-exists", (
            f"{verb} {spelled}: '*' means the last message, but the mailbox is empty "
            f'(last: "{view.exists_note}"); RFC 3501 §9 makes that an error. Check the '
            f"EXISTS count first, or use UID {verb}, where a set matching nothing is no error.")
    over = sorted({n for n in _explicit_numbers(seqset, with_star=alone) if n > limit})
    if not over:
        return None
    uid_hint = _uid_hint(over, view)
    if uid_hint is not None:
        return "uid-as-sequence-number", (
            f"{verb} {spelled}: {over[0]} is not a message sequence number ({told}), but "
            f"{uid_hint}. Plain {verb} takes sequence numbers; to address messages by UID "
            f"send UID {verb} {spelled}.")
    return "sequence-number-beyond-exists", (
        f"{verb} {spelled}: message sequence number {over[0]} does not exist: {told}. "
        "Count EXISTS and EXPUNGE responses (each EXPUNGE renumbers the messages after "
        f"it), or address messages by UID with UID {verb}.")


def _uid_hint(numbers: list[int], view: ServerView) -> str | None:
    for number in numbers:
        if number in view.uid_search:
            return f"{number} is a UID the last UID SEARCH returned"
        if number in view.known_uids:
            table = view.uid_by_seq or []
            where = next((f" (message {i + 1})" for i, u in enumerate(table) if u == number), "")
            return f"{number} is the UID of a message in this mailbox{where}"
    return None


def sequence_as_uid(verb: str, spelled: str, seqset: SequenceSet,
                    view: ServerView) -> str | None:
    """``sequence-number-as-uid``: a UID command given exactly numbers a
    plain SEARCH returned, none of them a UID, each the sequence number
    of a message whose UID the client was told and is different."""
    table = view.uid_by_seq
    if table is None or not view.seq_search or any(r.start != r.end for r in seqset.ranges):
        return None
    numbers = _explicit_numbers(seqset)
    if not numbers:
        return None
    for number in numbers:
        if (number not in view.seq_search or number in view.known_uids
                or number > len(table) or table[number - 1] in (None, number)):
            return None
    sample = numbers[0]
    return (f"{verb} {spelled}: these are the sequence numbers the last plain SEARCH "
            f"returned, not UIDs (message {sample} has UID {table[sample - 1]}). Use UID "
            f"SEARCH to get UIDs, or send {verb.removeprefix('UID ')} without UID.")


# --- quoted strings (RFC 3501 §4.3) and QRESYNC (RFC 7162) -------------------------

_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\.)*)"')


def eight_bit_quoted(lines: list[bytes], skip: frozenset[bytes], hide: bool = False) -> str | None:
    """``eight-bit-in-quoted-string``: the first quoted string of the
    command's lines holding an octet >= 0x80 (literal octets are not in
    ``lines``), unless it is in ``skip`` (a name judged by another check).
    ``hide``: do not quote it (LOGIN: it may be the password)."""
    for line in lines:
        for found in _QUOTED.finditer(line):
            content = found.group(1)
            if content in skip or not any(byte >= 0x80 for byte in content):
                continue
            shown = "***" if hide else content.decode("utf-8", "backslashreplace")
            size = len(re.sub(rb"\\(.)", rb"\1", content))   # the octets once unescaped
            return (f'the quoted string "{shown}" contains 8-bit octets, but quoted strings '
                    f"are 7-bit (RFC 3501 §4.3, §9 QUOTED-CHAR); send 8-bit text as a literal "
                    f"{{{size}}} (for SEARCH, with its CHARSET), or first ENABLE UTF8=ACCEPT "
                    "where the server offers it (RFC 6855 §3).")
    return None


def qresync_problem(frame: bytes, enabled: set[str]) -> str | None:
    """``qresync-not-enabled``: SELECT/EXAMINE (QRESYNC ...) or UID FETCH
    (... VANISHED) before ENABLE QRESYNC succeeded."""
    if "QRESYNC" in enabled:
        return None
    command = parse_command(frame)
    if isinstance(command, (c.Select, c.Examine)) and command.qresync is not None:
        verb = "SELECT" if isinstance(command, c.Select) else "EXAMINE"
        return (f"{verb} with the QRESYNC parameter, but the client has not enabled QRESYNC "
                "(no \"* ENABLED QRESYNC\" so far): send ENABLE QRESYNC first, before selecting "
                "(RFC 7162 §3.2.5: the server must answer BAD).")
    if isinstance(command, c.Fetch) and command.vanished:
        return ("UID FETCH with the VANISHED modifier, but the client has not enabled QRESYNC "
                "(no \"* ENABLED QRESYNC\" so far): send ENABLE QRESYNC first (RFC 7162 "
                "§3.2.6: the server must answer BAD).")
    return None


# --- \Recent (RFC 3501 §2.3.2) ---------------------------------------------------------

def recent_flag_problem(frame: bytes) -> str | None:
    """``recent-flag-set``: STORE or APPEND naming \\Recent."""
    command = parse_command(frame)
    if isinstance(command, c.Store) and "\\Recent" in command.flags:
        return ("STORE names \\Recent, which only the server sets (RFC 3501 §2.3.2: the "
                "client cannot alter it). Leave \\Recent out of STORE's flag list.")
    if isinstance(command, c.Append):
        flags = [command.flags, *(m.flags for m in command.more)]
        if any("\\Recent" in group for group in flags):
            return ("APPEND gives the new message \\Recent, which only the server sets "
                    "(RFC 3501 §2.3.2, §6.3.11). Leave \\Recent out of APPEND's flags.")
    return None

"""Client-side command encoder: command values -> wire bytes (RFC 3501 §6, §9).

Used by tests (``parse_command(encode_command(c)) == c``) and by the
benchmark load generator; the server never sends commands. Strings are
written as atoms when the grammar allows, quoted when they are 7-bit text,
and as literals otherwise (``{n}``, or ``{n+}`` with ``nonsync=True``,
RFC 7888). Raises ValueError for commands that cannot be expressed (e.g. a
negative number or a keyword that is not an atom).
"""

from __future__ import annotations

import datetime

from imapd.core.model import ANSWERED, DELETED, DRAFT, FLAGGED, RECENT, SEEN, SequenceSet
from imapd.core.spool import message_bytes
from imapd.imap.wire import commands as c
from imapd.imap.wire.lexer import ASTRING_CHARS, ATOM_CHARS, LIST_CHARS
from imapd.imap.wire.mutf7 import encode_mutf7
from imapd.imap.wire.parse.search import HEADER_SHORTHANDS

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ATOM_SET = frozenset(ATOM_CHARS)
_ASTRING_SET = frozenset(ASTRING_CHARS)
_LIST_SET = frozenset(LIST_CHARS)
_QUOTABLE = frozenset(range(0x01, 0x80)) - frozenset(b"\r\n")
_FLAG_NAMES = {
    (ANSWERED, True): "ANSWERED", (DELETED, True): "DELETED", (DRAFT, True): "DRAFT",
    (FLAGGED, True): "FLAGGED", (RECENT, True): "RECENT", (SEEN, True): "SEEN",
    (ANSWERED, False): "UNANSWERED", (DELETED, False): "UNDELETED", (DRAFT, False): "UNDRAFT",
    (FLAGGED, False): "UNFLAGGED", (RECENT, False): "OLD", (SEEN, False): "UNSEEN",
}


class _Out:
    """Builds one command; knows how literals are announced."""

    def __init__(self, nonsync: bool) -> None:
        self.parts: list[bytes] = []
        self.nonsync = nonsync

    def add(self, data: bytes) -> None:
        self.parts.append(data)

    def literal(self, data: bytes, binary: bool = False) -> None:
        marker = b"+" if self.nonsync else b""
        self.parts.append(b"%s{%d%s}\r\n" % (b"~" if binary else b"", len(data), marker) + data)

    def string(self, data: bytes, atom_chars: frozenset[int] | None = None) -> None:
        """An astring (``atom_chars`` given) or a string: atom, quoted or literal."""
        if atom_chars is not None and data and atom_chars.issuperset(data):
            self.parts.append(data)
        elif _QUOTABLE.issuperset(data) and len(data) <= 1000:
            self.parts.append(b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        else:
            self.literal(data)

    def astring(self, data: bytes) -> None:
        self.string(data, _ASTRING_SET)

    def mailbox(self, name: str) -> None:
        self.astring(encode_mutf7(name))

    def atom(self, text: str) -> None:
        data = text.encode("ascii")
        if not data or not _ATOM_SET.issuperset(data):
            raise ValueError(f"not an atom: {text!r}")
        self.parts.append(data)


def encode_command(command: c.Command, nonsync: bool = False) -> bytes:
    """The bytes a client sends for ``command``, final CRLF included."""
    out = _Out(nonsync)
    out.add(command.tag.encode("ascii") + b" ")
    _write_command(out, command)
    out.add(b"\r\n")
    return b"".join(out.parts)


def _write_command(out: _Out, cmd: c.Command) -> None:
    if isinstance(cmd, (c.Capability, c.Noop, c.Logout, c.StartTLS, c.Check, c.Close, c.Expunge)):
        out.add(_SIMPLE_NAMES[type(cmd)])
    elif isinstance(cmd, c.Authenticate):
        out.add(b"AUTHENTICATE " + cmd.mechanism.encode("ascii"))
        if cmd.initial_response is not None:
            out.add(b" " + cmd.initial_response)
    elif isinstance(cmd, c.Login):
        out.add(b"LOGIN ")
        out.astring(cmd.username.encode("utf-8"))
        out.add(b" ")
        out.astring(cmd.password.value)
    elif isinstance(cmd, (c.Select, c.Examine, c.Create, c.Delete, c.Subscribe, c.Unsubscribe)):
        out.add(type(cmd).__name__.upper().encode("ascii") + b" ")
        out.mailbox(cmd.mailbox)
        if isinstance(cmd, (c.Select, c.Examine)):
            out.add(encode_select_params(cmd.condstore, cmd.qresync))
        if isinstance(cmd, c.Create) and cmd.special_use is not None:
            out.add(b" (USE (" + b" ".join(_flag(use) for use in cmd.special_use) + b"))")
    elif isinstance(cmd, c.Rename):
        out.add(b"RENAME ")
        out.mailbox(cmd.old)
        out.add(b" ")
        out.mailbox(cmd.new)
    elif isinstance(cmd, c.List) and cmd.extended:
        _write_extended_list(out, cmd)
    elif isinstance(cmd, (c.List, c.Lsub)):
        out.add(b"LSUB " if isinstance(cmd, c.Lsub) else b"LIST ")
        out.astring(encode_mutf7(cmd.reference))
        out.add(b" ")
        out.string(encode_mutf7(cmd.pattern), _LIST_SET)
    elif isinstance(cmd, c.Status):
        out.add(b"STATUS ")
        out.mailbox(cmd.mailbox)
        out.add(b" (" + " ".join(cmd.items).encode("ascii") + b")")
    elif isinstance(cmd, c.Append):
        _write_append(out, cmd)
    elif isinstance(cmd, (c.Idle, c.Namespace, c.Unselect, c.Enable, c.Id, c.Compress)):
        _write_session_extension(out, cmd)
    elif isinstance(cmd, c.Thread):  # RFC 5256 §4: the charset is not optional
        out.add(b"UID THREAD " if cmd.uid else b"THREAD ")
        out.add(cmd.algorithm.value.encode("ascii") + b" ")
        out.astring(cmd.charset.encode("ascii"))
        out.add(b" ")
        _write_search_keys(out, cmd.criteria.keys, cmd.charset)
    elif isinstance(cmd, c.CancelUpdate):  # RFC 5267 §4.3
        out.add(b"CANCELUPDATE")
        for search_tag in cmd.search_tags:
            out.add(b" ")
            out.string(search_tag.encode("utf-8"))
    elif isinstance(cmd, (c.GetQuota, c.GetQuotaRoot, c.SetQuota)):
        _write_quota(out, cmd)
    else:
        _write_selected(out, cmd)


def _write_quota(out: _Out, cmd: c.GetQuota | c.GetQuotaRoot | c.SetQuota) -> None:
    """GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208 §4.1, grammar §7)."""
    if isinstance(cmd, c.GetQuotaRoot):
        out.add(b"GETQUOTAROOT ")
        out.mailbox(cmd.mailbox)
        return
    out.add(b"GETQUOTA " if isinstance(cmd, c.GetQuota) else b"SETQUOTA ")
    out.astring(cmd.root.encode("utf-8"))
    if isinstance(cmd, c.SetQuota):
        out.add(b" (" + b" ".join(b"%s %d" % (name.encode("ascii"), limit)
                                  for name, limit in cmd.limits) + b")")


_SIMPLE_NAMES: dict[type, bytes] = {
    c.Capability: b"CAPABILITY", c.Noop: b"NOOP", c.Logout: b"LOGOUT",
    c.StartTLS: b"STARTTLS", c.Check: b"CHECK", c.Close: b"CLOSE", c.Expunge: b"EXPUNGE",
}


def _write_append(out: _Out, cmd: c.Append) -> None:
    """APPEND (RFC 3501 §6.3.11); several messages for MULTIAPPEND (RFC 3502)."""
    out.add(b"APPEND ")
    out.mailbox(cmd.mailbox)
    for message in cmd.messages:
        if message.flags:
            out.add(b" ")
            _write_flag_list(out, message.flags)
        if message.internal_date is not None:
            out.add(b" " + encode_date_time(message.internal_date))
        out.add(b" ")
        data = message_bytes(message.message)  # a spooled message is copied
        out.literal(data, binary=b"\x00" in data)


def _write_extended_list(out: _Out, cmd: c.List) -> None:
    """``LIST [(selection)] reference (patterns) [RETURN (options)]``
    (RFC 5258 §6, RFC 5819 §4 ``STATUS (items)``)."""
    out.add(b"LIST ")
    if cmd.selection is not None:
        out.add(b"(" + " ".join(cmd.selection).encode("ascii") + b") ")
    out.astring(encode_mutf7(cmd.reference))
    out.add(b" ")
    if cmd.patterns is None:
        out.string(encode_mutf7(cmd.pattern), _LIST_SET)
    else:
        if not cmd.patterns or cmd.patterns[0] != cmd.pattern:
            raise ValueError("LIST patterns must start with the pattern")
        out.add(b"(")
        for index, pattern in enumerate(cmd.patterns):
            out.add(b" " if index else b"")
            out.string(encode_mutf7(pattern), _LIST_SET)
        out.add(b")")
    if cmd.return_options is not None:
        options = [
            f"STATUS ({' '.join(cmd.status_items)})" if option == "STATUS" else option
            for option in cmd.return_options
        ]
        out.add(b" RETURN (" + " ".join(options).encode("ascii") + b")")


def _write_session_extension(
    out: _Out, cmd: c.Idle | c.Namespace | c.Unselect | c.Enable | c.Id | c.Compress
) -> None:
    """IDLE (RFC 2177), NAMESPACE (RFC 2342), UNSELECT (RFC 3691), ENABLE
    (RFC 5161), ID (RFC 2971), COMPRESS (RFC 4978)."""
    if isinstance(cmd, c.Enable):
        if not cmd.capabilities:
            raise ValueError("ENABLE needs at least one capability")
        out.add(b"ENABLE")
        for name in cmd.capabilities:
            out.add(b" ")
            out.atom(name)
    elif isinstance(cmd, c.Id):
        out.add(b"ID ")
        if cmd.params is None:
            out.add(b"NIL")
            return
        out.add(b"(")
        for index, (field, value) in enumerate(cmd.params):
            out.add(b" " if index else b"")
            out.string(field.encode("utf-8"))
            out.add(b" ")
            if value is None:
                out.add(b"NIL")
            else:
                out.string(value.encode("utf-8"))
        out.add(b")")
    elif isinstance(cmd, c.Compress):
        out.add(b"COMPRESS ")
        out.atom(cmd.algorithm)
    else:
        out.add(type(cmd).__name__.upper().encode("ascii"))


def _write_selected(out: _Out, cmd: c.Command) -> None:
    if isinstance(cmd, (c.Search, c.Fetch, c.Store, c.Copy, c.Move, c.Sort)) and cmd.uid:
        out.add(b"UID ")
    if isinstance(cmd, c.Sort):  # RFC 5256 §4: the charset is not optional
        criteria = " ".join(("REVERSE " if k.reverse else "") + k.key.value for k in cmd.program)
        out.add(b"SORT ")
        if cmd.return_options is not None:  # RFC 5267 §3.2 ESORT
            options = [
                f"PARTIAL {cmd.partial[0]}:{cmd.partial[1]}"
                if option == c.PARTIAL and cmd.partial is not None else option
                for option in cmd.return_options
            ]
            out.add(b"RETURN (" + " ".join(options).encode("ascii") + b") ")
        out.add(b"(" + criteria.encode("ascii") + b") ")
        out.astring(cmd.charset.encode("ascii"))
        out.add(b" ")
        _write_search_keys(out, cmd.criteria.keys, cmd.charset)
    elif isinstance(cmd, c.Search):
        out.add(b"SEARCH ")
        if cmd.return_options is not None:
            options = [
                f"PARTIAL {cmd.partial[0]}:{cmd.partial[1]}"
                if option == c.PARTIAL and cmd.partial is not None else option
                for option in cmd.return_options
            ]
            out.add(b"RETURN (" + " ".join(options).encode("ascii") + b") ")
        if cmd.charset is not None:
            out.add(b"CHARSET ")
            out.astring(cmd.charset.encode("ascii"))
            out.add(b" ")
        _write_search_keys(out, cmd.criteria.keys, cmd.charset)
    elif isinstance(cmd, c.Fetch):
        out.add(b"FETCH " + encode_seqset(cmd.seqset) + b" (")
        out.add(b" ".join(encode_fetch_attribute(a) for a in cmd.attributes) + b")")
        out.add(encode_fetch_modifiers(cmd.changedsince, cmd.vanished))
    elif isinstance(cmd, c.Store):
        silent = b".SILENT" if cmd.silent else b""
        out.add(b"STORE " + encode_seqset(cmd.seqset))
        if cmd.unchangedsince is not None:
            out.add(b" (UNCHANGEDSINCE %d)" % _modseq(cmd.unchangedsince, zero_ok=True))
        out.add(b" " + cmd.mode.value.encode() + silent + b" ")
        _write_flag_list(out, cmd.flags)
    elif isinstance(cmd, (c.Copy, c.Move)):
        out.add(b"COPY " if isinstance(cmd, c.Copy) else b"MOVE ")
        out.add(encode_seqset(cmd.seqset) + b" ")
        out.mailbox(cmd.mailbox)
    elif isinstance(cmd, c.UidExpunge):
        out.add(b"UID EXPUNGE " + encode_seqset(cmd.seqset))
    else:
        raise TypeError(f"not a command: {cmd!r}")


# --- CONDSTORE / QRESYNC pieces (RFC 7162 §7) --------------------------------------

def _modseq(value: int, zero_ok: bool = False) -> int:
    if not (0 if zero_ok else 1) <= value < 2**63:
        raise ValueError(f"invalid mod-sequence {value}")
    return value


def _plain_seqset(seqset: SequenceSet) -> bytes:
    """A set where ``*`` and ``$`` are not allowed (QRESYNC known sets)."""
    if seqset.saved or any(r.start is None or r.end is None for r in seqset.ranges):
        raise ValueError("'*' and '$' are not allowed here")
    return encode_seqset(seqset)


def encode_select_params(condstore: bool, qresync: c.QResync | None) -> bytes:
    """`` (CONDSTORE QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]))``,
    or nothing when neither is given (RFC 7162 §3.1.8, §3.2.5)."""
    params: list[bytes] = [b"CONDSTORE"] if condstore else []
    if qresync is not None:
        if not 0 < qresync.uidvalidity < 2**32:
            raise ValueError(f"invalid UIDVALIDITY {qresync.uidvalidity}")
        text = b"QRESYNC (%d %d" % (qresync.uidvalidity, _modseq(qresync.modseq))
        if qresync.known_uids is not None:
            text += b" " + _plain_seqset(qresync.known_uids)
        if qresync.seq_match is not None:
            sequences, uids = qresync.seq_match
            text += b" (" + _plain_seqset(sequences) + b" " + _plain_seqset(uids) + b")"
        params.append(text + b")")
    return b" (" + b" ".join(params) + b")" if params else b""


def encode_fetch_modifiers(changedsince: int | None, vanished: bool) -> bytes:
    """`` (CHANGEDSINCE n [VANISHED])`` (RFC 7162 §3.1.4.1, §3.2.6) or nothing."""
    if changedsince is None:
        if vanished:
            raise ValueError("VANISHED requires CHANGEDSINCE")
        return b""
    text = b" (CHANGEDSINCE %d" % _modseq(changedsince, zero_ok=True)
    return text + (b" VANISHED)" if vanished else b")")


# --- pieces ---------------------------------------------------------------------

def encode_seqset(seqset: SequenceSet) -> bytes:
    """RFC 3501 ``sequence-set`` (``$`` for a saved result, RFC 5182)."""
    if seqset.saved:
        return b"$"
    if not seqset.ranges:
        raise ValueError("empty sequence set")

    def number(n: int | None) -> bytes:
        if n is None:
            return b"*"
        if not 0 < n < 2**32:
            raise ValueError(f"invalid sequence number {n}")
        return b"%d" % n

    return b",".join(
        number(r.start) if r.start == r.end else number(r.start) + b":" + number(r.end)
        for r in seqset.ranges
    )


def encode_date_time(moment: datetime.datetime) -> bytes:
    """RFC 3501 ``date-time``: ``"dd-Mon-yyyy hh:mm:ss +zzzz"``."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("date-time must be timezone-aware")
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    text = (f'"{moment.day:2d}-{_MONTHS[moment.month - 1]}-{moment.year:04d} '
            f'{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {zone}"')
    return text.encode("ascii")


def encode_date(day: datetime.date) -> bytes:
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year:04d}".encode("ascii")


def _write_flag_list(out: _Out, flags: tuple[str, ...]) -> None:
    out.add(b"(" + b" ".join(_flag(f) for f in flags) + b")")


def _flag(flag: str) -> bytes:
    name = flag[1:] if flag.startswith("\\") else flag
    data = name.encode("ascii")
    if not data or not _ATOM_SET.issuperset(data):
        raise ValueError(f"not a flag: {flag!r}")
    return flag.encode("ascii")


def encode_fetch_attribute(attribute: c.FetchAttribute) -> bytes:
    """One ``fetch-att`` (RFC 3501 §6.4.5, RFC 3516 §6 BINARY)."""
    section = attribute.section or c.Section()
    if attribute.kind is c.FetchKind.BINARY_SIZE:
        return f"BINARY.SIZE[{'.'.join(str(n) for n in section.part)}]".encode("ascii")
    if attribute.kind not in (c.FetchKind.BODY_SECTION, c.FetchKind.BINARY_SECTION):
        return str(attribute.kind.value).encode("ascii")
    spec = [str(n) for n in section.part]
    if section.text is not None:
        spec.append(section.text.value)
    text = ".".join(spec)
    if section.fields:
        text += " (" + " ".join(_header_name(f) for f in section.fields) + ")"
    name = "BINARY" if attribute.kind is c.FetchKind.BINARY_SECTION else "BODY"
    name += ".PEEK" if attribute.peek else ""
    partial = ""
    if attribute.partial is not None:
        partial = f"<{attribute.partial.origin}.{attribute.partial.count}>"
    return f"{name}[{text}]{partial}".encode("ascii")


def _header_name(name: str) -> str:
    """A header-fld-name astring: bare when atom-safe, else quoted."""
    data = name.encode("ascii")
    if data and _ASTRING_SET.issuperset(data):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _search_string(out: _Out, value: str, charset: str | None) -> None:
    out.astring(value.encode("utf-8"))


def _write_search_keys(out: _Out, keys: tuple[c.SearchKey, ...], charset: str | None) -> None:
    for index, key in enumerate(keys):
        if index:
            out.add(b" ")
        _write_search_key(out, key, charset)


def _write_search_key(out: _Out, key: c.SearchKey, charset: str | None) -> None:
    """One ``search-key`` (RFC 3501 §6.4.4); nested ANDs are parenthesised."""
    if isinstance(key, c.SearchAll):
        out.add(b"ALL")
    elif isinstance(key, c.SearchFlag):
        name = _FLAG_NAMES.get((key.flag, key.present))
        if name is not None:
            out.add(name.encode("ascii"))
        else:
            out.add(b"KEYWORD " if key.present else b"UNKEYWORD ")
            out.atom(key.flag)
    elif isinstance(key, c.SearchDate):
        prefix = "SENT" if key.field is c.DateField.SENT else ""
        out.add(f"{prefix}{key.op.value} ".encode("ascii") + encode_date(key.date))
    elif isinstance(key, c.SearchHeader):
        if key.field in HEADER_SHORTHANDS:
            out.add(key.field.encode("ascii") + b" ")
        else:
            out.add(b"HEADER ")
            out.astring(key.field.encode("ascii"))
            out.add(b" ")
        _search_string(out, key.value, charset)
    elif isinstance(key, c.SearchText):
        out.add(key.scope.value.encode("ascii") + b" ")
        _search_string(out, key.value, charset)
    elif isinstance(key, c.SearchSize):
        if key.size < 0:
            raise ValueError("negative size")
        out.add(b"%s %d" % (b"LARGER" if key.larger else b"SMALLER", key.size))
    elif isinstance(key, c.SearchSeq):
        out.add(encode_seqset(key.seqset))
    elif isinstance(key, c.SearchUid):
        out.add(b"UID " + encode_seqset(key.seqset))
    elif isinstance(key, c.SearchNot):
        out.add(b"NOT ")
        _write_search_key(out, key.key, charset)
    elif isinstance(key, c.SearchOr):
        out.add(b"OR ")
        _write_search_key(out, key.left, charset)
        out.add(b" ")
        _write_search_key(out, key.right, charset)
    elif isinstance(key, c.SearchModSeq):
        out.add(b"MODSEQ ")
        if key.entry is not None:
            out.string(key.entry.encode("ascii"))
            out.add(b" " + (key.entry_type or "all").encode("ascii") + b" ")
        out.add(b"%d" % _modseq(key.modseq, zero_ok=True))
    else:
        if not key.keys:
            raise ValueError("empty search key list")
        out.add(b"(")
        _write_search_keys(out, key.keys, charset)
        out.add(b")")

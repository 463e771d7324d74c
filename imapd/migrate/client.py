"""The source side of ``imapd migrate``: a blocking IMAP client on the
stdlib's ``imaplib`` (run it in a worker thread, never on the reactor).

Only what a migration reads: LIST (RFC 3501 §6.3.8, with RFC 6154
special-use attributes where the server gives them), EXAMINE (§6.3.2: read
only, so the source's ``\\Seen`` and ``\\Recent`` stay as they are), FETCH
by sequence ranges for the message summaries and UID FETCH of ``BODY.PEEK[]``
for the bytes (§6.4.5, §6.4.8). Responses are parsed here (imaplib hands
them back raw): a FETCH response is one list of attribute/value pairs
(§7.4.2) whose literals imaplib has already read.

Memory: each literal is read once into one ``bytes`` (imaplib) and handed
on as is; the caller asks for bounded batches.
"""

from __future__ import annotations

import contextlib
import datetime
import imaplib
import re
import ssl
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence
from urllib.parse import unquote, urlsplit

from imapd.imap.wire.mutf7 import decode_mutf7
from imapd.message import analyze

LOOPBACK = ("127.0.0.1", "::1", "localhost")
_MONTHS = {name: i for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_DATE = re.compile(r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\s*")
_NEW_MESSAGE = re.compile(rb"\d+ \(")
_LITERAL_AT_END = re.compile(rb"\{(\d+)\}$")
_MARK = b"\x00"  # stands for a literal in joined response text (NUL never occurs in IMAP text)


class SourceError(Exception):
    """The source server refused or broke off (one line for the operator)."""


@dataclass(frozen=True, slots=True)
class SourceURL:
    """``imaps://USER@HOST[:PORT]`` (RFC 8314 implicit TLS, port 993) or
    ``imap://USER@HOST[:PORT]`` (port 143: STARTTLS, RFC 3501 §6.2.1, or
    plaintext to a loopback address only)."""

    tls: bool
    user: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> SourceURL:
        parts = urlsplit(text)
        if parts.scheme not in ("imap", "imaps"):
            raise ValueError(f"{text!r}: give imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]")
        if parts.password is not None:
            raise ValueError("no password in the URL: use --password-file, the prompt or "
                             "$IMAPD_MIGRATE_PASSWORD")
        if not parts.username or not parts.hostname:
            raise ValueError(f"{text!r}: the URL needs USER@HOST")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{text!r}: bad port") from None
        tls = parts.scheme == "imaps"
        return cls(tls, unquote(parts.username), parts.hostname, port or (993 if tls else 143))

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK or self.host.startswith("127.")

    def __str__(self) -> str:
        return f"{'imaps' if self.tls else 'imap'}://{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Folder:
    """One LIST entry: ``name`` decoded (RFC 3501 §5.1.3 modified UTF-7),
    ``raw`` as the server spells it (for EXAMINE), its hierarchy delimiter
    (None: flat) and name attributes (RFC 3501 §7.2.2, RFC 6154 §2);
    ``prefix``: the server's personal namespace prefix (RFC 2342, Courier's
    and cPanel's ``INBOX.``), which the local name leaves out."""

    name: str
    raw: bytes
    delimiter: str | None
    attributes: tuple[str, ...]
    prefix: str = ""

    @property
    def selectable(self) -> bool:
        lowered = {a.lower() for a in self.attributes}
        return "\\noselect" not in lowered and "\\nonexistent" not in lowered


@dataclass(frozen=True, slots=True)
class Summary:
    """What the copy decides on, before any body is fetched."""

    uid: int
    flags: tuple[str, ...]
    internal_date: datetime.datetime
    size: int
    message_id: bytes | None


def parse_internal_date(text: str) -> datetime.datetime:
    """``date-time`` of RFC 3501 §9 (``"17-Jul-1996 02:44:25 -0700"``) as an
    aware datetime; month names are English whatever the locale."""
    match = _DATE.fullmatch(text)
    if match is None or match.group(2).capitalize() not in _MONTHS:
        raise SourceError(f"bad INTERNALDATE from the source: {text!r}")
    day, month, year, hh, mm, ss, sign, zh, zm = match.groups()
    offset = datetime.timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == "-" else 1)
    return datetime.datetime(int(year), _MONTHS[month.capitalize()], int(day), int(hh), int(mm),
                             int(ss), tzinfo=datetime.timezone(offset))


def message_id_of(header: bytes) -> bytes | None:
    """The Message-ID a header block carries, read by imapd's own analysis
    (so both sides of the comparison unfold it the same way)."""
    envelope = analyze(header if header.endswith(b"\r\n\r\n") else header + b"\r\n\r\n").root.envelope
    return envelope.message_id if envelope is not None else None


# --- response text -------------------------------------------------------------------

def _joined(parts: Sequence[Any]) -> tuple[bytes, list[bytes]]:
    """imaplib's pieces of one response (bytes, or (prefix ending in
    ``{n}``, literal) tuples) as one text with ``_MARK`` where each literal
    was, and the literals in order."""
    text: list[bytes] = []
    literals: list[bytes] = []
    for part in parts:
        if isinstance(part, tuple):
            text.append(_LITERAL_AT_END.sub(_MARK, part[0]))
            literals.append(part[1])
        else:
            text.append(part)
    return b"".join(text), literals


def parse_values(text: bytes, literals: list[bytes]) -> list[Any]:
    """The values of a response's text (RFC 3501 §4): a list of atoms and
    strings as bytes (NIL as None), parenthesized lists as lists; an atom
    with a ``[section]`` (``BODY[HEADER.FIELDS (MESSAGE-ID)]``) is one atom."""
    stack: list[list[Any]] = [[]]
    pending = iter(literals)
    i, n = 0, len(text)
    while i < n:
        c = text[i:i + 1]
        if c in b" \r\n":
            i += 1
        elif c == b"(":
            stack.append([])
            i += 1
        elif c == b")":
            if len(stack) == 1:
                raise SourceError("unbalanced ')' in a response from the source")
            done = stack.pop()
            stack[-1].append(done)
            i += 1
        elif c == _MARK:
            stack[-1].append(next(pending))
            i += 1
        elif c == b'"':
            j, out = i + 1, bytearray()
            while j < n and text[j:j + 1] != b'"':
                if text[j:j + 1] == b"\\":
                    j += 1
                out += text[j:j + 1]
                j += 1
            stack[-1].append(bytes(out))
            i = j + 1
        else:
            j = i
            while j < n and text[j:j + 1] not in b" ()\"\x00":
                if text[j:j + 1] == b"[":
                    j = text.find(b"]", j)
                    if j < 0:
                        raise SourceError("unterminated '[' in a response from the source")
                j += 1
            atom = text[i:j]
            stack[-1].append(None if atom.upper() == b"NIL" else atom)
            i = j
    if len(stack) != 1:
        raise SourceError("unbalanced '(' in a response from the source")
    return stack[0]


def fetch_items(data: Sequence[Any]) -> Iterator[dict[bytes, Any]]:
    """One attribute dict (upper-case names) per FETCH response in
    imaplib's ``data``: a response starts with ``N (``; anything else
    continues the previous one (text after a literal)."""
    group: list[Any] = []
    for part in data:
        head = part[0] if isinstance(part, tuple) else part
        if part is None:
            continue
        if _NEW_MESSAGE.match(head) and group:
            yield _items(group)
            group = []
        group.append(part)
    if group:
        yield _items(group)


def _items(group: list[Any]) -> dict[bytes, Any]:
    values = parse_values(*_joined(group))
    if len(values) != 2 or not isinstance(values[1], list) or len(values[1]) % 2:
        raise SourceError("malformed FETCH response from the source")
    pairs = values[1]
    return {bytes(pairs[k]).upper(): pairs[k + 1] for k in range(0, len(pairs), 2)}


def quoted(name: bytes) -> str:
    """A mailbox name as an IMAP quoted string (RFC 3501 §4.3)."""
    return '"' + name.decode("ascii", "replace").replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the connection --------------------------------------------------------------------

class MailSource(Protocol):
    """What the copy needs of a source (``Source``; tests give a fake)."""

    def folders(self) -> list[Folder]: ...

    def subscribed(self) -> set[str]: ...

    def count(self, folder: Folder) -> int: ...

    def examine(self, folder: Folder) -> int: ...

    def summaries(self, first: int, last: int) -> list[Summary]: ...

    def bodies(self, uids: Sequence[int]) -> dict[int, bytes]: ...


class Source:
    """A logged-in connection to the source server (blocking; one thread)."""

    def __init__(self, url: SourceURL, password: str, *, starttls: bool = False,
                 plain_ok: bool = False, insecure: bool = False, timeout: float = 120.0) -> None:
        context = ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if not url.tls and not starttls and not (plain_ok and url.loopback):
            raise SourceError(f"{url}: refusing to send the password in clear: use imaps://, "
                              "--starttls, or --plain-ok-on-loopback for a loopback address")
        imap: imaplib.IMAP4 | None = None
        try:
            if url.tls:
                imap = imaplib.IMAP4_SSL(url.host, url.port, ssl_context=context, timeout=timeout)
            else:
                imap = imaplib.IMAP4(url.host, url.port, timeout=timeout)
                if starttls:
                    imap.starttls(context)
            imap.login(url.user, password)
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as error:
            if imap is not None:  # refused: do not leave the connection to the garbage collector
                with contextlib.suppress(OSError):
                    imap.shutdown()
            raise SourceError(f"{url}: {_text(error)}") from None
        self.imap = imap
        self.prefix = ""
        self.prefix = self.personal_prefix()

    def folders(self) -> list[Folder]:
        """Every mailbox (LIST "" "*"), in the server's order."""
        return self._listed(self.imap.list)

    def subscribed(self) -> set[str]:
        """The names in the subscription list (LSUB "" "*", RFC 3501 §6.3.9)."""
        return {folder.name for folder in self._listed(self.imap.lsub)}

    def personal_prefix(self) -> str:
        """The first personal namespace's prefix (RFC 2342 §5), "" when
        the server has no NAMESPACE command or no prefix."""
        try:  # asked even when not advertised: imaplib keeps the capabilities of before the login
            typ, data = self._call(self.imap.namespace)
        except SourceError:
            return ""
        values = parse_values(*_joined(data[:1]))
        personal = values[0] if values and isinstance(values[0], list) and values[0] else None
        if not personal or not isinstance(personal[0], list) or not isinstance(personal[0][0], bytes):
            return ""
        return decode_name(personal[0][0])

    def _listed(self, command: Any) -> list[Folder]:
        typ, data = self._call(command, '""', '"*"')
        found: list[Folder] = []
        for part in data:
            if part is None:
                continue
            values = parse_values(*_joined([part]))
            if len(values) != 3 or not isinstance(values[0], list):
                raise SourceError(f"malformed LIST response from the source: {part!r}")
            attributes, delimiter, raw = values
            if isinstance(raw, list):
                continue
            found.append(Folder(
                decode_name(raw), raw, delimiter.decode("ascii") if delimiter else None,
                tuple(bytes(a).decode("ascii", "replace") for a in attributes), self.prefix))
        return found

    def count(self, folder: Folder) -> int:
        """How many messages ``folder`` holds (STATUS MESSAGES, RFC 3501
        §6.3.10: without opening it), for the progress bar's total."""
        typ, data = self._call(self.imap.status, quoted(folder.raw), "(MESSAGES)")
        values = parse_values(*_joined(data[:1]))
        counts = values[-1] if values and isinstance(values[-1], list) else []
        pairs = dict(zip(counts[::2], counts[1::2]))
        return int(pairs.get(b"MESSAGES") or 0)

    def examine(self, folder: Folder) -> int:
        """Open ``folder`` read-only (RFC 3501 §6.3.2); its message count."""
        typ, data = self._call(self.imap.select, quoted(folder.raw), True)
        return int(data[0] or 0)

    def summaries(self, first: int, last: int) -> list[Summary]:
        """Messages ``first:last`` (sequence numbers) of the open folder."""
        typ, data = self._call(
            self.imap.fetch, f"{first}:{last}",
            "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out: list[Summary] = []
        for items in fetch_items(data):
            if b"UID" not in items or b"RFC822.SIZE" not in items:
                continue  # an unsolicited FETCH (flags changed meanwhile)
            header = next((v for k, v in items.items() if k.startswith(b"BODY[")), None) or b""
            out.append(Summary(
                int(items[b"UID"]),
                tuple(f.decode("utf-8", "replace") for f in items.get(b"FLAGS") or []
                      if f.lower() != b"\\recent"),
                parse_internal_date(bytes(items[b"INTERNALDATE"]).decode("ascii")),
                int(items[b"RFC822.SIZE"]),
                message_id_of(header)))
        return out

    def bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The exact bytes of ``uids`` (UID FETCH BODY.PEEK[], RFC 3501
        §6.4.8: \\Seen left alone); an expunged UID is missing."""
        typ, data = self._call(self.imap.uid, "FETCH", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
        out: dict[int, bytes] = {}
        for items in fetch_items(data):
            body = items.get(b"BODY[]")
            if b"UID" in items and isinstance(body, bytes):
                out[int(items[b"UID"])] = body
        return out

    def logout(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass

    def _call(self, method: Any, *args: Any) -> tuple[str, list[Any]]:
        try:
            typ, data = method(*args)
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as error:
            raise SourceError(f"source: {_text(error)}") from None
        if typ != "OK":
            raise SourceError(f"source: {typ} {_text(data)}")
        return typ, list(data)


def decode_name(raw: bytes) -> str:
    """A mailbox name from LIST: modified UTF-7 (RFC 3501 §5.1.3), or
    UTF-8 when the server sends 8-bit (RFC 6855 servers)."""
    try:
        return decode_mutf7(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def _text(error: Any) -> str:
    if isinstance(error, list):
        error = b" ".join(e for e in error if isinstance(e, bytes))
    if isinstance(error, bytes):
        return error.decode("utf-8", "replace")
    return str(error) or type(error).__name__

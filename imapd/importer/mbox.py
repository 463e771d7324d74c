"""mbox sources: ``imapd import mbox PATH`` (one file, or a directory of
them with Thunderbird's ``NAME.sbd/`` directories for the children of
``NAME``).

Format assumed: mboxrd. A message starts at a ``From `` line at the start
of the file or after an empty line; the empty line before it belongs to
the separator, not to the previous message. In the message, lines that
match ``>+From `` lose one ``>`` (mboxrd unquoting: exact for mboxrd
files; mboxo writers such as Python's ``mailbox`` and Thunderbird quote
``From `` lines the same way, so those come back exact too, and only a
line that was ``>From `` in the original message loses its ``>``, the
format's known ambiguity). Content-Length headers are not trusted.

Flags: ``Status:`` ``R`` \\Seen (``O``, old, means only not \\Recent);
``X-Status:`` ``A`` \\Answered, ``F`` \\Flagged, ``T`` \\Draft, ``D``
\\Deleted; ``X-Keywords:`` keywords (Dovecot's mbox). Those headers,
``X-UID``, ``X-IMAPbase`` and ``Content-Length`` are mbox bookkeeping that
the store keeps as flags and UIDs (or does not need), so they are removed
from the stored message, as Dovecot hides them. UW-IMAP's
folder-data pseudo message (``X-IMAP`` header) is skipped. The internal date is the
``From `` line's date (UTC unless it carries a numeric zone), else the
Date header, else the file's modification time.
"""

from __future__ import annotations

import datetime
import email.utils
import os
import re
from pathlib import Path
from typing import BinaryIO

from imapd.importer.source import (
    SourceFolder, SourceMessage, from_timestamp, stored_form, valid_flags,
)

MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
FROM_DATE = re.compile(
    rb"[A-Za-z]{3}\s+([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    rb"\s+(?:([+-]\d{4}|[A-Za-z]{3,5})\s+)?(\d{4})(?:\s+([+-]\d{4}))?")
# mbox bookkeeping, hidden by Dovecot's mbox code and removed here: flags
# and keywords (kept as flags), UIDs and UIDVALIDITY (ours are new), and
# Content-Length (mbox framing written by some MTAs, never trusted).
STRIPPED = (b"status", b"x-status", b"x-keywords", b"x-uid", b"x-imapbase", b"x-imap",
            b"content-length")
STATUS_LETTERS = {"R": "\\Seen"}
X_STATUS_LETTERS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}
# Header bytes looked at for flags per message; past this the rest is body
# as far as the scan cares (bounds the scan's memory per message).
MAX_HEADER = 256 * 1024
# Files in a mail directory that are never mboxes (Thunderbird's indexes,
# filters and state).
NOT_MBOX = (".msf", ".dat", ".html", ".json", ".sqlite", ".mab", ".bak")
MAX_DEPTH = 32
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_STRIP_HEADER = re.compile(rb"^(?:" + b"|".join(STRIPPED) + rb"):[^\n]*\n(?:[ \t][^\n]*\n)*",
                           re.IGNORECASE | re.MULTILINE)


def from_line_date(line: bytes) -> datetime.datetime | None:
    """The date of a ``From sender DATE`` separator line (asctime format,
    optionally with a zone before or after the year), or None."""
    match = FROM_DATE.search(line, 5)
    if match is None:
        return None
    month = MONTHS.get(match.group(1).decode("ascii").lower())
    zone = match.group(8) or match.group(6)
    offset = datetime.timedelta(0)
    if zone and zone[:1] in (b"+", b"-"):
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        offset = datetime.timedelta(minutes=-minutes if zone[:1] == b"-" else minutes)
    if month is None:
        return None
    try:
        return datetime.datetime(int(match.group(7)), month, int(match.group(2)),
                                 int(match.group(3)), int(match.group(4)),
                                 int(match.group(5) or 0), tzinfo=datetime.timezone(offset))
    except ValueError:
        return None


def header_values(header: bytes) -> dict[bytes, bytes]:
    """Lower-cased name -> unfolded value of the first occurrence of each
    field in ``header`` (RFC 5322 §2.2.3 unfolding)."""
    values: dict[bytes, bytes] = {}
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", header)
    for line in unfolded.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name and b" " not in name:
            values.setdefault(name.strip().lower(), value.strip())
    return values


def flags_of(values: dict[bytes, bytes]) -> tuple[str, ...]:
    """IMAP flags from the Status, X-Status and X-Keywords fields."""
    flags: list[str] = []
    status = values.get(b"status", b"").decode("latin-1")
    x_status = values.get(b"x-status", b"").decode("latin-1")
    flags += [STATUS_LETTERS[c] for c in status if c in STATUS_LETTERS]
    flags += [X_STATUS_LETTERS[c] for c in x_status if c in X_STATUS_LETTERS]
    flags += values.get(b"x-keywords", b"").decode("utf-8", "replace").replace(",", " ").split()
    return valid_flags(flags)


def unquote(raw: bytes) -> bytes:
    """One message as stored: mbox bookkeeping headers removed from the
    header section, mboxrd ``>From`` unquoting, CRLF line ends."""
    end = raw.find(b"\n\n")
    head, body = (raw, b"") if end < 0 else (raw[:end + 1], raw[end + 1:])
    head = _STRIP_HEADER.sub(b"", head.replace(b"\r\n", b"\n"))
    return stored_form(_QUOTED_FROM.sub(rb"\1", head + body))


class _Read:
    """Reads one message's bytes from its mbox file when needed."""

    __slots__ = ("path", "start", "length")

    def __init__(self, path: str, start: int, length: int) -> None:
        self.path, self.start, self.length = path, start, length

    def __call__(self) -> bytes:
        with open(self.path, "rb") as file:
            file.seek(self.start)
            raw = file.read(self.length)
        if len(raw) != self.length:
            raise ValueError("the mbox file changed during the import")
        return unquote(raw)


class _Pending:
    """The message being scanned: where it starts, its separator and the
    header lines seen so far."""

    def __init__(self, separator: bytes, start: int) -> None:
        self.separator, self.start = separator, start
        self.header: list[bytes] = []
        self.header_size = 0
        self.in_header = True

    def take(self, line: bytes) -> None:
        if not self.in_header:
            return
        if line in (b"\n", b"\r\n") or self.header_size > MAX_HEADER:
            self.in_header = False
            return
        self.header.append(line)
        self.header_size += len(line)


def scan_file(path: Path, folder_path: tuple[str, ...]) -> SourceFolder:
    """The messages of one mbox file, in file order."""
    folder = SourceFolder(folder_path, str(path))
    try:
        with open(path, "rb") as file:
            mtime = from_timestamp(os.fstat(file.fileno()).st_mtime)
            _scan_lines(file, str(path), mtime, folder)
    except OSError as error:
        folder.problems.append((str(path), error.strerror or str(error)))
    return folder


def _scan_lines(file: BinaryIO, label: str, mtime: datetime.datetime,
                folder: SourceFolder) -> None:
    offset = 0
    pending: _Pending | None = None
    blank = 1  # the length of the previous line if it was empty, else 0
    for line in file:
        if line.startswith(b"From ") and blank:
            if pending is not None:
                _finish(pending, offset - blank, label, mtime, folder)
            pending = _Pending(line, offset + len(line))
        elif pending is None:
            if line.strip():
                folder.problems.append((label, "not an mbox file (no 'From ' line at its start)"))
                return
        else:
            pending.take(line)
        blank = len(line) if line in (b"\n", b"\r\n") else 0
        offset += len(line)
    if pending is not None:
        _finish(pending, offset - blank, label, mtime, folder)


def _finish(pending: _Pending, end: int, label: str, mtime: datetime.datetime,
            folder: SourceFolder) -> None:
    """Add the message that ends at ``end`` (the empty line of the next
    separator, or the file's final empty line, already excluded)."""
    values = header_values(b"".join(pending.header))
    start = pending.start
    if b"x-imap" in values and not folder.messages and not folder.problems:
        return  # UW-IMAP's folder-data pseudo message
    length = max(0, end - start)
    date = from_line_date(pending.separator) or _date_header(values) or mtime
    where = f"{label}@{start}"
    folder.messages.append(SourceMessage(
        where, _Read(label, start, length), flags_of(values), date, length))


def _date_header(values: dict[bytes, bytes]) -> datetime.datetime | None:
    value = values.get(b"date")
    if not value:
        return None
    try:
        date = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    return date if date.tzinfo is not None else date.replace(tzinfo=datetime.timezone.utc)


def scan(root: Path) -> list[SourceFolder]:
    """One file: one folder (the import root). A directory: a folder per
    mbox file, named by the file, children from ``NAME.sbd/``."""
    if not root.is_dir():
        return [scan_file(root, ())]
    folders: list[SourceFolder] = []
    _scan_directory(root, (), folders)
    folders.sort(key=lambda folder: folder.path)
    return folders


def _scan_directory(directory: Path, path: tuple[str, ...], out: list[SourceFolder]) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as error:
        folder = SourceFolder(path, str(directory))
        folder.problems.append((str(directory), error.strerror or str(error)))
        out.append(folder)
        return
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name.lower().endswith(NOT_MBOX):
            continue
        if entry.is_dir():
            child = name[:-4] if name.endswith(".sbd") else name
            if len(path) < MAX_DEPTH:
                _scan_directory(Path(entry.path), path + (child,), out)
        elif entry.is_file():
            out.append(scan_file(Path(entry.path), path + (name,)))

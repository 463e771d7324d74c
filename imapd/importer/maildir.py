"""Maildir sources: ``imapd import maildir PATH``.

Layouts (both Dovecot's): Maildir++ (the root's ``cur``/``new`` is INBOX,
folder ``a/b`` is the directory ``.a.b``, names in modified UTF-7, RFC 3501
§5.1.3) and plain nested maildirs (``LAYOUT=fs``: a child folder is a
subdirectory that is itself a maildir). ``tmp`` is never read (messages
being delivered, Maildir spec).

Flags come from the info suffix ``:2,FLAGS`` (``!2,`` on systems where
``:`` is not allowed in names), the letters of D. J. Bernstein's Maildir
spec, as Dovecot maps them: ``D`` \\Draft, ``F`` \\Flagged, ``R``
\\Answered, ``S`` \\Seen, ``T`` \\Deleted; ``P`` (passed, i.e. bounced or
forwarded), which Dovecot does not show, becomes the keyword ``$Forwarded``
(RFC 5788 registry). Lower-case letters are Dovecot keywords, named by the
folder's ``dovecot-keywords`` file (``N name`` lines, letter ``a`` + N).
Messages in ``new`` carry no flags (not yet seen by a client). The
internal date is the file's modification time, as in Dovecot.
"""

from __future__ import annotations

import os
from pathlib import Path

from imapd.imap.wire.mutf7 import decode_mutf7
from imapd.importer.source import (
    SourceFolder, SourceMessage, from_timestamp, stored_form, valid_flags,
)

SYSTEM_LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                  "T": "\\Deleted", "P": "$Forwarded"}
INFO_SEPARATORS = (":2,", "!2,", ";2,")
KEYWORDS_FILE = "dovecot-keywords"
# Keyword files hold at most 26 names (a-z); a bigger one is not Dovecot's.
MAX_KEYWORDS_FILE = 64 * 1024
# Folder nesting followed at most (a symlink loop must not recurse forever).
MAX_DEPTH = 32


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def read_keywords(folder: Path) -> dict[str, str]:
    """Letter -> keyword from ``dovecot-keywords`` ({} when absent or
    unreadable: the letters are then dropped)."""
    try:
        with open(folder / KEYWORDS_FILE, "rb") as file:
            text = file.read(MAX_KEYWORDS_FILE).decode("utf-8", "replace")
    except OSError:
        return {}
    letters: dict[str, str] = {}
    for line in text.splitlines():
        index, _, name = line.strip().partition(" ")
        if index.isdigit() and int(index) < 26 and name.strip():
            letters[chr(ord("a") + int(index))] = name.strip()
    return letters


def flags_of(filename: str, keywords: dict[str, str]) -> tuple[str, ...]:
    """The IMAP flags of a message file named ``filename`` (see the module
    docstring); letters without a meaning are dropped."""
    for separator in INFO_SEPARATORS:
        base, found, info = filename.rpartition(separator)
        if found and base:
            break
    else:
        return ()
    flags = [SYSTEM_LETTERS[c] if c in SYSTEM_LETTERS else keywords.get(c, "")
             for c in info if c.isalpha()]
    return valid_flags([flag for flag in flags if flag])


def decode_name(name: str) -> str:
    """A folder name component as Dovecot writes it (modified UTF-7), or
    as written when it is not valid modified UTF-7 (a UTF-8 layout)."""
    try:
        return decode_mutf7(name.encode("utf-8"))
    except ValueError:  # not modified UTF-7: the name is already UTF-8
        return name


def scan_folder(directory: Path, path: tuple[str, ...]) -> SourceFolder:
    """The messages of one maildir, oldest first (by file time, then name)."""
    folder = SourceFolder(path, str(directory))
    keywords = read_keywords(directory)
    found: list[tuple[float, str, SourceMessage]] = []
    for sub, flagged in (("new", False), ("cur", True)):
        try:
            entries = list(os.scandir(directory / sub))
        except FileNotFoundError:
            continue
        except OSError as error:
            folder.problems.append((str(directory / sub), error.strerror or str(error)))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
            except OSError as error:
                folder.problems.append((entry.path, error.strerror or str(error)))
                continue
            flags = flags_of(entry.name, keywords) if flagged else ()
            message = SourceMessage(entry.path, _Read(entry.path), flags,
                                    from_timestamp(stat.st_mtime), stat.st_size)
            found.append((stat.st_mtime, entry.name, message))
    found.sort(key=lambda item: (item[0], item[1]))
    folder.messages = [message for _, _, message in found]
    return folder


class _Read:
    """Reads one message file when the importer gets to it."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> bytes:
        with open(self.path, "rb") as file:
            return stored_form(file.read())


def scan(root: Path) -> list[SourceFolder]:
    """Every folder under ``root`` (see the module docstring), parents
    before children. A root that is no maildir and has none below it is
    one folder with one problem."""
    folders: list[SourceFolder] = []
    if is_maildir(root):
        folders.append(scan_folder(root, ()))
    _scan_children(root, (), folders, top=True)
    if not folders:
        folder = SourceFolder((), str(root))
        folder.problems.append((str(root), "not a Maildir (no cur/ or new/ below it)"))
        folders.append(folder)
    folders.sort(key=lambda folder: folder.path)
    return folders


def _scan_children(directory: Path, path: tuple[str, ...], out: list[SourceFolder],
                   top: bool) -> None:
    try:
        children = sorted((entry for entry in os.scandir(directory) if entry.is_dir()),
                          key=lambda entry: entry.name)
    except OSError:
        return  # the parent's scan reports what cannot be read
    for entry in children:
        name = entry.name
        if name in ("cur", "new", "tmp"):
            continue
        child = Path(entry.path)
        if name.startswith("."):
            if top and len(name) > 1 and is_maildir(child):  # Maildir++ .a.b
                parts = tuple(decode_name(part) for part in name[1:].split("."))
                out.append(scan_folder(child, parts))
            continue
        # LAYOUT=fs: a plain subdirectory is a child folder when it is a
        # maildir; one that is not may still hold maildirs deeper down.
        child_path = path + (decode_name(name),)
        if is_maildir(child):
            out.append(scan_folder(child, child_path))
        if len(child_path) < MAX_DEPTH:
            _scan_children(child, child_path, out, top=False)

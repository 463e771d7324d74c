"""Sources built with Python's stdlib ``mailbox`` module (independent of
the parsers under test), and the messages they hold."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

# mtime given to every Maildir file, so internal dates are known.
MTIME = 1_700_000_000


def text(n: int, extra: str = "") -> bytes:
    """A message with a Message-ID and a body line that an mbox must quote."""
    return (f"From: sender{n}@example.org\nTo: bob@example.org\n"
            f"Message-ID: <m{n}@example.org>\nSubject: message {n}\n{extra}\n"
            f"body {n}\nFrom the start of a line\n").encode()


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\n", b"\r\n")


def file_of(folder: Path, key: str) -> Path:
    """The file of message ``key`` in a maildir (in cur/ or new/)."""
    [found] = [p for sub in ("cur", "new") for p in (folder / sub).glob(key + "*")]
    return found


def make_maildir(root: Path, flags: dict[int, str], folders: dict[str, int]) -> mailbox.Maildir:
    """A Maildir++ tree: message n in the root's cur/ with ``flags[n]``,
    plus ``folders`` (Maildir++ names, e.g. ``Sent.Old``) with that many
    messages each, all with mtime ``MTIME + n``."""
    md = mailbox.Maildir(str(root), create=True)
    for n, letters in flags.items():
        message = mailbox.MaildirMessage(text(n))
        message.set_subdir("cur")
        message.set_flags(letters)
        key = md.add(message)
        os.utime(file_of(root, key), (MTIME + n, MTIME + n))
    for name, count in folders.items():
        sub = md.add_folder(name)
        for i in range(count):
            key = sub.add(mailbox.MaildirMessage(text(100 + i, f"X-Folder: {name}\n")))
            folder = root / ("." + name)
            os.utime(file_of(folder, key), (MTIME + i, MTIME + i))
    return md


def make_mbox(path: Path, flags: dict[int, str]) -> None:
    """An mbox (stdlib writer) with message n flagged ``flags[n]``
    (mboxMessage letters: R seen, O old, D deleted, F flagged, A answered)."""
    box = mailbox.mbox(str(path), create=True)
    for n, letters in flags.items():
        message = mailbox.mboxMessage(text(n))
        message.set_flags(letters)
        message.set_from(f"sender{n}@example.org", (2024, 1, 2 + n, 3, 4, 5, 0, 1, 0))
        box.add(message)
    box.flush()
    box.close()

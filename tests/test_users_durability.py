"""Durability of the user database (imapd/accounts/users.py), by behaviour.

Contract (module doc of imapd.accounts.users): ``users.scram`` and ``users.passwd``
are each rewritten atomically and durably before the call returns: the new
content is written to a temp file in the same directory, the temp file is
fsynced, renamed over the old file, and then the directory is fsynced (so
the rename itself survives a power cut). ``users.scram`` is written before
``users.passwd`` (new SCRAM keys stay inert until the password changes).

The file-system calls are recorded by wrapping ``os.fsync``/``os.fdatasync``
and ``os.replace``/``os.rename``; the test then requires, for every rename,
an fsync of that very temp file holding exactly the content that landed,
and an fsync of the directory before the next rename and before return.
Deleting any of the fsync calls, or moving one after the rename, fails.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from imapd.core.model import Secret
from imapd.accounts.users import UserDatabase, UserEntry
from tests.support.context import make_users

PASSWD, SCRAM = "users.passwd", "users.scram"


@dataclass(frozen=True)
class Event:
    kind: str  # "sync-file", "sync-dir" or "rename"
    path: str  # the synced file or directory; the rename's source
    target: str = ""  # the rename's destination
    content: bytes = b""  # the file's bytes when synced / once renamed


class FileSystemRecorder:
    """Wraps the os calls a durable rewrite needs and records them in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[Event] = []
        for name in ("fsync", "fdatasync"):
            monkeypatch.setattr(os, name, self._syncing(getattr(os, name)))
        for name in ("replace", "rename"):
            monkeypatch.setattr(os, name, self._renaming(getattr(os, name)))

    def _syncing(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def sync(fd: int) -> None:
            # Linux names an open descriptor's file in /proc (the temp file
            # has no other handle the test could know about).
            path = os.readlink(f"/proc/self/fd/{fd}")
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                self.events.append(Event("sync-dir", path))
            else:
                self.events.append(Event("sync-file", path, content=Path(path).read_bytes()))
            real(fd)
        return sync

    def _renaming(self, real: Callable[..., None]) -> Callable[..., None]:
        def rename(src: Any, dst: Any, **kwargs: Any) -> None:
            real(src, dst, **kwargs)
            source, target = os.path.realpath(src), os.path.realpath(dst)
            self.events.append(Event("rename", source, target, Path(target).read_bytes()))
        return rename

    def durable_rewrites(self) -> list[str]:
        """The file names durably rewritten, in order; fails on any rename
        not preceded by the fsync of its content or not followed by the
        fsync of its directory before the next rename."""
        renames = [i for i, e in enumerate(self.events) if e.kind == "rename"]
        for number, index in enumerate(renames):
            event = self.events[index]
            assert os.path.dirname(event.path) == os.path.dirname(event.target), (
                "the temp file must be in the target's directory (rename is atomic only there)")
            synced = [e for e in self.events[:index] if e.kind == "sync-file" and e.path == event.path]
            assert synced, f"{event.target} was renamed into place before its content was fsynced"
            assert synced[-1].content == event.content, (
                f"{event.target}: bytes written after the fsync", synced[-1].content, event.content)
            end = renames[number + 1] if number + 1 < len(renames) else len(self.events)
            assert Event("sync-dir", os.path.dirname(event.target)) in self.events[index + 1:end], (
                f"the rename of {event.target} was not made durable (no directory fsync after it)")
        return [os.path.basename(self.events[i].target) for i in renames]


@pytest.fixture
def database(tmp_path: Path) -> UserDatabase:
    # realpath: /proc names files by their resolved path.
    return make_users(Path(os.path.realpath(tmp_path)) / "data", alice="wonderland")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> FileSystemRecorder:
    return FileSystemRecorder(monkeypatch)


def test_add_rewrites_scram_then_passwd_durably(
    database: UserDatabase, recorder: FileSystemRecorder
) -> None:
    database.add("bob", Secret(b"builder"))
    assert recorder.durable_rewrites() == [SCRAM, PASSWD]
    assert b"\nbob:" in b"\n" + database.path.read_bytes()
    assert b"\nbob:" in b"\n" + database.scram_path.read_bytes()


def test_set_password_rewrites_scram_then_passwd_durably(
    database: UserDatabase, recorder: FileSystemRecorder
) -> None:
    before = database.path.read_bytes()
    database.set_password("alice", Secret(b"looking glass"))
    assert recorder.durable_rewrites() == [SCRAM, PASSWD]
    assert database.path.read_bytes() != before
    assert database.verify("alice", Secret(b"looking glass"))


def test_delete_rewrites_scram_then_passwd_durably(
    database: UserDatabase, recorder: FileSystemRecorder
) -> None:
    database.delete("alice")
    assert recorder.durable_rewrites() == [SCRAM, PASSWD]
    assert b"alice" not in database.path.read_bytes() + database.scram_path.read_bytes()


def test_import_rewrites_passwd_durably(
    database: UserDatabase, recorder: FileSystemRecorder
) -> None:
    field = database.path.read_text().split(":", 1)[1].strip()
    assert database.import_entries([UserEntry("carol", field)], replace_existing=False) == []
    assert recorder.durable_rewrites() == [PASSWD]
    assert database.verify("carol", Secret(b"wonderland"))


def test_the_recorder_catches_a_missing_directory_fsync(
    tmp_path: Path, recorder: FileSystemRecorder
) -> None:
    """The checker itself fails a rename without the directory fsync (so a
    pass above means something)."""
    directory = Path(os.path.realpath(tmp_path))
    temp = directory / ".f.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"x")
    os.fsync(fd)
    os.close(fd)
    os.replace(temp, directory / "f")
    with pytest.raises(AssertionError, match="directory fsync"):
        recorder.durable_rewrites()

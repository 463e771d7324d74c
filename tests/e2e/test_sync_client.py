"""A real sync client keeps two devices in sync through imapd (issue 7).

``mbsync`` (Debian package ``isync``; ``.ci/run`` installs it) mirrors the
server into two local Maildirs, "device A" and "device B", each with its
own configuration and sync state. What one device does to its Maildir —
reading (``S``), flagging (``F``), deleting, moving a message to another
folder, writing a draft — must reach the server on its next sync and the
other device on that one's next sync; a MOVE made by a third client over
IMAP reaches both. The server's state is checked with stdlib imaplib too,
so the test does not only trust mbsync's view.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.server import RunningServer, running_server

MBSYNC = shutil.which("mbsync")
pytestmark = pytest.mark.skipif(
    MBSYNC is None, reason="mbsync (Debian package isync) is not installed; .ci/run installs it")

USER, PASSWORD = "alice", "wonderland"
SUBJECT = re.compile(rb"^Subject: (.*?)\r?$", re.MULTILINE | re.IGNORECASE)
IMAP_FLAGS = {"\\Seen": "S", "\\Flagged": "F", "\\Draft": "D", "\\Answered": "R", "\\Deleted": "T"}
Snapshot = dict[str, str]  # subject -> Maildir flag letters, sorted


def mbsync_version() -> tuple[int, ...]:
    assert MBSYNC is not None
    out = subprocess.run([MBSYNC, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    assert found, out
    return tuple(int(part) for part in found.groups() if part is not None)


class Device:
    """One device: a Maildir tree mirrored by mbsync with its own config."""

    def __init__(self, root: Path, server: RunningServer) -> None:
        self.maildir = root / "Mail"
        self.maildir.mkdir(parents=True)
        self.config = root / "mbsyncrc"
        version = mbsync_version()
        # isync 1.5 renamed SSLType to TLSType; 1.4 renamed Master/Slave to Far/Near.
        tls = "TLSType" if version >= (1, 5) else "SSLType"
        far, near = ("Far", "Near") if version >= (1, 4) else ("Master", "Slave")
        self.config.write_text(
            f"IMAPAccount imapd\nHost {server.host}\nPort {server.port}\n"
            f"User {USER}\nPass {PASSWORD}\n{tls} None\nAuthMechs LOGIN\n\n"
            "IMAPStore remote\nAccount imapd\n\n"
            f"MaildirStore local\nPath {self.maildir}/\nInbox {self.maildir}/INBOX\n"
            "SubFolders Verbatim\n\n"
            f"Channel sync\n{far} :remote:\n{near} :local:\nPatterns *\n"
            "Create Both\nExpunge Both\nSyncState *\nSync All\n"
        )

    def sync(self) -> None:
        assert MBSYNC is not None
        done = subprocess.run(
            [MBSYNC, "-c", str(self.config), "-a"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"mbsync failed:\n{done.stdout}\n{done.stderr}"

    def folder(self, name: str) -> Path:
        return self.maildir / name

    def files(self, name: str) -> dict[str, Path]:
        """subject -> file of every message in a Maildir folder."""
        found: dict[str, Path] = {}
        for sub in ("cur", "new"):
            for path in sorted((self.folder(name) / sub).iterdir()):
                match = SUBJECT.search(path.read_bytes())
                assert match, path
                found[match.group(1).decode()] = path
        return found

    def snapshot(self, name: str) -> Snapshot:
        return {
            subject: "".join(sorted(path.name.partition(":2,")[2]))
            for subject, path in self.files(name).items()
        }

    def set_flags(self, name: str, subject: str, letters: str) -> None:
        """What a mail client does to mark a message: rename it in cur/."""
        path = self.files(name)[subject]
        base = path.name.partition(":2,")[0]
        path.rename(self.folder(name) / "cur" / f"{base}:2,{''.join(sorted(letters))}")

    def delete(self, name: str, subject: str) -> None:
        self.files(name)[subject].unlink()

    def move(self, subject: str, source: str, target: str) -> None:
        """Move a message file to another folder; mbsync's ``,U=`` (the
        source's UID) must go, as the isync manual says for moved files."""
        path = self.files(source)[subject]
        base, _, flags = path.name.partition(":2,")
        base = re.sub(r",U=\d+", "", base)
        path.rename(self.folder(target) / "cur" / f"{base}:2,{flags}")

    def write(self, name: str, subject: str, letters: str) -> None:
        unique = f"{time.time_ns()}.{os.getpid()}.device"
        body = f"From: me@example.org\r\nSubject: {subject}\r\n\r\nWritten on a device.\r\n"
        (self.folder(name) / "cur" / f"{unique}:2,{letters}").write_bytes(body.encode())


def message(subject: str) -> bytes:
    return f"From: Fred <fred@example.org>\r\nSubject: {subject}\r\n\r\nAbout {subject}.\r\n".encode()


def server_snapshot(server: RunningServer, mailbox: str) -> Snapshot:
    """subject -> flags as Maildir letters, read over IMAP with imaplib."""
    imap = imaplib.IMAP4(server.host, server.port)
    try:
        imap.login(USER, PASSWORD)
        typ, selected = imap.select(mailbox, readonly=True)
        assert typ == "OK", selected
        if selected == [b"0"]:
            return {}
        typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        found: Snapshot = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
            subject = SUBJECT.search(item[1])
            assert flags and subject, item
            letters = (IMAP_FLAGS.get(f) for f in flags.group(1).decode().split())
            found[subject.group(1).decode()] = "".join(sorted(letter for letter in letters if letter))
        return found
    finally:
        imap.logout()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path, {USER: PASSWORD}) as running:
        yield running


def test_two_devices_stay_in_sync(server: RunningServer, tmp_path: Path) -> None:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(USER, PASSWORD)
    for subject in ("one", "two", "three", "four"):
        assert imap.append("INBOX", "", None, message(subject))[0] == "OK"
    assert imap.create("Work")[0] == "OK"
    imap.logout()

    a, b = Device(tmp_path / "a", server), Device(tmp_path / "b", server)
    a.sync()
    b.sync()
    everything = {"one": "", "two": "", "three": "", "four": ""}
    for device in (a, b):
        assert device.snapshot("INBOX") == everything
        for folder in ("Work", "Drafts", "Sent", "Trash", "Junk", "Archive"):
            assert device.snapshot(folder) == {}, folder

    # Device A reads one, flags two, deletes three, moves four to Work and
    # writes a draft.
    a.set_flags("INBOX", "one", "S")
    a.set_flags("INBOX", "two", "F")
    a.delete("INBOX", "three")
    a.move("four", "INBOX", "Work")
    a.write("Drafts", "draft from A", "D")
    a.sync()
    assert server_snapshot(server, "INBOX") == {"one": "S", "two": "F"}
    assert server_snapshot(server, "Work") == {"four": ""}
    assert server_snapshot(server, "Drafts") == {"draft from A": "D"}

    b.sync()
    assert b.snapshot("INBOX") == {"one": "S", "two": "F"}
    assert b.snapshot("Work") == {"four": ""}
    assert b.snapshot("Drafts") == {"draft from A": "D"}

    # Device B reads and unflags two, flags the moved message: back to A.
    b.set_flags("INBOX", "two", "S")
    b.set_flags("Work", "four", "FS")
    b.sync()
    a.sync()
    assert a.snapshot("INBOX") == {"one": "S", "two": "S"}
    assert a.snapshot("Work") == {"four": "FS"}

    # A third client moves a message on the server (RFC 6851 MOVE).
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(USER, PASSWORD)
    imap.select("INBOX")
    typ, data = imap.uid("SEARCH", "HEADER", "Subject", "one")
    assert typ == "OK" and len(data[0].split()) == 1, data
    assert imap.uid("MOVE", data[0].decode(), "Archive")[0] == "OK"
    imap.logout()
    for device in (a, b):
        device.sync()
        assert device.snapshot("INBOX") == {"two": "S"}
        assert device.snapshot("Archive") == {"one": "S"}
        assert device.snapshot("Work") == {"four": "FS"}
        assert device.snapshot("Drafts") == {"draft from A": "D"}
    assert server_snapshot(server, "INBOX") == {"two": "S"}
    assert server_snapshot(server, "Archive") == {"one": "S"}


def test_a_folder_made_on_one_device_reaches_the_other(server: RunningServer, tmp_path: Path) -> None:
    """``Create Both``: a folder made on device A is created on the server
    (CREATE) and then on device B, with its message."""
    a, b = Device(tmp_path / "a", server), Device(tmp_path / "b", server)
    a.sync()
    for sub in ("cur", "new", "tmp"):
        (a.folder("Projects") / sub).mkdir(parents=True)
    a.write("Projects", "plan", "S")
    a.sync()
    b.sync()
    assert b.snapshot("Projects") == {"plan": "S"}
    assert server_snapshot(server, "Projects") == {"plan": "S"}

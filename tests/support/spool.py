"""Where a process's spool files are: its open descriptors and memory maps
that point into a spool directory (Linux ``/proc``). Spool files are
anonymous (``O_TMPFILE`` or unlinked), so they never show in a directory
listing; a leaked one shows here as ``DIR/#123 (deleted)`` or ``DIR/tmpXYZ
(deleted)``. ``big_message`` makes a large multipart message for the
spool and streaming tests."""

from __future__ import annotations

import os
from pathlib import Path


def spool_handles(spool_dir: Path, pid: int | str = "self") -> list[str]:
    """Descriptors and mappings of process ``pid`` into ``spool_dir``."""
    prefix = str(spool_dir.resolve()) + os.sep
    found: list[str] = []
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue  # closed meanwhile
        if target.startswith(prefix):
            found.append(f"fd {entry.name}: {target}")
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if prefix in line:
            found.append(f"map: {line}")
    return found


def big_message(size: int, boundary: bytes = b"b0und") -> bytes:
    """A multipart message of ``size`` octets: a text part and a large
    base64 attachment (so the analysis has a structure to find)."""
    head = (b"From: big@example.org\r\nTo: alice@example.org\r\nSubject: large\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=" + boundary +
            b"\r\n\r\n--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--" +
            boundary + b"\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    tail = b"\r\n--" + boundary + b"--\r\n"
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    body_size = size - len(head) - len(tail)
    return head + (line * (body_size // len(line) + 1))[:body_size] + tail

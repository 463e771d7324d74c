"""Disk full, end to end (issue 13, item 7): a real ``imapd serve`` whose
data directory is a small tmpfs.

Users fill the disk with APPENDs until the server answers NO [OVERQUOTA]
(RFC 5530 §3, what Dovecot answers for ENOSPC), never SERVERBUG; they can
still flag and expunge; a restart on the full disk serves SELECT; once an
operator frees space, APPEND works again without a restart; and the log
has no traceback. Root only (mount); elsewhere a pinned skip.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from imapd.storage.sqlite.space import OPEN_RESERVE_NAME
from tests.storage.sqlite.tmpfs import PINS, fill, free_bytes, small_tmpfs
from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

PINNED_SKIPS = PINS
DISK_MIB = 24
PIECE = 200 * 1024  # below the literal spool threshold: held in memory, stored in SQLite


def message(n: int) -> bytes:
    head = b"From: a@example.org\r\nSubject: filler %d\r\n\r\n" % n
    line = os.urandom(38).hex().encode() + b"\r\n"
    return head + line * ((PIECE - len(head)) // len(line))


def login_select(server: RunningServer) -> RawClient:
    client = RawClient.for_server(server)
    client.line()  # greeting
    client.send(b"l LOGIN alice wonderland\r\n")
    assert client.until_tagged(b"l")[-1].startswith(b"l OK")
    client.send(b"s SELECT INBOX\r\n")
    reply = client.until_tagged(b"s")
    assert reply[-1].startswith(b"s OK"), reply
    return client


def append(client: RawClient, data: bytes) -> bytes:
    client.send(b"a APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
    return client.until_tagged(b"a")[-1]


def command(client: RawClient, tag: bytes, text: bytes) -> bytes:
    client.send(tag + b" " + text + b"\r\n")
    return client.until_tagged(tag)[-1]


def fill_with_appends(client: RawClient) -> int:
    """APPEND until NO [OVERQUOTA]; the number of messages that went in."""
    for n in range(2 * DISK_MIB * 1024 * 1024 // PIECE):
        reply = append(client, message(n))
        if not reply.startswith(b"a OK"):
            assert reply.startswith(b"a NO [OVERQUOTA]"), reply
            return n
    raise AssertionError("the disk never filled up")


def wal_truncated(data_dir: Path, timeout: float = 20.0) -> bool:
    """The store's WAL is empty (or gone) within ``timeout`` (generous: the
    writer truncates it after about a second of idleness)."""
    wal = data_dir / "mail.sqlite3-wal"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not wal.exists() or wal.stat().st_size == 0:
            return True
        time.sleep(0.05)
    return False


def assert_no_traceback(server: RunningServer) -> None:
    log = server.log()
    assert "Traceback" not in log and "SERVERBUG" not in log, log[-3000:]


def test_a_full_disk_refuses_appends_but_flags_expunge_select_and_recovery_work(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "mnt", DISK_MIB) as disk:
        with running_server(disk) as server:
            client = login_select(server)
            stored = fill_with_appends(client)
            assert stored > 10
            # An idle server truncates its WAL: a flag change then needs
            # new blocks, which the reserve gives once the disk is full.
            assert wal_truncated(disk / "imapd-data"), "the WAL was never truncated"
            fill(disk)  # and the last blocks go to something else
            assert free_bytes(disk) == 0
            assert append(client, message(0)).startswith(b"a NO [OVERQUOTA]")
            assert command(client, b"f", b"STORE 1:5 +FLAGS (\\Deleted)").startswith(b"f OK")
            assert command(client, b"e", b"EXPUNGE").startswith(b"e OK")
            client.close()
            assert_no_traceback(server)
            warnings = re.findall(r"disk (?:full|nearly full)", server.log())
            assert len(warnings) == 2, server.log()[-3000:]  # refusing; reserve released
            assert "released the 4096 KiB reserve" in server.log()
        fill(disk, "filler2")  # what the server's closed WAL gave back: taken too
        assert free_bytes(disk) == 0 and (disk / "imapd-data" / OPEN_RESERVE_NAME).exists()
        with running_server(disk, users={}) as server:  # a restart on the full disk
            client = login_select(server)
            assert command(client, b"f", b"STORE 1 +FLAGS (\\Seen)").startswith(b"f OK")
            (disk / "filler").unlink()  # the operator frees space
            (disk / "filler2").unlink()
            assert append(client, message(1)).startswith(b"a OK")
            client.close()
            assert_no_traceback(server)

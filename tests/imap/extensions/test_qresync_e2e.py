"""QRESYNC, CONDSTORE, UIDPLUS and MOVE end to end over real sockets
against ``imapd serve`` processes.

A "device" keeps a cache (UIDVALIDITY, HIGHESTMODSEQ, UID -> flags) over a
raw socket and disconnects; another client (stdlib imaplib, an independent
implementation) reads, flags, deletes, moves and appends; the device comes
back with ``SELECT ... (QRESYNC (...))`` and applies only what it is told.
Its cache must then equal the truth that imaplib reads with a full
``UID FETCH 1:* (FLAGS)``. Run once through the same server process, once
with the changes made through a second server process on the same data
directory.
"""

from __future__ import annotations

import imaplib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server
from tests.support.waiting import wait_until

USERS = {"alice": "wonderland"}
FETCH_LINE = re.compile(rb"^\* \d+ FETCH \((.*)\)\r\n$")
UID_ITEM = re.compile(rb"UID (\d+)")
FLAGS_ITEM = re.compile(rb"FLAGS \(([^)]*)\)")
MODSEQ_ITEM = re.compile(rb"MODSEQ \((\d+)\)")


def message(n: int) -> bytes:
    return f"From: Fred <fred@example.org>\r\nSubject: note {n}\r\n\r\nNote {n}.\r\n".encode()


class Raw(RawClient):
    """A line-reading client on a plain socket, logged in as alice."""

    def __init__(self, server: RunningServer) -> None:
        super().__init__(server.host, server.port)
        assert self.line().startswith(b"* OK ")
        self.command("l", "LOGIN alice wonderland")

    def command(self, tag: str, text: str) -> list[bytes]:
        self.send(f"{tag} {text}\r\n".encode())
        lines = self.until_tagged(tag.encode())
        assert lines[-1].startswith(tag.encode() + b" OK"), lines
        return lines

def parse_set(text: bytes) -> list[int]:
    numbers: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        numbers.extend(range(int(low), int(high or low) + 1))
    return numbers


def uid_and_flags(items: bytes) -> tuple[int, frozenset[bytes]]:
    """UID and FLAGS (without \\Recent, which is per session) of FETCH items."""
    uid, flags = UID_ITEM.search(items), FLAGS_ITEM.search(items)
    assert uid is not None and flags is not None, items
    return int(uid.group(1)), frozenset(flags.group(1).split()) - {b"\\Recent"}


@dataclass
class Device:
    """The client-side cache a QRESYNC client keeps between sessions."""

    uidvalidity: int = 0
    modseq: int = 0
    flags: dict[int, frozenset[bytes]] = field(default_factory=dict)

    def apply(self, lines: Sequence[bytes]) -> tuple[list[int], int]:
        """Apply VANISHED / FETCH / HIGHESTMODSEQ lines; returns (vanished
        UIDs, FETCH lines applied)."""
        vanished: list[int] = []
        fetched = 0
        for line in lines:
            if line.startswith(b"* VANISHED "):
                uids = parse_set(line.split()[-1])
                vanished += uids
                for uid in uids:
                    self.flags.pop(uid, None)
            elif (found := FETCH_LINE.match(line)) is not None:
                items = found.group(1)
                uid, flags = uid_and_flags(items)
                self.flags[uid] = flags
                modseq = MODSEQ_ITEM.search(items)
                if modseq is not None:
                    self.modseq = max(self.modseq, int(modseq.group(1)))
                fetched += 1
            elif line.startswith(b"* OK [HIGHESTMODSEQ "):
                self.modseq = int(line.split()[3].rstrip(b"]"))
            elif line.startswith(b"* OK [UIDVALIDITY "):
                self.uidvalidity = int(line.split()[3].rstrip(b"]"))
        return vanished, fetched

    def full_sync(self, raw: Raw) -> None:
        raw.command("e", "ENABLE QRESYNC")
        self.apply(raw.command("s", "SELECT INBOX"))
        self.apply(raw.command("f", "UID FETCH 1:* (FLAGS)"))

    def resync(self, raw: Raw) -> tuple[list[int], int]:
        raw.command("e", "ENABLE QRESYNC")
        known = ",".join(str(uid) for uid in sorted(self.flags))
        lines = raw.command("s", f"SELECT INBOX (QRESYNC ({self.uidvalidity} {self.modseq} {known}))")
        result = self.apply(lines)
        # New messages are outside the known UIDs: fetch what lies above them.
        top = max(self.flags, default=0)
        self.apply(raw.command("n", f"UID FETCH {top + 1}:* (FLAGS)"))
        return result


def connect(server: RunningServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login("alice", "wonderland")
    return imap


def ok(result: tuple[str, Sequence[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return list(data)


def truth(imap: imaplib.IMAP4) -> dict[int, frozenset[bytes]]:
    """UID -> flags by a full ``UID FETCH 1:* (FLAGS)`` through imaplib."""
    ok(imap.select("INBOX", readonly=True))
    result: dict[int, frozenset[bytes]] = {}
    for item in ok(imap.uid("FETCH", "1:*", "(UID FLAGS)")):
        uid, flags = uid_and_flags(item)
        result[uid] = flags
    return result


def change_through_imaplib(imap: imaplib.IMAP4) -> None:
    """Read, flag, delete, move and add, as a second device would."""
    ok(imap.select("INBOX"))
    ok(imap.uid("FETCH", "3", "(BODY[])"))                     # read: \Seen
    ok(imap.uid("STORE", "5,7", "+FLAGS", "(\\Flagged $Todo)"))  # flag
    ok(imap.uid("STORE", "2,9", "+FLAGS", "(\\Deleted)"))
    typ, data = imap.uid("EXPUNGE", "2")                        # UIDPLUS: only 2
    assert typ == "OK"
    assert ok(imap.create("Moved"))
    typ, data = imap.uid("MOVE", "10:11", "Moved")              # MOVE
    assert typ == "OK"
    typ, data = imap.append("INBOX", "(\\Seen)", None, message(99))
    assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 13\]", data[0]), data
    imap.logout()


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Path, RunningServer]]:
    with running_server(tmp_path, USERS) as server:
        imap = connect(server)
        for n in range(1, 13):
            ok(imap.append("INBOX", None, None, message(n)))
        imap.logout()
        yield tmp_path, server


def check_resync(device: Device, server: RunningServer, vanished: list[int], fetched: int) -> None:
    imap = connect(server)
    assert device.flags == truth(imap)
    imap.logout()
    assert sorted(vanished) == [2, 10, 11]          # 9 stays: \Deleted, not expunged
    assert fetched == 4                            # 3 (\Seen), 5, 7 (flagged), 9 (\Deleted)


def test_qresync_resync_over_a_socket(seeded: tuple[Path, RunningServer]) -> None:
    _, server = seeded
    device = Device()
    raw = Raw(server)
    device.full_sync(raw)
    raw.close()
    assert len(device.flags) == 12
    change_through_imaplib(connect(server))
    raw = Raw(server)
    vanished, fetched = device.resync(raw)
    raw.close()
    check_resync(device, server, vanished, fetched)
    assert set(device.flags) == {1, 3, 4, 5, 6, 7, 8, 9, 12, 13}


def test_qresync_resync_after_changes_through_another_process(seeded: tuple[Path, RunningServer]) -> None:
    data_dir, server = seeded
    device = Device()
    raw = Raw(server)
    device.full_sync(raw)
    raw.close()
    with running_server(data_dir, {}) as second:
        change_through_imaplib(connect(second))
    raw = Raw(server)
    vanished, fetched = device.resync(raw)
    raw.close()
    check_resync(device, server, vanished, fetched)


def test_live_vanished_and_conditional_store_between_two_processes(
    seeded: tuple[Path, RunningServer],
) -> None:
    """While selected: another process's expunge arrives as VANISHED at the
    device's next command (after the poll), and a conditional STORE against
    a message the other process changed reports it MODIFIED."""
    data_dir, server = seeded
    device = Device()
    raw = Raw(server)
    device.full_sync(raw)
    with running_server(data_dir, {}) as second:
        imap = connect(second)
        ok(imap.select("INBOX"))
        ok(imap.uid("STORE", "4", "+FLAGS", "(\\Deleted)"))
        ok(imap.uid("EXPUNGE", "4"))
        ok(imap.uid("STORE", "6", "+FLAGS", "($Other)"))
        imap.logout()
    # The poll timer runs every 0.5 s: NOOP until its changes arrive.
    attempts = iter(range(10**6))

    def noop_with_changes() -> list[bytes] | None:
        found = raw.command(f"p{next(attempts)}", "NOOP")
        return found if any(line.startswith(b"* VANISHED") for line in found) else None

    lines = wait_until(noop_with_changes, "the other process's expunge never arrived", interval=0.05)
    assert b"* VANISHED 4\r\n" in lines
    assert any(b"UID 6 " in line and b"$Other" in line for line in lines)
    lines = raw.command("c", f"UID STORE 6,8 (UNCHANGEDSINCE {device.modseq - 1}) +FLAGS.SILENT (\\Seen)")
    assert lines[-1].startswith(b"c OK [MODIFIED 6] ")
    raw.close()

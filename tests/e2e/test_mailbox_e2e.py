"""End to end: mailbox commands against the real server process over a
socket, driven by stdlib imaplib (an independent client): CREATE, LIST,
SELECT, APPEND, STATUS, STORE, EXPUNGE, CLOSE, RENAME, DELETE; two
connections; two server processes sharing one data directory."""

from __future__ import annotations

import imaplib
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from tests.support.server import RunningServer, running_server

MESSAGE = (
    b"From: Fred <fred@example.org>\r\nTo: alice@example.org\r\n"
    b"Subject: e2e\r\n\r\nHello over a real socket.\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("mailbox-e2e"), {"alice": "wonderland"}) as s:
        yield s


def connect(server: RunningServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login("alice", "wonderland")
    return imap


def ok(result: tuple[str, Sequence[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return list(data)


def test_mailbox_lifecycle_with_imaplib(server: RunningServer) -> None:
    imap = connect(server)
    ok(imap.create("Work/Projects"))
    # Only our names: the server may give new accounts default mailboxes.
    assert ok(imap.list('""', "INBOX")) == [b'(\\HasNoChildren) "/" INBOX']
    assert ok(imap.list('""', "Work*")) == [
        b'(\\HasChildren) "/" Work',
        b'(\\HasNoChildren) "/" Work/Projects',
    ]
    typ, data = imap.create("Work")
    assert typ == "NO" and data == [b"[ALREADYEXISTS] Mailbox already exists: Work"]

    when = imaplib.Time2Internaldate(time.mktime((2024, 3, 1, 12, 0, 0, 0, 0, -1)))
    ok(imap.append("Work/Projects", "(\\Seen)", when, MESSAGE))
    ok(imap.append("Work/Projects", "(\\Deleted $Draft2)", None, MESSAGE))
    ok(imap.append("Work/Projects", None, None, MESSAGE))
    assert ok(imap.status("Work/Projects", "(MESSAGES RECENT UIDNEXT UNSEEN)")) == [
        b"Work/Projects (MESSAGES 3 RECENT 3 UIDNEXT 4 UNSEEN 2)"]

    assert ok(imap.select("Work/Projects")) == [b"3"]
    assert imap.untagged_responses.get("RECENT") == [b"3"]
    assert imap.untagged_responses.get("UIDNEXT") == [b"4"]
    assert imap.untagged_responses.get("UNSEEN") == [b"2"]
    assert imap.untagged_responses.get("READ-WRITE") == [b""]
    ok(imap.store("3", "+FLAGS", "(\\Deleted)"))
    typ, data = imap.expunge()
    assert typ == "OK" and data == [b"3", b"2"]  # highest first
    assert ok(imap.status("Work/Projects", "(MESSAGES UIDNEXT)")) == [
        b"Work/Projects (MESSAGES 1 UIDNEXT 4)"]
    ok(imap.close())
    assert imap.state == "AUTH"

    ok(imap.rename("Work", "Attic"))
    assert ok(imap.list('""', "Attic*")) == [
        b'(\\HasChildren) "/" Attic',
        b'(\\HasNoChildren) "/" Attic/Projects',
    ]
    assert ok(imap.list('""', "Work*")) == [None]  # imaplib's "no data"
    ok(imap.delete("Attic/Projects"))
    ok(imap.delete("Attic"))
    assert ok(imap.list('""', "Attic*")) == [None]
    typ, data = imap.select("Attic")
    assert typ == "NO" and data == [b"[NONEXISTENT] Mailbox does not exist: Attic"]
    typ, data = imap.append("Nowhere", None, None, MESSAGE)
    assert typ == "NO" and data == [b"[TRYCREATE] Mailbox does not exist: Nowhere"]
    imap.logout()


def test_examine_is_read_only(server: RunningServer) -> None:
    imap = connect(server)
    ok(imap.create("ReadOnly"))
    ok(imap.append("ReadOnly", "(\\Deleted)", None, MESSAGE))
    assert ok(imap.select("ReadOnly", readonly=True)) == [b"1"]
    assert imap.untagged_responses.get("READ-ONLY") == [b""]
    typ, data = imap.expunge()
    assert typ == "NO" and data == [b"[READ-ONLY] Mailbox is read-only"]
    ok(imap.close())
    assert ok(imap.status("ReadOnly", "(MESSAGES RECENT)")) == [
        b"ReadOnly (MESSAGES 1 RECENT 1)"]
    ok(imap.delete("ReadOnly"))
    imap.logout()


def test_two_connections_see_each_others_changes(server: RunningServer) -> None:
    watcher, writer = connect(server), connect(server)
    ok(watcher.create("Shared"))
    ok(watcher.select("Shared"))
    watcher.untagged_responses.clear()  # imaplib accumulates untagged data
    ok(writer.append("Shared", None, None, MESSAGE))
    ok(watcher.noop())
    assert watcher.untagged_responses.pop("EXISTS") == [b"1"]
    assert watcher.untagged_responses.pop("RECENT") == [b"1"]
    ok(writer.select("Shared"))
    ok(writer.store("1", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(writer.expunge())
    typ, data = watcher.noop()
    assert typ == "OK"
    assert watcher.untagged_responses.get("EXPUNGE") == [b"1"]
    for imap in (watcher, writer):
        ok(imap.close())
    ok(writer.delete("Shared"))
    watcher.logout()
    writer.logout()


def test_two_server_processes_share_a_data_directory(tmp_path: Path) -> None:
    """Another process's APPEND reaches a selected session through the
    store poll (every 0.5 s); \\Recent is still owned by one session."""
    with running_server(tmp_path, {"alice": "wonderland"}) as first:
        with running_server(tmp_path, {}) as second:
            assert first.data_dir == second.data_dir
            watcher, writer = connect(first), connect(second)
            ok(watcher.select("INBOX"))
            watcher.untagged_responses.clear()
            ok(writer.append("INBOX", None, None, MESSAGE))
            deadline = time.monotonic() + 30  # the poll is every 0.5 s; generous for a loaded machine
            while watcher.untagged_responses.get("EXISTS") != [b"1"]:
                assert time.monotonic() < deadline, "change never arrived"
                time.sleep(0.1)
                ok(watcher.noop())
            assert watcher.untagged_responses.get("RECENT") == [b"1"]
            ok(writer.select("INBOX"))
            assert writer.untagged_responses.get("EXISTS") == [b"1"]
            assert writer.untagged_responses.get("RECENT") == [b"0"]
            watcher.logout()
            writer.logout()


def test_store_is_closed_cleanly_at_shutdown(tmp_path: Path) -> None:
    """SIGTERM: BYE to clients, then the store is closed (SQLite checkpoints
    the WAL into the database and removes it when the last connection
    closes), and the mail is there at the next start."""
    with running_server(tmp_path, {"alice": "wonderland"}) as server:
        imap = connect(server)
        ok(imap.append("INBOX", "(\\Flagged)", None, MESSAGE))
        ok(imap.select("INBOX"))
        server.process.terminate()
        assert server.process.wait(15) == 0
        assert not (server.data_dir / "mail.sqlite3-wal").exists()
        assert "imapd: mail store closed" in server.log()
        assert "Traceback" not in server.log() and "failed" not in server.log()
    with running_server(tmp_path, {}) as again:
        imap = connect(again)
        assert ok(imap.status("INBOX", "(MESSAGES)")) == [b"INBOX (MESSAGES 1)"]
        imap.logout()

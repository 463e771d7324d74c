"""``imapd import maildir|mbox`` as an operator runs it: the real CLI in a
subprocess beside a running server, then IMAP FETCH shows every message
byte for byte with its flags and INTERNALDATE; ``kill -9`` mid-import and
a re-run import every message exactly once; bad items are reported, the
rest imported, exit status 1. Sources built with stdlib ``mailbox``."""

from __future__ import annotations

import datetime
import imaplib
import mailbox
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.frontends import store_url
from tests.importer.fixtures import MTIME, crlf, make_maildir, make_mbox, text
from tests.support.dovecot import MISSING, running_dovecot, unavailable
from tests.support.pinned_skips import Pin, require_tool
from tests.support.postgres import MISSING as PG_MISSING
from tests.support.server import (
    RunningServer, imapd_command, run_cli, running_server, subprocess_env,
)
from tests.support.stress import CHEAP_ARGON2

PINNED_SKIPS = (Pin.exact(MISSING, "Dovecot is a Debian package .ci/run installs; it needs root",
                          in_ci=False),
                Pin.exact(PG_MISSING, "PostgreSQL binaries are a CI dependency (.ci/run)",
                          in_ci=False))

USERS = {"bob": "builder"}
INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path, USERS) as s:
        yield s


def run_import(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(imapd_command("import", *args, "--data", str(server.data_dir)),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)


def fetch_all(server: RunningServer, mailbox_name: str) -> list[tuple[bytes, set[str], float]]:
    """(BODY[], FLAGS without \\Recent, INTERNALDATE as epoch) of every message."""
    client = imaplib.IMAP4(server.host, server.port)
    client.login("bob", USERS["bob"])
    typ, data = client.select(f'"{mailbox_name}"', readonly=True)
    assert typ == "OK", data
    found: list[tuple[bytes, set[str], float]] = []
    if int(data[0] or b"0"):
        typ, items = client.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        for item in items:
            if not isinstance(item, tuple):
                continue
            head, body = item
            flags = set(FLAGS.search(head).group(1).decode().split()) - {"\\Recent"}  # type: ignore[union-attr]
            stamp = imaplib.Internaldate2tuple(b"INTERNALDATE " + head[head.index(b'"'):])
            date = INTERNALDATE.search(head).group(1).decode()  # type: ignore[union-attr]
            parsed = datetime.datetime.strptime(date, "%d-%b-%Y %H:%M:%S %z")
            assert stamp is not None
            found.append((body, flags, parsed.timestamp()))
    client.logout()
    return found


def test_maildir_and_mbox_into_a_running_server(server: RunningServer, tmp_path: Path) -> None:
    make_maildir(tmp_path / "Maildir", {1: "S", 2: "RF", 3: "DT"}, {"Sent": 2, "Sent.Old": 1})
    done = run_import(server, "maildir", str(tmp_path / "Maildir"), "--user", "bob")
    assert done.returncode == 0, done.stderr
    assert "imported 6 messages" in done.stdout and "3 folders" in done.stdout
    assert done.stderr == ""  # not a terminal: no progress bar
    inbox = fetch_all(server, "INBOX")
    assert inbox == [
        (crlf(text(1)), {"\\Seen"}, MTIME + 1),
        (crlf(text(2)), {"\\Answered", "\\Flagged"}, MTIME + 2),
        (crlf(text(3)), {"\\Draft", "\\Deleted"}, MTIME + 3)]
    assert len(fetch_all(server, "Sent/Old")) == 1

    make_mbox(tmp_path / "archive.mbox", {4: "RO", 5: "AF"})
    done = run_import(server, "mbox", str(tmp_path / "archive.mbox"), "--user", "bob",
                      "--folder", "Archive/2024")
    assert done.returncode == 0, done.stderr
    archive = fetch_all(server, "Archive/2024")
    when = datetime.datetime(2024, 1, 6, 3, 4, 5, tzinfo=datetime.timezone.utc).timestamp()
    assert archive == [(crlf(text(4)), {"\\Seen"}, when),
                       (crlf(text(5)), {"\\Answered", "\\Flagged"}, when + 86400)]

    again = run_import(server, "maildir", str(tmp_path / "Maildir"), "--user", "bob")
    assert again.returncode == 0 and "imported 0 messages" in again.stdout
    assert "skipped 6 already there" in again.stdout
    assert len(fetch_all(server, "INBOX")) == 3


def message_count(server: RunningServer) -> int:
    client = imaplib.IMAP4(server.host, server.port)
    client.login("bob", USERS["bob"])
    typ, data = client.status("INBOX", "(MESSAGES)")
    client.logout()
    match = re.search(rb"MESSAGES (\d+)", data[0] or b"")
    assert typ == "OK" and match
    return int(match.group(1))


def big_mbox(path: Path, total: int) -> None:
    box = mailbox.mbox(str(path), create=True)
    for n in range(total):
        box.add(mailbox.mboxMessage(text(n)))
    box.flush()
    box.close()


def interrupt_mid_way(server: RunningServer, source: Path,
                      signum: int) -> subprocess.CompletedProcess[bytes]:
    """Start a one-message-per-transaction import of ``source`` and send
    ``signum`` once 50 messages are in."""
    argv = imapd_command("import", "mbox", str(source), "--user", "bob",
                         "--batch", "1", "--data", str(server.data_dir))
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=subprocess_env())
    deadline = time.monotonic() + 60
    while message_count(server) < 50 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signum)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def test_kill_9_then_resume_imports_each_message_once(server: RunningServer, tmp_path: Path) -> None:
    total = 1500
    big_mbox(tmp_path / "big", total)
    interrupt_mid_way(server, tmp_path / "big", signal.SIGKILL)
    before = message_count(server)
    assert 0 < before < total, f"the import was not interrupted mid-way ({before})"

    done = run_import(server, "mbox", str(tmp_path / "big"), "--user", "bob")
    assert done.returncode == 0, done.stderr
    assert f"skipped {before} already there" in done.stdout
    client = imaplib.IMAP4(server.host, server.port)
    client.login("bob", USERS["bob"])
    client.select("INBOX", readonly=True)
    typ, items = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    client.logout()
    ids = sorted(item[1].strip() for item in items if isinstance(item, tuple))
    assert ids == sorted(f"Message-ID: <m{n}@example.org>".encode() for n in range(total))


def test_ctrl_c_stops_with_a_summary(server: RunningServer, tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) stops the import between messages, with one line,
    the summary and status 1 (the reactor would swallow KeyboardInterrupt)."""
    total = 1500
    big_mbox(tmp_path / "big", total)
    stopped = interrupt_mid_way(server, tmp_path / "big", signal.SIGINT)
    assert stopped.returncode == 1, stopped.stderr
    assert b"stopped: interrupted (run the same command again to resume)" in stopped.stderr
    assert b"Traceback" not in stopped.stderr and b"imported " in stopped.stdout
    assert 0 < message_count(server) < total


def test_bad_items_are_reported_and_the_rest_imported(server: RunningServer, tmp_path: Path) -> None:
    source = tmp_path / "mail"
    source.mkdir()
    make_mbox(source / "Good", {1: "R"})
    (source / "notes.txt").write_bytes(b"this is not an mbox\n")
    done = run_import(server, "mbox", str(source), "--user", "bob")
    assert done.returncode == 1
    assert "notes.txt: not an mbox file" in done.stderr
    assert "imported 1 messages" in done.stdout and "1 errors" in done.stdout
    assert [flags for _, flags, _ in fetch_all(server, "Good")] == [{"\\Seen"}]
    unknown = run_import(server, "mbox", str(source), "--user", "nobody")
    assert unknown.returncode == 2 and "no such user" in unknown.stderr


def read_terminal(master: int, sink: list[bytes]) -> None:
    """Everything written to the terminal until its other side closes."""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: no process has the terminal open any more
            return
        if not chunk:
            return
        sink.append(chunk)


def test_progress_bar_on_a_terminal(server: RunningServer, tmp_path: Path) -> None:
    """The bar (counts, rate, bytes) is drawn when stderr is a terminal."""
    import fcntl
    import pty
    import struct
    import termios

    make_maildir(tmp_path / "Maildir", {n: "S" for n in range(1, 31)}, {})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    drawn: list[bytes] = []
    reader = threading.Thread(target=read_terminal, args=(master, drawn), daemon=True)
    reader.start()
    argv = imapd_command("import", "maildir", str(tmp_path / "Maildir"), "--user", "bob",
                         "--data", str(server.data_dir))
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=subprocess_env())
    os.close(slave)
    out, _ = process.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(master)
    assert process.returncode == 0 and b"imported 30 messages" in out
    screen = b"".join(drawn)
    assert b"30/30" in screen and b"msg/s" in screen and b"KiB" in screen


def test_into_postgresql(tmp_path: Path) -> None:
    """The same import through a PostgreSQL store, read back by a server on it."""
    from tests.support.postgres import shared_cluster

    cluster = shared_cluster()
    dsn = cluster.fresh_database()
    store = ["--store", store_url(dsn)]
    try:
        run_cli("user", "add", "bob", "--password-stdin", "--argon2", CHEAP_ARGON2, *store,
                stdin=USERS["bob"] + "\n")
        make_maildir(tmp_path / "Maildir", {1: "S", 2: "F"}, {"Sent": 1})
        (tmp_path / "srv").mkdir()
        with running_server(tmp_path / "srv", users={}, extra_args=store) as server:
            done = run_import(server, "maildir", str(tmp_path / "Maildir"), "--user", "bob", *store)
            assert done.returncode == 0, done.stderr
            assert fetch_all(server, "INBOX") == [(crlf(text(1)), {"\\Seen"}, MTIME + 1),
                                                  (crlf(text(2)), {"\\Flagged"}, MTIME + 2)]
            again = run_import(server, "maildir", str(tmp_path / "Maildir"), "--user", "bob", *store)
            assert "skipped 3 already there" in again.stdout
    finally:
        cluster.release_database(dsn)


def dovecot_view(client: imaplib.IMAP4, name: str) -> list[tuple[bytes, set[str], float]]:
    """What an IMAP server shows of a folder, as ``fetch_all`` reads ours."""
    typ, data = client.select(f'"{name}"', readonly=True)
    assert typ == "OK", data
    typ, items = client.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    found = []
    for item in items:
        if isinstance(item, tuple):
            head, body = item
            flags = set(FLAGS.search(head).group(1).decode().split()) - {"\\Recent"}  # type: ignore[union-attr]
            date = INTERNALDATE.search(head).group(1).decode()  # type: ignore[union-attr]
            found.append((body, flags, datetime.datetime.strptime(
                date, "%d-%b-%Y %H:%M:%S %z").timestamp()))
    return found


def test_a_maildir_written_by_dovecot(server: RunningServer) -> None:
    """Dovecot writes the Maildir (its info letters, dovecot-keywords, file
    times, modified UTF-7 folder names); after the import our server shows
    every message as Dovecot showed it: bytes, flags, keywords, INTERNALDATE."""
    require_tool(None if unavailable() else "dovecot", MISSING)
    folders = {"INBOX": "INBOX", "Projekte.Entw&APw-rfe": "Projekte/Entw&APw-rfe"}
    flags = ["(\\Seen)", "(\\Answered \\Flagged $Forwarded Work)", "(\\Draft \\Deleted)", "()"]
    with running_dovecot() as dovecot:
        client = imaplib.IMAP4(dovecot.host, dovecot.port)
        client.login(dovecot.user, dovecot.password)
        assert client.create("Projekte.Entw&APw-rfe")[0] == "OK"
        for n, flag in enumerate(flags):
            when = datetime.datetime(2023, 3, 4 + n, 5, 6, 7, tzinfo=datetime.timezone.utc)
            for name in folders:
                client.append(name, flag, imaplib.Time2Internaldate(when), crlf(text(n)))
        expected = {ours: dovecot_view(client, theirs) for theirs, ours in folders.items()}
        client.logout()
        source = dovecot.root / "home" / dovecot.user / "Maildir"
        done = run_import(server, "maildir", str(source), "--user", "bob")
    assert done.returncode == 0, done.stderr
    assert "imported 8 messages" in done.stdout
    assert len(expected["INBOX"]) == 4 and {"$Forwarded", "Work"} <= expected["INBOX"][1][1]
    for ours, seen_at_dovecot in expected.items():
        assert fetch_all(server, ours) == seen_at_dovecot

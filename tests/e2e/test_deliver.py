"""``imapd deliver`` as an MTA runs it (a subprocess, the message on
stdin): sysexits statuses, with and without a running server, and the
running server's IDLE session sees the message at once."""

from __future__ import annotations

import imaplib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import (
    RunningServer, add_user, imapd_command, run_cli, running_server, subprocess_env,
)

USERS = {"alice": "wonderland", "bob": "builder"}
MESSAGE = b"From: s@example.org\nSubject: piped\n\n.dot\n8-bit \xc3\xa9\n"
STORED = b"From: s@example.org\r\nSubject: piped\r\n\r\n.dot\r\n8-bit \xc3\xa9\r\n"


def deliver(data_dir: Path, *args: str, stdin: bytes = MESSAGE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(imapd_command("deliver", "--data", str(data_dir), *args), input=stdin,
                          capture_output=True, env=subprocess_env(), timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("e2e-deliver"), USERS) as s:
        yield s


def last_message(server: RunningServer, user: str, mailbox: str = "INBOX") -> bytes:
    client = imaplib.IMAP4(server.host, server.port)
    client.login(user, USERS[user])
    typ, data = client.select(mailbox, readonly=True)
    assert typ == "OK", data
    count = data[0]
    assert isinstance(count, bytes)
    typ, fetched = client.fetch(count.decode(), "(BODY.PEEK[])")
    client.logout()
    item = fetched[0]
    assert isinstance(item, tuple)
    return item[1]


def test_exit_statuses(server: RunningServer) -> None:
    assert deliver(server.data_dir, "-a", "nobody").returncode == 67  # EX_NOUSER
    assert deliver(server.data_dir, "-a", "alice", stdin=b"").returncode == 73  # bad input
    unreachable = deliver(server.data_dir, "-a", "alice", "--store",
                          "postgresql://imapd@127.0.0.1:1/none")
    assert unreachable.returncode == 75, unreachable.stderr  # EX_TEMPFAIL: the MTA retries


def test_the_running_servers_idle_session_sees_the_delivery(server: RunningServer) -> None:
    idler = RawClient(server.host, server.port)
    idler.line()
    idler.send(b"a LOGIN bob builder\r\nb SELECT INBOX\r\n")
    exists = next(int(line.split()[1]) for line in idler.until_tagged(b"b")
                  if line.endswith(b" EXISTS\r\n"))
    idler.send(b"c IDLE\r\n")
    assert idler.line().startswith(b"+ ")
    done = deliver(server.data_dir, "-a", "Bob@example.org", "-f", "s@example.org")
    assert done.returncode == 0, done.stderr
    assert idler.line() == b"* %d EXISTS\r\n" % (exists + 1)
    idler.send(b"DONE\r\n")
    idler.until_tagged(b"c")
    idler.close()
    assert last_message(server, "bob") == b"Return-Path: <s@example.org>\r\n" + STORED


def test_into_a_folder_and_without_a_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "imapd-data"
    add_user(data_dir, "alice", USERS["alice"])
    assert deliver(data_dir, "-a", "alice", stdin=b"From MAILER-DAEMON x\n" + MESSAGE).returncode == 0
    client_dir = tmp_path / "c"
    client_dir.mkdir()
    with running_server(client_dir, {}, ["--data", str(data_dir)]) as s:
        client = imaplib.IMAP4(s.host, s.port)
        client.login("alice", USERS["alice"])
        client.create("Lists")
        client.logout()
        assert deliver(data_dir, "-a", "alice", "-m", "Lists").returncode == 0
        assert last_message(s, "alice", "Lists") == STORED
        assert last_message(s, "alice") == STORED  # the envelope line was dropped


def test_over_quota_bounces_unless_configured_temporary(tmp_path: Path) -> None:
    """Over quota is EX_NOPERM (77, the MTA bounces with the reason on
    stderr) by default, EX_TEMPFAIL (75) with --quota-full-tempfail."""
    data_dir = tmp_path / "imapd-data"
    add_user(data_dir, "alice", USERS["alice"])
    run_cli("user", "quota", "alice", "--storage", "10", "--data", str(data_dir))
    bounced = deliver(data_dir, "-a", "alice")
    assert bounced.returncode == 77, bounced.stderr  # EX_NOPERM
    assert b"over quota" in bounced.stderr
    kept = deliver(data_dir, "-a", "alice", "--quota-full-tempfail")
    assert kept.returncode == 75, kept.stderr  # EX_TEMPFAIL: the MTA retries
    assert b"over quota" in kept.stderr
    run_cli("user", "quota", "alice", "--storage", "none", "--data", str(data_dir))
    assert deliver(data_dir, "-a", "alice").returncode == 0


def test_trouble_on_our_side_is_temporary(tmp_path: Path) -> None:
    """A data directory that cannot be made (here: under a regular file)
    exits 75, so the MTA keeps the mail and retries; 70 (EX_SOFTWARE) would
    make Postfix bounce it. One line on stderr, no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    failed = deliver(blocker / "imapd-data", "-a", "alice")
    assert failed.returncode == 75, failed.stderr
    assert failed.stderr.count(b"\n") == 1 and b"Traceback" not in failed.stderr

"""``imapd backup`` under write load and ``imapd restore``: a real server,
a client appending without pause while the backup runs, the backup
restored into a fresh directory and served by a new server; everything the
client saw acknowledged before the backup began is there, byte for byte
with its flags, and nothing else is there but whole messages it sent."""

from __future__ import annotations

import contextlib
import imaplib
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imapd.cli import main
from tests.support.server import run_cli, running_server

MAILBOXES = ("INBOX", "Work")
FLAG_SETS = (r"(\Seen)", r"(\Flagged $Important)", "()", r"(\Answered \Seen)")


def message(n: int) -> bytes:
    # Sizes vary from a few hundred bytes to ~60 KB so the store spans many pages.
    return (b"From: load@example.org\r\nSubject: load %d\r\n\r\n" % n
            + b"line %06d of the body\r\n" % n * (1 + (n * 37) % 2500))


@dataclass
class Appender:
    """Appends to both mailboxes until stopped; ``acked`` is what the server
    acknowledged (APPENDUID, RFC 4315 §3), in order."""

    host: str
    port: int
    acked: list[tuple[str, int, int, str]] = field(default_factory=list)  # mailbox, uid, n, flags
    sent: dict[int, str] = field(default_factory=dict)  # n -> flags, every message ever sent
    stop: threading.Event = field(default_factory=threading.Event)
    enough: threading.Event = field(default_factory=threading.Event)
    error: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            imap = imaplib.IMAP4(self.host, self.port, timeout=60)
            imap.login("alice", "wonderland")
            n = 0
            while not self.stop.is_set():
                mailbox, flags = MAILBOXES[n % 2], FLAG_SETS[n % len(FLAG_SETS)]
                self.sent[n] = flags
                typ, data = imap.append(mailbox, flags, None, message(n))
                assert typ == "OK", data
                match = re.search(rb"APPENDUID \d+ (\d+)", data[0])
                assert match is not None, data
                self.acked.append((mailbox, int(match.group(1)), n, flags))
                n += 1
                if n == 40:
                    self.enough.set()
            imap.logout()
        except BaseException as error:  # reported by the test thread
            self.error.append(error)
            self.enough.set()


def flags_of(text: str) -> set[str]:
    return set(text.strip("()").split())


def stored(host: str, port: int) -> dict[str, dict[int, tuple[bytes, set[str]]]]:
    """Every message of both mailboxes: uid -> (bytes, flags without \\Recent)."""
    imap = imaplib.IMAP4(host, port, timeout=60)
    imap.login("alice", "wonderland")
    found: dict[str, dict[int, tuple[bytes, set[str]]]] = {}
    for mailbox in MAILBOXES:
        imap.select(mailbox, readonly=True)
        _, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        found[mailbox] = {}
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"UID (\d+)", item[0])
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                assert uid is not None and flags is not None, item[0]
                found[mailbox][int(uid.group(1))] = (
                    item[1], set(flags.group(1).decode().split()) - {"\\Recent"})
    imap.logout()
    return found


def test_backup_under_write_load_restores_everything_acknowledged(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    with running_server(tmp_path / "live") as server:
        setup = imaplib.IMAP4(server.host, server.port)
        setup.login("alice", "wonderland")
        setup.create("Work")
        setup.logout()
        appender = Appender(server.host, server.port)
        thread = threading.Thread(target=appender.run, daemon=True)
        thread.start()
        assert appender.enough.wait(60) and not appender.error
        before = list(appender.acked)  # acknowledged before the backup began
        result = run_cli("backup", str(backup_dir), "--data", str(server.data_dir))
        during = len(appender.acked) - len(before)
        appender.stop.set()
        thread.join(60)
        assert not appender.error, appender.error
        assert "imapd: backed up 5 files" in result.stdout
        refused = run_cli("restore", str(backup_dir), "--data", str(server.data_dir),
                          "--force", check=False)
        assert refused.returncode == 1 and "stop the server" in refused.stderr
    assert during > 0  # the client kept appending while the backup ran

    fresh = tmp_path / "restored" / "imapd-data"
    restored = run_cli("restore", str(backup_dir), "--data", str(fresh))
    assert restored.returncode == 0 and "restored 5 files" in restored.stdout
    assert run_cli("doctor", "--data", str(fresh)).returncode == 0
    with running_server(fresh.parent, users={}) as server:
        found = stored(server.host, server.port)
    for mailbox, uid, n, sent_flags in before:
        assert found[mailbox].get(uid) == (message(n), flags_of(sent_flags)), (mailbox, uid)
    acked = {(mailbox, uid): n for mailbox, uid, n, _ in appender.acked}
    for mailbox, messages in found.items():
        for uid, (body, flags) in messages.items():
            # Nothing half: every message is one the client sent, whole, with its flags.
            subject = re.search(rb"Subject: load (\d+)", body)
            assert subject is not None, body[:200]
            n = int(subject.group(1))
            assert body == message(n) and flags == flags_of(appender.sent[n])
            assert acked.get((mailbox, uid), n) == n


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped server's data directory (one message) and its backup."""
    root = tmp_path_factory.mktemp("backup")
    with running_server(root) as server:
        imap = imaplib.IMAP4(server.host, server.port)
        imap.login("alice", "wonderland")
        imap.append("INBOX", r"(\Seen)", None, message(1))
        imap.logout()
    run_cli("backup", str(root / "backup"), "--data", str(root / "imapd-data"))
    return root


def make_backup(tmp_path: Path, pristine: Path) -> tuple[Path, Path]:
    """Copies of the pristine data directory and backup: (data, backup)."""
    for name in ("imapd-data", "backup"):
        shutil.copytree(pristine / name, tmp_path / name)
    return tmp_path / "imapd-data", tmp_path / "backup"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``imapd ARGS`` in this process: (exit status, stdout, stderr)."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_restore_checks_the_backup_and_the_target(
        tmp_path: Path, pristine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, backup_dir = make_backup(tmp_path, pristine)
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["schema_version"] == 5 and manifest["format"] == "imapd-backup/1"
    assert {f["path"] for f in manifest["files"]} == {
        "mail.sqlite3", "users.passwd", "users.scram",
        "tls/selfsigned-cert.pem", "tls/selfsigned-key.pem"}
    status, _, err = cli(capsys, "backup", str(backup_dir), "--data", str(data))
    assert status == 1 and "is not an empty directory" in err

    status, _, err = cli(capsys, "restore", str(backup_dir), "--data", str(data))
    assert status == 1 and "is not empty (--force" in err

    tampered = tmp_path / "tampered"
    shutil.copytree(backup_dir, tampered)
    with open(tampered / "users.passwd", "ab") as users:
        users.write(b"mallory:{PLAIN}x\n")
    status, _, err = cli(capsys, "restore", str(tampered), "--data", str(tmp_path / "t1"))
    assert status == 1 and "does not match the manifest" in err
    assert not (tmp_path / "t1").exists()

    (tampered / "users.passwd").unlink()
    (tampered / "manifest.json").write_text(json.dumps(
        {**manifest, "files": [{"path": "../escape", "size": 0, "sha256": ""}]}))
    status, _, err = cli(capsys, "restore", str(tampered), "--data", str(tmp_path / "t2"))
    assert status == 1 and "unexpected file '../escape'" in err

    (tampered / "manifest.json").unlink()
    status, _, err = cli(capsys, "restore", str(tampered), "--data", str(tmp_path / "t3"))
    assert status == 1 and "no manifest.json" in err


# Writes into the store and dies without a checkpoint: its WAL stays behind.
CRASHER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("UPDATE users SET name='stale-wal-user'")
conn.execute("CREATE TABLE stale(x)")
os._exit(0)
"""

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
print("open", flush=True)
time.sleep(600)
"""


def test_force_replaces_a_crashed_store_without_its_stale_wal(
        tmp_path: Path, pristine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The replaced store's -wal would be replayed into the restored
    database (or corrupt it): restore removes it first."""
    data, backup_dir = make_backup(tmp_path, pristine)
    subprocess.run([sys.executable, "-c", CRASHER, str(data / "mail.sqlite3")], check=True)
    assert (data / "mail.sqlite3-wal").stat().st_size > 0
    assert cli(capsys, "restore", str(backup_dir), "--data", str(data), "--force")[0] == 0
    with contextlib.closing(sqlite3.connect(data / "mail.sqlite3")) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("alice",)]
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    assert cli(capsys, "doctor", "--data", str(data))[0] == 0


def test_restore_refuses_while_a_process_has_the_store_open(
        tmp_path: Path, pristine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No server and no admin socket, only a process with the store open
    (``imapd deliver``, a worker, a server started by another version)."""
    data, backup_dir = make_backup(tmp_path, pristine)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(data / "mail.sqlite3")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        status, _, err = cli(capsys, "restore", str(backup_dir), "--data", str(data), "--force")
        assert status == 1 and "has the store" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    assert cli(capsys, "restore", str(backup_dir), "--data", str(data), "--force")[0] == 0


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_postgresql_points_at_pg_dump(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = cli(capsys, command, str(tmp_path / "b"), "--store", "postgresql://u@127.0.0.1/mail")
    assert status == 2 and err.count("\n") == 1 and "pg_dump" in err

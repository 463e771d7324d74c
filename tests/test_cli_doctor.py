"""``imapd doctor``: one store built by a real server (mailboxes, keywords,
copies that share bodies, an expunge), then per invariant a copy corrupted
on purpose with SQL: the doctor finds it, ``--repair`` fixes it, a second
run is clean, and a real server then serves the mailbox correctly."""

from __future__ import annotations

import contextlib
import imaplib
import re
import shutil
import socket
import sqlite3
from pathlib import Path
from typing import Sequence

import pytest

from imapd.storage.sqlite import doctor
from tests.support.server import run_cli, running_server

MESSAGE = b"From: a@example.org\r\nSubject: doctor %d\r\n\r\nbody %d\r\n"
INBOX = "(SELECT id FROM mailboxes WHERE name='INBOX')"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped server's data directory with some history."""
    root = tmp_path_factory.mktemp("doctor")
    populate(root)
    return root / "imapd-data"


def populate(root: Path, extra_args: Sequence[str] = (), users: dict[str, str] | None = None) -> None:
    """Two mailboxes, keywords, copies sharing bodies, one expunged UID."""
    with running_server(root, users=users, extra_args=extra_args) as server:
        imap = imaplib.IMAP4(server.host, server.port)
        imap.login("alice", "wonderland")
        imap.create("Archive")
        for n in range(5):
            imap.append("INBOX", r"(\Seen $Label%d)" % (n % 2), None, MESSAGE % (n, n))
        imap.select("INBOX")
        imap.uid("COPY", "1:3", "Archive")
        imap.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
        imap.expunge()
        imap.logout()


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "imapd-data"
    shutil.copytree(pristine, target)
    return target


def corrupt(data: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(data / "mail.sqlite3", isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def examine(data: Path, repair: bool) -> doctor.Report:
    with contextlib.closing(sqlite3.connect(data / "mail.sqlite3", isolation_level=None)) as conn:
        return doctor.examine(conn, repair)


# The highest UID each mailbox of ``pristine`` ever gave (INBOX's UID 2 is expunged).
TOP_UID = {"INBOX": 5, "Archive": 3}


def serves_correctly(root: Path, extra_args: Sequence[str] = ()) -> None:
    """A real server on the repaired store: every message's size is its
    body's, the keywords are in FLAGS, HIGHESTMODSEQ is at least every
    message's MODSEQ (RFC 7162 §3.1), and a new message gets a UID above
    every UID the mailbox ever gave (RFC 3501 §2.3.1.1)."""
    with running_server(root, users={}, extra_args=extra_args) as server:
        imap = imaplib.IMAP4(server.host, server.port)
        imap.login("alice", "wonderland")
        for mailbox, top_uid in TOP_UID.items():
            imap.select(mailbox)
            flags = b" ".join(imap.response("FLAGS")[1] or [b""])
            assert b"$Label1" in flags and b"$Label0" in flags
            _, fetched = imap.uid("FETCH", "1:*", "(MODSEQ RFC822.SIZE BODY.PEEK[])")
            modseqs = []
            for item in fetched:
                if isinstance(item, tuple):
                    size = int(number(rb"RFC822.SIZE (\d+)", item[0]))
                    assert size == len(item[1])
                    modseqs.append(number(rb"MODSEQ \((\d+)\)", item[0]))
            status = imap.status(mailbox, "(UIDNEXT HIGHESTMODSEQ)")[1][0]
            assert number(rb"HIGHESTMODSEQ (\d+)", status) >= max(modseqs)
            result = imap.append(mailbox, None, None, MESSAGE % (99, 99))
            new_uid = number(rb"APPENDUID \d+ (\d+)", result[1][0])
            assert new_uid == number(rb"UIDNEXT (\d+)", status) and new_uid > top_uid
        imap.logout()


def number(pattern: bytes, text: bytes) -> int:
    match = re.search(pattern, text)
    assert match is not None, text
    return int(match.group(1))


def test_a_fresh_store_is_sound(data: Path) -> None:
    report = examine(data, repair=False)
    assert report.problems == [] and report.clean


# (SQL corruption, the check that must find it)
REPAIRABLE = {
    "uidnext": ([f"UPDATE mailboxes SET uidnext=2 WHERE id={INBOX}"], "UID 5 given but UIDNEXT is 2"),
    "modseq": ([f"UPDATE mailboxes SET highestmodseq=1 WHERE id={INBOX}"], "HIGHESTMODSEQ is 1"),
    "expunged": ([f"INSERT INTO expunged SELECT mailbox_id, uid, modseq FROM messages "
                  f"WHERE mailbox_id={INBOX} AND uid=1",
                  "INSERT INTO expunged VALUES(9999, 1, 1)"], "is both a message and expunged"),
    "refs": (["UPDATE bodies SET refs=refs+3 WHERE id=(SELECT min(body_id) FROM messages)"],
             "message(s) point at it"),
    "orphan-body": (["INSERT INTO bodies(refs, meta, data) VALUES(1, x'', x'00')",
                     "INSERT INTO bodies(refs, meta, data) VALUES(0, x'', x'01')"],
                    "no message points at it"),
    "size": ([f"UPDATE messages SET size=size+10 WHERE mailbox_id={INBOX} AND uid=1"],
             "but its body is"),
    "usage": (["UPDATE usage SET bytes=bytes+1000, messages=messages+5"], "quota usage says"),
    "keywords": ([f"DELETE FROM keywords WHERE mailbox_id={INBOX}"], "is set on messages but not listed"),
}


@pytest.mark.parametrize("name", sorted(REPAIRABLE))
def test_found_repaired_clean_and_served(name: str, data: Path) -> None:
    statements, text = REPAIRABLE[name]
    corrupt(data, *statements)
    found = examine(data, repair=False)
    assert not found.clean and name in found.remaining
    assert any(line.startswith(f"{name}: ") and text in line for line in found.problems), found.problems
    repaired = examine(data, repair=True)
    assert repaired.clean, repaired.remaining
    assert any(line.startswith(f"{name}: ") for line in repaired.repairs), repaired.repairs
    again = examine(data, repair=False)
    assert again.problems == [] and again.clean
    serves_correctly(data.parent)


def test_usage_recomputed_matches_the_messages(data: Path) -> None:
    corrupt(data, "DELETE FROM usage")
    examine(data, repair=True)
    with contextlib.closing(sqlite3.connect(data / "mail.sqlite3")) as conn:
        usage = conn.execute("SELECT bytes, messages FROM usage").fetchall()
        total = conn.execute("SELECT sum(size), count(*) FROM messages").fetchone()
    assert usage == [total]


@pytest.mark.parametrize("name, statement", [
    ("missing-body", f"DELETE FROM bodies WHERE id=(SELECT body_id FROM messages "
                     f"WHERE mailbox_id={INBOX} AND uid=5)"),
    ("lost-mailbox", "DELETE FROM mailboxes WHERE name='Archive'"),
])
def test_lost_mail_is_reported_not_repaired(name: str, statement: str, data: Path) -> None:
    corrupt(data, statement)
    with contextlib.closing(sqlite3.connect(data / "mail.sqlite3")) as conn:
        before = conn.execute("SELECT count(*) FROM messages").fetchone()
    repaired = examine(data, repair=True)
    assert name in repaired.remaining and not repaired.clean
    with contextlib.closing(sqlite3.connect(data / "mail.sqlite3")) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == before


def test_output_is_bounded(data: Path) -> None:
    corrupt(data, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) "
                  "INSERT INTO bodies(refs, meta, data) SELECT 1, x'', x'00' FROM n")
    report = examine(data, repair=False)
    lines = [line for line in report.problems if line.startswith("orphan-body: ")]
    assert len(lines) == doctor.MAX_LINES_PER_CHECK + 1
    assert lines[-1] == "orphan-body: ... and 480 more"


def test_cli_exit_status_and_lines(data: Path) -> None:
    clean = run_cli("doctor", "--data", str(data))
    assert clean.returncode == 0 and clean.stdout.strip().endswith("sound")
    corrupt(data, "UPDATE usage SET bytes=bytes+1")
    found = run_cli("doctor", "--data", str(data), check=False)
    assert found.returncode == 1
    assert "imapd doctor: usage: alice: quota usage says" in found.stdout
    assert "(--repair fixes what is safe)" in found.stdout
    repaired = run_cli("doctor", "--repair", "--data", str(data))
    assert repaired.returncode == 0 and "imapd doctor: repaired usage:" in repaired.stdout
    assert run_cli("doctor", "--data", str(data)).returncode == 0


def test_cli_refuses_what_it_cannot_check(tmp_path: Path) -> None:
    missing = run_cli("doctor", "--data", str(tmp_path / "nothing"), check=False)
    assert missing.returncode == 2 and "no store at" in missing.stderr
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    postgres = run_cli("doctor", "--store", f"postgresql://u@127.0.0.1:{port}/x", check=False)
    assert postgres.returncode == 2 and postgres.stderr.count("\n") == 1
    assert postgres.stderr.startswith(f"imapd: store postgresql://u@127.0.0.1:{port}/x: ")

"""The SQLite engine's online copy and its "is the store open?" test
(``imapd.storage.sqlite.backup``), against other real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imapd.storage.sqlite import backup

# Commits transactions of five rows that share a number, until stdin closes.
WRITER = """
import sqlite3, sys, threading
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE IF NOT EXISTS t(txn INTEGER, pad BLOB)")
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
txn = 0
while not done.is_set():
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t VALUES(?, randomblob(3000))", [(txn,)] * 5)
    conn.execute("COMMIT")
    txn += 1
    if txn == 400:
        print("ready", flush=True)
"""

# Opens the database (WAL) and holds it until killed.
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
print("open", flush=True)
time.sleep(600)
"""


def child(script: str, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process


def test_copy_is_one_commit_while_another_process_keeps_writing(tmp_path: Path) -> None:
    """Small steps (4 pages) under a writer that commits without pause: the
    copy finishes (SQLite would restart a backup at each foreign commit if
    the snapshot were not pinned) and holds whole transactions only."""
    source = tmp_path / "mail.sqlite3"
    writer = child(WRITER, str(source))
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        steps: list[tuple[int, int]] = []
        version = backup.copy_database(source, tmp_path / "copy.sqlite3", pages=4,
                                       progress=lambda _, left, total: steps.append((left, total)))
        # The writer was still committing when the copy ended.
        assert writer.poll() is None
    finally:
        assert writer.stdin is not None
        writer.stdin.close()
        writer.wait(30)
    assert version == 0
    # One pass: each step copied 4 more pages of one unchanging total.
    assert len({total for _, total in steps}) == 1
    assert [left for left, _ in steps] == sorted((left for left, _ in steps), reverse=True)
    with contextlib.closing(sqlite3.connect(tmp_path / "copy.sqlite3")) as copy:
        sizes = copy.execute("SELECT txn, count(*) FROM t GROUP BY txn").fetchall()
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert len(sizes) >= 400
    assert {n for _, n in sizes} == {5}  # no half transaction
    assert [txn for txn, _ in sizes] == list(range(len(sizes)))  # no gap: a prefix of the commits
    assert not (tmp_path / "copy.sqlite3-wal").exists()
    assert stat.S_IMODE(os.stat(tmp_path / "copy.sqlite3").st_mode) == 0o600


def test_copy_refuses_a_missing_store_and_an_existing_target(tmp_path: Path) -> None:
    with pytest.raises(backup.BackupError, match="no store at"):
        backup.copy_database(tmp_path / "missing.sqlite3", tmp_path / "copy.sqlite3")
    source = tmp_path / "mail.sqlite3"
    with contextlib.closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE t(a)")
    (tmp_path / "copy.sqlite3").write_bytes(b"someone's file")
    with pytest.raises(FileExistsError):
        backup.copy_database(source, tmp_path / "copy.sqlite3")
    assert (tmp_path / "copy.sqlite3").read_bytes() == b"someone's file"


def test_store_in_use_while_any_process_has_it_open(tmp_path: Path) -> None:
    assert not backup.store_in_use(tmp_path)  # no store at all
    holder = child(HOLDER, str(tmp_path / "mail.sqlite3"))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert backup.store_in_use(tmp_path)
        assert backup.store_in_use(tmp_path)  # our probe left no lock behind
    finally:
        holder.send_signal(signal.SIGKILL)  # a crashed server: the kernel drops its locks
        holder.wait(30)
    assert (tmp_path / "mail.sqlite3-shm").exists()  # stale files do not count
    assert not backup.store_in_use(tmp_path)


def test_check_database_reports_damage(tmp_path: Path) -> None:
    path = tmp_path / "mail.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t(a)")
        conn.execute("PRAGMA user_version=3")
    assert backup.check_database(path) == (3, None)
    path.write_bytes(b"not a database at all" * 300)
    version, problem = backup.check_database(path)
    assert problem is not None and "not a database" in problem

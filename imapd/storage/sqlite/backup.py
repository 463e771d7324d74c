"""Online copy of the SQLite store, and "is the store open?" (``imapd
backup`` / ``imapd restore``).

The copy uses SQLite's online backup API (``sqlite3_backup_step``, in steps
of ``pages`` pages) from a connection that holds one read transaction for
the whole copy: in WAL mode a reader never blocks the server's writer and
the writer never blocks it, and the open transaction pins one snapshot, so
the copy is exactly the store as of one commit even while the server keeps
committing (without it, SQLite restarts a backup whenever another process
writes to the source, which under steady load may never finish). The cost
of that pinned snapshot: the server cannot checkpoint its WAL past it, so
the WAL grows by what is written during the copy (``wal`` trims it after).

"Open" means any process has the store's database open: every SQLite
connection in WAL mode holds a shared POSIX lock on the "DMS" byte of the
``-shm`` file (offset 128 in the unix VFS; https://sqlite.org/walformat.html
§2.3.2) for as long as it is open, and the kernel drops it when the process
dies, so the test is neither fooled by a crashed server nor by stale files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Callable

from imapd.storage.sqlite.schema import BUSY_TIMEOUT_SECONDS, DB_FILENAME

DEFAULT_STEP_PAGES = 1024  # 4 MiB with 4 KiB pages per step
SHM_SUFFIX = "-shm"
WAL_SUFFIX = "-wal"
_DMS_LOCK_OFFSET = 128  # the unix VFS's dead-man-switch byte in the -shm file


class BackupError(Exception):
    """The store cannot be copied or checked; ``str()`` is one line."""


def database_path(data_dir: Path) -> Path:
    return data_dir / DB_FILENAME


def copy_database(
    source: Path, target: Path, pages: int = DEFAULT_STEP_PAGES,
    progress: Callable[[int, int, int], object] | None = None,
) -> int:
    """Copy the database ``source`` into the new file ``target`` as of one
    commit, while other processes keep writing; returns its schema version
    (``PRAGMA user_version``). The copy is a single self-contained file
    (rollback-journal mode, no ``-wal`` beside it), checked with
    ``PRAGMA quick_check`` and fsynced. ``progress(status, remaining,
    total)`` is called after each step (``sqlite3.Connection.backup``)."""
    if not source.is_file():
        raise BackupError(f"no store at {source}")
    # Mail is private: the copy is created owner-only before SQLite opens it.
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as dst:
            src.execute("BEGIN")
            # The first read starts the snapshot every backup step reads from.
            version = int(src.execute("PRAGMA user_version").fetchone()[0])
            src.backup(dst, pages=pages, progress=progress)
            src.execute("COMMIT")
            dst.execute("PRAGMA journal_mode=DELETE")
            problem = _quick_check(dst)
    except sqlite3.Error as error:
        raise BackupError(f"cannot copy {source}: {error}") from None
    finally:
        src.close()
    if problem:
        raise BackupError(f"the copy of {source} fails its check: {problem}")
    fsync_file(target)
    return version


def check_database(path: Path) -> tuple[int, str | None]:
    """(schema version, None) for a sound database file, else (version,
    the first problem ``PRAGMA quick_check`` reports). Opens read-only."""
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            return version, _quick_check(conn)
    except sqlite3.Error as error:
        return 0, str(error)


def _quick_check(conn: sqlite3.Connection) -> str | None:
    rows = conn.execute("PRAGMA quick_check").fetchall()
    first = str(rows[0][0]) if rows else "no answer"
    return None if first == "ok" else first


def store_in_use(data_dir: Path) -> bool:
    """Does any process have ``data_dir``'s store open (a server, a worker,
    ``imapd deliver``)? See the module docstring: an exclusive lock on the
    ``-shm`` file's DMS byte is refused while any connection is open."""
    shm = Path(str(database_path(data_dir)) + SHM_SUFFIX)
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False  # no connection in WAL mode without its -shm file
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS_LOCK_OFFSET, os.SEEK_SET)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # closing drops our own test lock
    return False


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make renames and new names in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

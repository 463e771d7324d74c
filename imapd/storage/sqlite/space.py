"""Disk space of the SQLite engine: the reserve files and the APPEND floor.

A full disk must not stop users from freeing space: flag changes, EXPUNGE
and the ``\\Recent`` claim of a SELECT (RFC 3501 §2.3.2) are small writes,
but SQLite needs a few WAL pages to commit them, and on a full disk it
answers ``SQLITE_FULL`` ("database or disk is full") for every write alike.
So the engine keeps headroom it can give back:

* two **reserve files** in the data directory, files of allocated blocks
  created when the store opens and whenever the disk has room for them and
  the floor again, and when the store closes if the space its WAL and
  ``-shm`` gave back is enough for one: ``RESERVE_NAME`` (4 MiB) for writes,
  and ``OPEN_RESERVE_NAME`` (1 MiB), released only when *opening* the store
  hits disk full (``release_for_open``), so that a restart on a disk full
  to the last block still opens the store and serves SELECT although the
  write reserve was used up before the restart. When a write hits disk
  full, the write reserve is deleted and the write retried once: small
  metadata writes commit in the space it held.
* an **APPEND floor**: a write that adds message bytes (APPEND) is refused
  up front with ``StorageFull`` while the free space, less the bytes earlier
  APPENDs of the same group commit will write, less its own size, is below
  ``floor_bytes``. The floor is above the reserves, so once one is
  released APPENDs stay refused and the released space goes to the small
  writes; when space returns (an operator frees some) the reserves are
  re-created and APPENDs are accepted again, without a restart.

Everything here runs on the writer thread (threaded mode) or the caller's
thread (inline mode): ``statvfs`` and ``fallocate`` are syscalls that can
wait on the disk, never run on the reactor thread.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from pathlib import Path

from imapd.mail.errors import StorageFull

log = logging.getLogger(__name__)

RESERVE_NAME = "reserve.space"
RESERVE_BYTES = 4 * 1024 * 1024
OPEN_RESERVE_NAME = "reserve-open.space"
OPEN_RESERVE_BYTES = 1024 * 1024
FLOOR_BYTES = 8 * 1024 * 1024
REST_MARGIN = 256 * 1024
SQLITE_FULL = 13  # sqlite3.SQLITE_FULL (primary result code)
# The shared-memory index (``-shm``) could not be grown: SQLite reports a
# full disk there as this I/O error (seen opening the store on a full tmpfs).
SQLITE_IOERR_SHMSIZE = 4874


def is_disk_full(error: BaseException) -> bool:
    """Does ``error`` say the disk (or the database's size limit) is full?
    SQLite's ``SQLITE_FULL`` or ``SQLITE_IOERR_SHMSIZE`` (Python 3.11 gives
    the code; older versions only the message) or an ``OSError`` with
    ENOSPC/EDQUOT."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & 0xFF == SQLITE_FULL or code == SQLITE_IOERR_SHMSIZE):
            return True
        return "database or disk is full" in str(error)
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return False


def full_error() -> StorageFull:
    return StorageFull("disk full: the mail store cannot take new messages")


class Reserve:
    """One reserve file: ``size`` allocated bytes at ``path``."""

    def __init__(self, path: Path, size: int, purpose: str) -> None:
        self.path = path
        self.size = size
        self.purpose = purpose

    def present(self) -> bool:
        try:
            return self.path.stat().st_blocks * 512 >= self.size
        except OSError:
            return False

    def create(self) -> bool:
        """Written under a unique temporary name and renamed: a crash or a
        second server never leaves a half-made reserve under the real name."""
        try:
            _allocate(self.path, self.size)
        except OSError as error:
            log.warning("cannot create the disk reserve %s: %s", self.path, error)
            return False
        return True

    def release(self) -> bool:
        """Delete the file; True if there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            log.warning("cannot release the disk reserve %s: %s", self.path, error)
            return False
        log.warning("disk full: released the %d KiB reserve for %s; new messages are "
                    "refused until space returns", self.size // 1024, self.purpose)
        return True


class SpaceGuard:
    """The reserve files and the APPEND floor of one data directory."""

    def __init__(
        self,
        data_dir: Path,
        reserve_bytes: int = RESERVE_BYTES,
        floor_bytes: int = FLOOR_BYTES,
        open_reserve_bytes: int = OPEN_RESERVE_BYTES,
    ) -> None:
        self.data_dir = data_dir
        self.writes = Reserve(data_dir / RESERVE_NAME, reserve_bytes,
                              "flag changes and expunges")
        self.opening = Reserve(data_dir / OPEN_RESERVE_NAME, open_reserve_bytes,
                               "opening the store")
        self.floor_bytes = max(floor_bytes, reserve_bytes + open_reserve_bytes)
        self._pending = 0  # bytes claimed by APPENDs of the current batch
        self.short = False  # a write hit disk full; cleared when the reserve is back
        self.refusing = False  # APPENDs are being refused (logged once per episode)

    def free(self) -> int:
        """Bytes an unprivileged writer may still allocate on the disk."""
        stats = os.statvfs(self.data_dir)
        return stats.f_bavail * stats.f_frsize

    def has_reserve(self) -> bool:
        return self.opening.present() and self.writes.present()

    def ensure_reserve(self, at_rest: bool = False) -> bool:
        """Create the missing reserves (the opening one first) while the
        disk has room for each and the floor (``at_rest``: for it alone,
        when the store is closed, so the space its WAL and ``-shm`` gave
        back is there for the next start); True when both are in place."""
        for reserve in (self.opening, self.writes):
            if reserve.size <= 0 or reserve.present():
                continue
            room = reserve.size + (REST_MARGIN if at_rest else self.floor_bytes)
            try:
                if self.free() < room or not reserve.create():
                    return False
            except OSError:
                return False
        if self.short:
            log.warning("disk space is back: reserve re-created, new messages accepted again")
            self.short = False
        return True

    def release(self) -> bool:
        """Give the write reserve's space to the writes (a write hit disk
        full); True if there was one to release. The opening reserve is
        kept for ``release_for_open``."""
        self.short = True
        return self.writes.release()

    def release_for_open(self) -> bool:
        """Opening the store hit disk full (SQLite's ``-shm`` file needs a
        few pages): release the opening reserve, else the write reserve."""
        self.short = True
        return self.opening.release() or self.writes.release()

    def start_batch(self) -> None:
        """A new transaction: no APPEND bytes claimed in it yet."""
        self._pending = 0

    def claim_append(self, size: int) -> None:
        """Before an APPEND writes ``size`` message bytes: StorageFull when
        the free space would fall below the floor. Re-creates the reserves
        first when space has returned (the floor counts with them in place)."""
        if not self.has_reserve():
            self.ensure_reserve()
        try:
            free = self.free()
        except OSError:
            return  # cannot tell: let SQLite decide
        if free - self._pending - size < self.floor_bytes:
            if not self.refusing:
                self.refusing = True
                log.warning("disk nearly full (%d KiB free): new messages are refused until "
                            "space returns", free // 1024)
            raise full_error()
        self.refusing = False
        self._pending += size


def _allocate(path: Path, size: int) -> None:
    """A file of ``size`` allocated bytes at ``path`` (temp name + rename)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _write_zeros(fd, size)  # a file system without fallocate
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temp, path)


def _write_zeros(fd: int, size: int) -> None:
    block = bytes(64 * 1024)
    left = size
    while left > 0:
        left -= os.write(fd, block[:min(left, len(block))])

"""Keeping the SQLite write-ahead log small (issue 13, item 6).

In WAL mode every commit appends pages to ``mail.sqlite3-wal``; SQLite's
automatic checkpoint (PASSIVE, every 1,000 pages) copies them back into the
database, and the next writer restarts the log from its beginning, but
only when no reader still uses an older snapshot, and it never makes the
file smaller: after a burst, or while a reader pins an old snapshot, the
file keeps its largest size for good (49 MB was measured behind a client
stalling in a large FETCH).

``Checkpointer`` runs on the writer thread, between transactions:

* after a commit, when ``every_commits`` commits went by or the log is
  above ``truncate_above`` bytes (at most once per ``min_interval``), and
  when the writer has been idle ``idle_seconds`` after a change, it runs
  ``PRAGMA wal_checkpoint(TRUNCATE)``: copy every frame back, then cut the
  file to zero bytes;
* with the busy timeout at 0 for that statement: when a reader (of any
  process) still uses the log or another process writes, SQLite does what a
  PASSIVE checkpoint can without waiting and reports ``busy``; the writer
  goes on with its queue and tries again on the next idle tick. A writer
  never waits on a reader.

The engine also sets ``journal_size_limit`` (``schema.connect``), so a log
restarted by an ordinary commit is cut back to that size as well. Readers
no longer pin a snapshot for as long as a client takes to read a message:
large bodies are copied out first (``reads.spool_body``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time

log = logging.getLogger(__name__)

TRUNCATE_ABOVE = 4 * 1024 * 1024
EVERY_COMMITS = 1000
IDLE_SECONDS = 1.0
MIN_INTERVAL = 0.5


class Checkpointer:
    """When and how the writer checkpoints (see the module docstring)."""

    def __init__(
        self,
        wal_path: str,
        busy_ms: int,
        truncate_above: int = TRUNCATE_ABOVE,
        every_commits: int = EVERY_COMMITS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.wal_path = wal_path
        self.busy_ms = busy_ms  # the connection's own busy timeout, restored after
        self.truncate_above = truncate_above
        self.every_commits = every_commits
        self.idle_seconds = idle_seconds
        self.dirty = False  # committed since the last complete checkpoint
        self._commits = 0
        self._last = 0.0
        # Observability for tests: (busy, log frames, checkpointed frames).
        self.results: list[tuple[int, int, int]] = []

    def wait(self) -> float | None:
        """How long the writer may sleep on an empty queue before ``idle``."""
        return self.idle_seconds if self.dirty else None

    def wal_size(self) -> int:
        try:
            return os.stat(self.wal_path).st_size
        except OSError:
            return 0

    def after_commit(self, conn: sqlite3.Connection) -> None:
        self.dirty = True
        self._commits += 1
        due = self._commits >= self.every_commits or self.wal_size() > self.truncate_above
        if due and time.monotonic() - self._last >= MIN_INTERVAL:
            self.checkpoint(conn)

    def idle(self, conn: sqlite3.Connection) -> None:
        if self.dirty:
            self.checkpoint(conn)

    def checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One TRUNCATE checkpoint that waits for nobody; True when complete."""
        self._last = time.monotonic()
        try:
            conn.execute("PRAGMA busy_timeout=0")
            try:
                row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout={self.busy_ms}")
        except sqlite3.Error as error:  # locked by another checkpointer, disk full
            log.debug("WAL checkpoint skipped: %s", error)
            return False
        busy, frames, done = (int(v) for v in row)
        self.results.append((busy, frames, done))
        if busy == 0:
            self.dirty = False
            self._commits = 0
            return True
        return False

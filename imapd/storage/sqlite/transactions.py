"""SQLite transactions the engine's modules share.

Their own module because the schema imports the full-text index and the
SORT/THREAD facts modules for their migrations, while those modules need a
write transaction for their batched upkeep (reindex, purge): in schema.py
they could not import it without a cycle. ``schema`` re-exports both.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT. Taking the write lock up front means a
    transaction never fails half-way on a lock upgrade; other writers wait
    up to the busy timeout. Any exception rolls back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot for several reads (WAL readers never block)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")

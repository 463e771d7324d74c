"""Measure how to keep a 20 MB message in PostgreSQL (docs/storage.md).

    .venv/bin/python -m tests.storage.postgres.measure_bodies

Three ways, on the test cluster (fsync on), best of 3, the same 20 MB of
base64 text (an attachment as mail carries it): (a) one bytea value bound
as one parameter, read back whole and in 512 KiB substrings; (b) a large
object written with lo_from_bytea/lo_put and read with lo_get, 512 KiB at a
time; (c) bytea chunks of 512 KiB in their own rows (what the engine does).
Prints seconds per write and per full read, and the client's Python-level
peak (tracemalloc) for each.
"""

from __future__ import annotations

import base64
import os
import time
import tracemalloc
from typing import Callable

import psycopg

from tests.support.postgres import shared_cluster

SIZE = 20 * 1024 * 1024
PIECE = 512 * 1024


def _timed(fn: Callable[[], object]) -> tuple[float, int]:
    best, peak = float("inf"), 0
    for _ in range(3):
        tracemalloc.start()
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return best, peak


def main() -> None:
    cluster = shared_cluster()
    dsn = cluster.fresh_database(initialised=False)
    data = base64.encodebytes(os.urandom(SIZE * 3 // 4))[:SIZE]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE one(id serial PRIMARY KEY, data bytea)")
        conn.execute("ALTER TABLE one ALTER COLUMN data SET STORAGE EXTERNAL")
        conn.execute("CREATE TABLE pieces(id int, seq int, data bytea, PRIMARY KEY(id, seq))")
        conn.execute("ALTER TABLE pieces ALTER COLUMN data SET STORAGE EXTERNAL")
        binary = conn.cursor(binary=True)
        ids = iter(range(1, 1000))

        def one_write() -> None:
            with conn.transaction():
                conn.execute("INSERT INTO one(data) VALUES(%b)", (data,))

        def one_read_whole() -> None:
            binary.execute("SELECT data FROM one LIMIT 1").fetchone()

        def one_read_pieces() -> None:
            for start in range(0, SIZE, PIECE):
                binary.execute("SELECT substring(data from %s for %s) FROM one LIMIT 1",
                               (start + 1, PIECE)).fetchone()

        oids: list[int] = []

        def lo_write() -> None:
            with conn.transaction():
                row = conn.execute("SELECT lo_from_bytea(0, %b)", (data[:PIECE],)).fetchone()
                assert row is not None
                oid = int(row[0])
                view = memoryview(data)
                for start in range(PIECE, SIZE, PIECE):
                    conn.execute("SELECT lo_put(%s, %s, %b)",
                                 (oid, start, bytes(view[start:start + PIECE])))
                oids.append(oid)

        def lo_read() -> None:
            with conn.transaction():
                for start in range(0, SIZE, PIECE):
                    binary.execute("SELECT lo_get(%s, %s, %s)", (oids[0], start, PIECE)).fetchone()

        def chunks_write() -> None:
            with conn.transaction():
                key = next(ids)
                view = memoryview(data)
                for seq, start in enumerate(range(0, SIZE, PIECE)):
                    conn.execute("INSERT INTO pieces VALUES(%s, %s, %b)",
                                 (key, seq, bytes(view[start:start + PIECE])))

        def chunks_read() -> None:
            with conn.transaction():
                for seq in range(SIZE // PIECE):
                    binary.execute("SELECT data FROM pieces WHERE id=1 AND seq=%s",
                                   (seq,)).fetchone()

        for name, fn in [("bytea, one value: write", one_write),
                         ("bytea, one value: read whole", one_read_whole),
                         ("bytea, one value: read 512 KiB substrings", one_read_pieces),
                         ("large object: write (lo_put 512 KiB)", lo_write),
                         ("large object: read (lo_get 512 KiB)", lo_read),
                         ("bytea chunks: write 512 KiB rows", chunks_write),
                         ("bytea chunks: read 512 KiB rows", chunks_read)]:
            seconds, peak = _timed(fn)
            print(f"{name:45s} {seconds * 1000:8.0f} ms   client peak {peak / 2**20:6.1f} MiB")
    cluster.drop_database(dsn)


if __name__ == "__main__":
    main()

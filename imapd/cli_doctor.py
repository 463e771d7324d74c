"""``imapd doctor [--repair]``: check the store's invariants, one line per
problem, and repair what is safe (``imapd.storage.sqlite.doctor`` says what
is checked and what a repair does). Exit status 0 when the store is (or was
made) sound, 1 when problems remain, 2 when the store cannot be opened.
PostgreSQL stores: the same checks in that schema's terms
(``imapd.storage.postgres.doctor``).

``--reindex`` first builds SEARCH's full-text index for the messages stored
before it existed (``imapd.storage.sqlite.fts``; a batch per transaction, so
a running server goes on delivering), with its progress on stderr, then the
SORT/THREAD facts of those stored before them (``storage.*.sortfacts``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from typing import Any

from imapd.cli_serve import StoreOptions, resolve_data_dir
from imapd.storage.sqlite import doctor
from imapd.storage.sqlite.schema import BUSY_TIMEOUT_SECONDS, DB_FILENAME, SCHEMA_VERSION


class DoctorOptions(StoreOptions):
    """``imapd doctor [--repair] [--data D]``."""

    synopsis = "[--repair] [--reindex] [--data D] [--store URL]"
    optFlags = [["repair", None, "fix what is safe to fix (takes the store's write lock)"],
                ["reindex", None, "index for SEARCH and SORT the messages stored before the index"]]


def run_doctor(options: DoctorOptions) -> int:
    from imapd.app import store_of
    from imapd.core.config import Config

    store = store_of(Config(store=options["store"]))
    if store.is_postgres:
        return _run_postgres(store, bool(options["repair"]), bool(options["reindex"]))
    path = resolve_data_dir(options["data"]) / DB_FILENAME
    if not path.is_file():
        print(f"imapd doctor: no store at {path}", file=sys.stderr)
        return 2
    try:
        with contextlib.closing(sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)) as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version != SCHEMA_VERSION:
                print(f"imapd doctor: {path} has schema version {version}, this imapd checks "
                      f"{SCHEMA_VERSION} (run 'imapd db migrate' first)", file=sys.stderr)
                return 2
            if options["reindex"]:
                _reindex(conn)
            report = doctor.examine(conn, bool(options["repair"]))
    except sqlite3.Error as error:
        print(f"imapd doctor: {path}: {error}", file=sys.stderr)
        return 2
    return _print(report, str(path), bool(options["repair"]))


def _reindex(conn: Any) -> None:
    """``--reindex``: the progress as "done/total" on stderr (rewritten in
    place on a terminal), then the count. ``conn``: SQLite or PostgreSQL."""
    tty = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        end = "\r" if tty else "\n"
        print(f"imapd doctor: reindexing {done}/{total}", end=end, file=sys.stderr, flush=True)

    def show_facts(done: int, total: int) -> None:
        end = "\r" if tty else "\n"
        print(f"imapd doctor: sort facts {done}/{total}", end=end, file=sys.stderr, flush=True)

    if isinstance(conn, sqlite3.Connection):
        from imapd.storage.sqlite import fts, sortfacts

        count = fts.reindex(conn, show)
        facts = sortfacts.reindex(conn, show_facts)
    else:
        from imapd.storage.postgres import fts as pg_fts, sortfacts as pg_sortfacts

        count = pg_fts.reindex(conn, _pg_body, show)
        facts = pg_sortfacts.reindex(conn, _pg_body, show_facts)
    if tty and (count or facts):
        print(file=sys.stderr)
    print(f"imapd doctor: reindexed {count} message bodies for SEARCH")
    print(f"imapd doctor: stored SORT/THREAD facts of {facts} message bodies")


def _pg_body(conn: Any, body_id: int) -> bytes:
    rows = conn.execute("SELECT data FROM body_chunks WHERE body_id=%s ORDER BY seq",
                        (body_id,)).fetchall()
    return b"".join(bytes(row[0]) for row in rows)


def _run_postgres(store: Any, repair: bool, reindex: bool) -> int:
    import psycopg

    from imapd.app import store_failure
    from imapd.storage.postgres import doctor as pg_doctor, schema

    try:
        with psycopg.connect(store.dsn, autocommit=True, connect_timeout=10) as conn:
            schema.check(conn)
            if reindex:
                _reindex(conn)
            report = pg_doctor.examine(conn, repair)
    except (psycopg.Error, schema.SchemaMismatch) as error:
        print(store_failure(store, error), file=sys.stderr)
        return 2
    return _print(report, store.redacted(), repair)


def _print(report: doctor.Report, where: str, repair: bool) -> int:
    """One line per problem and per repair, then the verdict; exit status."""
    for line in report.problems:
        print(f"imapd doctor: {line}")
    for line in report.repairs:
        print(f"imapd doctor: repaired {line}")
    if report.clean:
        print(f"imapd doctor: {where}: " + ("sound" if not report.problems else "repaired"))
        return 0
    print(f"imapd doctor: {where}: problems remain in: {', '.join(report.remaining)}"
          + ("" if repair else " (--repair fixes what is safe)"))
    return 1

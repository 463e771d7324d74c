"""Mail is private: the store's files are readable by their owner only,
whatever the process umask (issue 6: no one gets in where they don't belong)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from imapd.storage.sqlite.schema import DB_FILENAME, connect


def test_database_and_wal_files_are_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # a typical umask that would give 0644
    try:
        conn = connect(tmp_path / "data")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS probe(x)")
        conn.execute("COMMIT")
    finally:
        os.umask(old_umask)
    try:
        for name in (DB_FILENAME, DB_FILENAME + "-wal", DB_FILENAME + "-shm"):
            path = tmp_path / "data" / name
            assert path.exists(), name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    finally:
        conn.close()

"""Mail is private: the files ``open_backend`` creates are readable by their
owner only, whatever the process umask (issue 6), in both modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imapd.mail.records import AppendItem
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import call, inbox, inline, run, threaded


@pytest.mark.parametrize("mode", ["inline", "threaded"])
def test_database_and_wal_files_are_owner_only(tmp_path: Path, mode: str) -> None:
    data_dir = tmp_path / "data"
    old_umask = os.umask(0o022)  # a typical umask that would give 0644
    try:
        if mode == "inline":
            backend = inline(data_dir)
            run(backend.ensure_user("u"))
            entry = run(backend.lookup("u", "INBOX"))
            assert entry is not None
            run(backend.append(entry.ref, [AppendItem(b"x\r\n")]))
        else:
            backend = threaded(data_dir)
            ref = inbox(backend, "u")
            call(lambda: backend.append(ref, [AppendItem(b"x\r\n")]))
        for name in (DB_FILENAME, DB_FILENAME + "-wal", DB_FILENAME + "-shm"):
            path = data_dir / name
            assert path.exists(), name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    finally:
        os.umask(old_umask)
    if mode == "inline":
        run(backend.close())
    else:
        call(backend.close)

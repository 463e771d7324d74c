"""Fixtures for session tests over the in-process server: ``server`` (a real
SQLite store in tmp_path, users alice and bob, see tests/commands/harness.py)
and ``other_process``: a second store instance on the same data directory,
as a second server process would have (its changes reach ``server``'s
sessions only when ``server.poll()`` runs, like the server's poll timer)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.register_assert_rewrite("tests.commands.harness")

from imapd.mailstore.sqlite import SqliteMailStore, open_store  # noqa: E402
from tests.commands.harness import MailServer, run  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    s = MailServer(tmp_path)
    yield s
    s.close()


@pytest.fixture
def other_process(server: MailServer) -> Iterator[SqliteMailStore]:
    store = open_store(server.data_dir)
    yield store
    run(store.close())

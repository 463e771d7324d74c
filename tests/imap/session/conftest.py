"""Fixtures for session tests over the in-process server: ``server`` (a real
SQLite store in tmp_path, users alice and bob, see tests/imap/commands/harness.py;
the command tests' fixture, defined once in ``tests.imap.commands.conftest``)
and ``other_process``: a second store instance on the same data directory,
as a second server process would have (its changes reach ``server``'s
sessions only when ``server.poll()`` runs, like the server's poll timer)."""

from __future__ import annotations

from typing import Iterator

import pytest

# First: it registers the harness for pytest's assert rewriting before the harness is imported.
from tests.imap.commands.conftest import server

from imapd.storage.sqlite.store import SqliteMailStore, open_store
from tests.imap.commands.harness import MailServer, run

__all__ = ["other_process", "server"]


@pytest.fixture
def other_process(server: MailServer) -> Iterator[SqliteMailStore]:
    store = open_store(server.data_dir)
    yield store
    run(store.close())

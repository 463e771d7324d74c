"""Fixtures for the extension tests: ``server`` (an in-process server with a
real SQLite store, users alice and bob) and ``client`` (logged in as alice);
see ``tests.commands.harness``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.register_assert_rewrite("tests.commands.harness")

from tests.commands.harness import Client, MailServer  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    s = MailServer(tmp_path)
    yield s
    s.close()


@pytest.fixture
def client(server: MailServer) -> Client:
    return server.connect("alice")

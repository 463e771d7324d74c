"""Fixtures for command tests: ``server`` (an in-process server with a real
SQLite store in tmp_path, users alice/wonderland and bob/builder) and
``client`` (a connection logged in as alice). See ``harness``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

# The harness's asserts get pytest's detailed diffs (it is not a test module).
pytest.register_assert_rewrite("tests.imap.commands.harness")

from tests.imap.commands.harness import Client, MailServer  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    s = MailServer(tmp_path)
    yield s
    s.close()


@pytest.fixture
def client(server: MailServer) -> Client:
    return server.connect("alice")

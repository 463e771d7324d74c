"""Fixtures for session tests over the in-process server: ``server`` (a real
SQLite store in tmp_path, users alice and bob, see tests/imap/commands/harness.py;
the command tests' fixture, defined once in ``tests.imap.commands.conftest``)
and ``other_process``: a second ``MailService`` over its own backend on the
same data directory, as a second server process would have (its commits
ring ``server``'s watches; sessions catch up at their next command)."""

from __future__ import annotations

from typing import Iterator

import pytest

# First: it registers the harness for pytest's assert rewriting before the harness is imported.
from tests.imap.commands.conftest import server

from imapd.mail.service import MailService
from tests.imap.commands.harness import MailServer, run

__all__ = ["other_process", "server"]


@pytest.fixture
def other_process(server: MailServer) -> Iterator[MailService]:
    service = server.other_process()
    yield service
    run(service.close())

"""Fixtures for the extension tests: ``server`` (an in-process server with a
real SQLite store, users alice and bob) and ``client`` (logged in as alice);
the same fixtures as the command tests, defined once in
``tests.imap.commands.conftest`` (see ``tests.imap.commands.harness``)."""

from __future__ import annotations

from tests.imap.commands.conftest import client, server

__all__ = ["client", "server"]

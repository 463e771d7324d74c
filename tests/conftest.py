"""Shared fixtures for the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.users import UserDatabase
from tests.support.context import make_users


@pytest.fixture
def users(tmp_path: Path) -> UserDatabase:
    """A user database with alice/wonderland and bob/builder (cheap hashes)."""
    return make_users(tmp_path / "data", alice="wonderland", bob="builder")

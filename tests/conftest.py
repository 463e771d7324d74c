"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from imapd.accounts.users import UserDatabase
from tests.support.context import make_users

# Hypothesis profiles, loaded here (before any test module is imported, so a
# test's own ``@settings`` inherits from the loaded profile what it does not
# set itself). Both: no deadline (one example's wall time on a loaded 2-core
# machine says nothing about the code) and no too_slow health check (it also
# measures the machine's load; the other health checks stay on). "ci", when
# CI=true: derandomized (the same examples on every run, so a red CI run is
# reproducible and not luck), no example database, 100 examples unless a
# test asks for its own fixed number, failing examples printed as a blob.
# "dev": random examples and the local database, so runs keep exploring and
# replay what failed before. HYPOTHESIS_PROFILE=ci|dev picks one by hand.
settings.register_profile(
    "ci", max_examples=100, derandomize=True, database=None, print_blob=True,
    deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))

pytest_plugins = ["tests.support.pinned_skips"]  # an unpinned skip fails (tests/support/pinned_skips.py)


@pytest.fixture
def users(tmp_path: Path) -> UserDatabase:
    """A user database with alice/wonderland and bob/builder (cheap hashes)."""
    return make_users(tmp_path / "data", alice="wonderland", bob="builder")

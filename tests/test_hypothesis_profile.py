"""The Hypothesis profile tests/conftest.py loads is the one in force."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def test_profile_matches_the_environment() -> None:
    """CI=true runs the same examples every time with no database; every
    run has no deadline and no too_slow check (both measure the machine's
    load, not the code, on a shared 2-core runner)."""
    current = settings.default
    assert current is not None
    assert current.deadline is None
    assert HealthCheck.too_slow in current.suppress_health_check
    wanted = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
    assert current == settings.get_profile(wanted)
    if wanted == "ci":
        assert current.derandomize and current.database is None


def test_a_test_settings_decorator_inherits_the_profile() -> None:
    """What a test's own ``@settings`` leaves out comes from the profile
    (so ``max_examples=400`` alone does not bring a deadline back)."""
    own = settings(max_examples=400)
    assert settings.default is not None
    assert own.deadline is None and own.derandomize == settings.default.derandomize

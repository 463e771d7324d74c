from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "messages"
CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "imaptest"


def load_fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(params=sorted(p.name for p in FIXTURES.glob("*.eml")))
def fixture_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)

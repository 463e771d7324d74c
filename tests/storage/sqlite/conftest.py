"""Fixtures: the contract suite runs once per backend in ``BACKENDS``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from imapd.mail.interface import MailStore
from tests.storage.sqlite.helpers import BACKENDS, run

Opener = Callable[[Path], MailStore]


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest) -> Opener:
    return BACKENDS[str(request.param)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(opener: Opener, data_dir: Path) -> Iterator[MailStore]:
    s = opener(data_dir)
    yield s
    run(s.close())

"""The real imapd that conformance scripts run against (one per test session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imapd.conformance import RunnerConfig
from tests.support.server import running_server

MAIN_USER, SECOND_USER, PASSWORD = "testuser", "user2", "pass"

# rfc3501-nonauth checks that a wrong password is refused. With imapd's brute-force
# penalty on (issue 6: every later login from the address waits 2 s, doubling per
# failure, up to 15 s), every script after it would log in slowly or time out.
# The penalty is tested in tests/security; here it is off.
SERVER_ARGS = ("--auth-penalty", "0")


@pytest.fixture(scope="session")
def conformance_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerConfig]:
    """One real imapd for the whole session, with the main user and user2 (password ``pass``)."""
    users = {MAIN_USER: PASSWORD, SECOND_USER: PASSWORD}
    with running_server(tmp_path_factory.mktemp("conformance"), users=users, extra_args=SERVER_ARGS) as server:
        yield RunnerConfig(
            host=server.host, port=server.port, user=MAIN_USER, user2=SECOND_USER, password=PASSWORD, timeout=15.0
        )

"""Connection counts of the factory (``ImapServerFactory``): per address
on open and close, per user on login and close (issue 13). A burst of N
connects or logins used to scan every open connection each time, O(N²):
3,000 connections cost seconds of reactor CPU. These tests count how many
*other* connections' sessions a connect or a login looks at."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.task import Clock

from imapd.core.config import Config, Limits
from imapd.imap.commands import catalogue
from imapd.imap.session.state import Session, State
from imapd.net.imap_factory import ImapServerFactory
from tests.support.context import make_users


class FakeConnection:
    """Stands in for an ``ImapServerProtocol``: the factory only reads its
    session. Every read is counted (``reads``) to see what a count scans."""

    reads = 0

    def __init__(self, host: str) -> None:
        self._session = Session(peer=f"{host}:4711", peer_host=host)

    @property
    def session(self) -> Session:
        FakeConnection.reads += 1
        return self._session


@pytest.fixture
def factory(tmp_path: Path) -> ImapServerFactory:
    limits = Limits(max_connections=100_000, max_connections_per_ip=3, max_connections_per_user=2)
    return ImapServerFactory(Config(data_dir=tmp_path, limits=limits), make_users(tmp_path),
                             clock=Clock())


def open_one(factory: ImapServerFactory, host: str) -> Any:
    connection = FakeConnection(host)
    assert factory.connection_opened(cast(Any, connection)) is None
    return connection


def log_in(factory: ImapServerFactory, connection: Any, user: str) -> int:
    """What ``auth.complete_login`` does: count, then log in in the same step."""
    count = factory.user_session_count(user, excluding=connection)
    if count < factory.config.limits.max_connections_per_user:
        connection.session.log_in(user)
    else:
        connection.session.state = State.LOGOUT  # refused: BYE, then closed
    return count


def test_a_connect_does_not_look_at_the_other_connections(factory: ImapServerFactory) -> None:
    for index in range(2_000):
        open_one(factory, f"10.0.{index // 250}.{index % 250}")
    FakeConnection.reads = 0
    open_one(factory, "10.9.9.9")
    assert FakeConnection.reads <= 2  # its own session only (was 2,000)


def test_a_login_looks_only_at_that_users_sessions(factory: ImapServerFactory) -> None:
    for index in range(1_000):
        log_in(factory, open_one(factory, f"10.1.{index // 250}.{index % 250}"), f"user{index}")
    FakeConnection.reads = 0
    assert log_in(factory, open_one(factory, "10.9.9.9"), "user7") == 1
    assert FakeConnection.reads <= 8  # user7's one session and the new one (was 1,000)


def test_per_address_limit_counts_opens_and_closes(factory: ImapServerFactory) -> None:
    first, second, third = (open_one(factory, "192.0.2.1") for _ in range(3))
    refused = FakeConnection("192.0.2.1")
    assert factory.connection_opened(cast(Any, refused)) == catalogue.BYE_TOO_MANY_FROM_ADDRESS
    factory.connection_closed(cast(Any, refused))  # a refused one was never counted
    assert factory.connection_opened(cast(Any, FakeConnection("192.0.2.1"))) is not None
    open_one(factory, "192.0.2.2")  # another address is unaffected
    factory.connection_closed(first)
    factory.connection_closed(first)  # twice: still one release
    open_one(factory, "192.0.2.1")
    assert factory.connection_opened(cast(Any, FakeConnection("192.0.2.1"))) is not None


def test_per_user_count_follows_logins_logouts_and_closes(factory: ImapServerFactory) -> None:
    sessions = [open_one(factory, f"192.0.2.{n}") for n in range(1, 7)]
    assert log_in(factory, sessions[0], "alice") == 0
    assert log_in(factory, sessions[1], "alice") == 1
    assert log_in(factory, sessions[2], "alice") == 2  # refused: over the limit of 2
    assert log_in(factory, sessions[3], "alice") == 2  # the refused one is not counted
    assert factory.user_session_count("bob") == 0
    sessions[0].session.state = State.LOGOUT  # LOGOUT: no longer counted, even before the close
    assert log_in(factory, sessions[4], "alice") == 1
    factory.connection_closed(sessions[1])
    factory.connection_closed(sessions[2])
    factory.connection_closed(sessions[3])
    assert factory.user_session_count("alice") == 1  # sessions[4]
    factory.connection_closed(sessions[4])
    factory.connection_closed(sessions[0])
    assert factory.user_session_count("alice") == 0
    assert factory._per_user == {} and factory._user_of == {}  # nothing left behind

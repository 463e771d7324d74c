"""``imapd user quota NAME [--storage SIZE] [--messages N]`` (RFC 9208
limits set by the operator), in a real process on a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.cli_quota import UNLIMITED, parse_limit
from imapd.mail.errors import OverQuota
from imapd.mail.records import AppendItem
from imapd.storage.sqlite import open_backend
from tests.support.server import add_user, run_cli


def _run(coro: object) -> object:
    """Drive a coroutine of the inline SQLite backend (it never waits)."""
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the inline backend awaited")


def test_show_set_and_remove_limits(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    add_user(tmp_path / "d", "alice", "pw")
    shown = run_cli("user", "quota", "alice", "--data", data)
    assert shown.stdout == "imapd: alice: storage 0 of unlimited bytes, messages 0 of unlimited\n"
    both = run_cli("user", "quota", "alice", "--storage", "2G", "--messages", "100000", "--data", data)
    assert both.stdout == ("imapd: alice: storage 0 of 2147483648 bytes, "
                           "messages 0 of 100000\n")
    kept = run_cli("user", "quota", "alice", "--storage", "none", "--data", data)
    assert kept.stdout == "imapd: alice: storage 0 of unlimited bytes, messages 0 of 100000\n"


def test_the_limit_is_enforced_by_the_store(tmp_path: Path) -> None:
    data = tmp_path / "d"
    add_user(data, "alice", "pw")
    run_cli("user", "quota", "alice", "--storage", "10", "--data", str(data))
    backend = open_backend(data)
    try:
        _run(backend.ensure_user("alice"))
        inbox = _run(backend.lookup("alice", "INBOX"))
        with pytest.raises(OverQuota):
            _run(backend.append(inbox.ref, [AppendItem(b"x" * 11)]))  # type: ignore[attr-defined]
        _run(backend.append(inbox.ref, [AppendItem(b"x" * 10)]))  # type: ignore[attr-defined]
    finally:
        _run(backend.close())
    shown = run_cli("user", "quota", "alice", "--data", str(data))
    assert shown.stdout == "imapd: alice: storage 10 of 10 bytes, messages 1 of unlimited\n"


def test_errors(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    add_user(tmp_path / "d", "alice", "pw")
    gone = run_cli("user", "quota", "carol", "--data", data, check=False)
    assert (gone.returncode, gone.stderr) == (1, "imapd: no such user: 'carol'\n")
    bad = run_cli("user", "quota", "alice", "--storage", "2X", "--data", data, check=False)
    assert bad.returncode == 2 and "invalid limit '2X'" in bad.stderr


@pytest.mark.parametrize(("text", "sizes", "value"), [
    ("0", True, 0), ("1500", True, 1500), ("2k", True, 2048), ("2G", True, 2 * 1024**3),
    ("1T", True, 1024**4), ("none", True, UNLIMITED), ("NONE", False, UNLIMITED), ("7", False, 7),
])
def test_parse_limit(text: str, sizes: bool, value: int) -> None:
    assert parse_limit(text, sizes) == value


@pytest.mark.parametrize(("text", "sizes"), [("2G", False), ("-1", True), ("", True), ("1.5G", True)])
def test_parse_limit_refuses(text: str, sizes: bool) -> None:
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError):
        parse_limit(text, sizes)


def test_on_postgres() -> None:
    """The same command on a PostgreSQL store (the test cluster; pinned
    skip where it cannot start, see tests/support/postgres.py)."""
    from tests.e2e.frontends import store_url
    from tests.support.postgres import shared_cluster
    from tests.support.stress import CHEAP_ARGON2

    cluster = shared_cluster()
    dsn = cluster.fresh_database()
    try:
        url = store_url(dsn)
        run_cli("user", "add", "alice", "--password-stdin", "--argon2", CHEAP_ARGON2,
                "--store", url, stdin="pw\n")
        set_ = run_cli("user", "quota", "alice", "--messages", "5", "--store", url)
        assert set_.stdout == "imapd: alice: storage 0 of unlimited bytes, messages 0 of 5\n"
        shown = run_cli("user", "quota", "alice", "--storage", "1k", "--store", url)
        assert shown.stdout == "imapd: alice: storage 0 of 1024 bytes, messages 0 of 5\n"
    finally:
        cluster.release_database(dsn)

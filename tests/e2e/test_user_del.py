"""``imapd user del`` / ``user rename`` with the real CLI against a running
server (issue 17): the deleted user's open session is closed, the mail is
gone, and an account created again with that name starts empty (the bug
the issue names: the old mail used to be waiting for it); ``--keep-mail``
gives the mail to a new name; ``rename`` moves entry and mail together.
Run on the SQLite store and on PostgreSQL (the test cluster); the mail-core
side is tests/mail/contract/test_accounts.py (every engine)."""

from __future__ import annotations

import imaplib
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.server import run_cli, running_server

FAST = ["--failed-login-delay", "0", "--auth-penalty", "0"]
MESSAGE = b"Subject: old mail\r\n\r\nfor the old alice\r\n"


def session(host: str, port: int, name: str, password: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(host, port, timeout=30)
    client.login(name, password)
    return client


def mailboxes(client: imaplib.IMAP4) -> set[str]:
    typ, lines = client.list()
    assert typ == "OK"
    return {line.decode().rsplit(" ", 1)[-1].strip('"')
            for line in lines if isinstance(line, bytes)}


def inbox_count(client: imaplib.IMAP4) -> int:
    typ, data = client.select("INBOX")
    assert typ == "OK"
    return int(data[0] or 0)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """``--store`` arguments for the server and every CLI call."""
    if request.param == "sqlite":
        yield []
        return
    from tests.e2e.frontends import store_url
    from tests.support.postgres import shared_cluster

    cluster = shared_cluster()
    dsn = cluster.fresh_database()
    yield ["--store", store_url(dsn)]
    cluster.drop_database(dsn)


def add_user(where: list[str], name: str, password: str) -> None:
    run_cli("user", "add", name, "--password-stdin", "--argon2", "t=1,m=8,p=1",
            *where, stdin=password + "\n")


def prepare(host: str, port: int) -> imaplib.IMAP4:
    """alice with a folder and a message, INBOX selected (left open)."""
    alice = session(host, port, "alice", "wonderland")
    assert alice.create("Projects")[0] == "OK"
    assert alice.append("INBOX", "", imaplib.Time2Internaldate(0), MESSAGE)[0] == "OK"
    assert inbox_count(alice) == 1
    return alice


def closed_by_server(client: imaplib.IMAP4) -> bool:
    try:
        client.noop()
    except (imaplib.IMAP4.abort, OSError):
        return True
    return False


def test_del_closes_the_session_and_a_new_alice_starts_empty(
        tmp_path: Path, store: list[str]) -> None:
    where = ["--data", str(tmp_path / "imapd-data"), *store]
    add_user(where, "alice", "wonderland")
    with running_server(tmp_path, {}, [*FAST, *store]) as server:
        host, port = server.host, server.port
        alice = prepare(host, port)
        out = run_cli("user", "del", "alice", *where).stdout
        assert "deleted user alice and their mail (closed 1 session)" in out
        assert closed_by_server(alice)
        add_user(where, "alice", "new-alice")
        again = session(host, port, "alice", "new-alice")
        assert inbox_count(again) == 0
        assert "Projects" not in mailboxes(again)
        again.logout()


def test_del_keep_mail_and_rename(
        tmp_path: Path, store: list[str]) -> None:
    where = ["--data", str(tmp_path / "imapd-data"), *store]
    add_user(where, "alice", "wonderland")
    with running_server(tmp_path, {}, [*FAST, *store]) as server:
        host, port = server.host, server.port
        prepare(host, port).logout()
        out = run_cli("user", "del", "alice", "--keep-mail", "archived", *where).stdout
        assert "mail kept as archived" in out
        with pytest.raises(imaplib.IMAP4.error):
            session(host, port, "alice", "wonderland")
        add_user(where, "archived", "pw-archived")
        archived = session(host, port, "archived", "pw-archived")
        assert inbox_count(archived) == 1 and "Projects" in mailboxes(archived)
        archived.logout()
        out = run_cli("user", "rename", "archived", "carol", *where).stdout
        assert "renamed user archived to carol" in out
        carol = session(host, port, "carol", "pw-archived")  # the password came along
        assert inbox_count(carol) == 1 and "Projects" in mailboxes(carol)
        carol.logout()
        with pytest.raises(imaplib.IMAP4.error):
            session(host, port, "archived", "pw-archived")
        refused = run_cli("user", "rename", "carol", "carol", *where, check=False)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert run_cli("user", "del", "nobody", *where, check=False).returncode == 1

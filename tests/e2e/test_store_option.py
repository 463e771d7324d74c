"""``--store``: ``imapd serve``, ``twistd imapd``, ``imapd user`` and
``imapd db`` against PostgreSQL, with real processes and sockets.

Two frontends on one database share their users (a user added, changed
or deleted through the CLI is seen by both at the next login); the data
directory still holds the TLS certificate; a bad URL, an unreachable
server or a missing schema is one line on stderr and exit status 2, and
the password of the URL appears in no output.
"""

from __future__ import annotations

import imaplib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.frontends import store_url
from tests.support.server import (
    LOOPBACK_ENDPOINT, imapd_command, run_cli, running_server, subprocess_env, twistd_command,
)
from tests.support.stress import CHEAP_ARGON2

SECRET = "hunter2-s3cret"  # the cluster trusts every password: it must only never show


@pytest.fixture
def empty_url() -> Iterator[str]:
    """A PostgreSQL database without the imapd schema, as a URL with a password."""
    from tests.support.postgres import shared_cluster

    cluster = shared_cluster()
    dsn = cluster.fresh_database(initialised=False)
    yield with_password(store_url(dsn))
    cluster.drop_database(dsn)


def with_password(url: str) -> str:
    return url.replace("://imapd@", f"://imapd:{SECRET}@")


def user(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("user", *args, stdin=stdin, check=False)


def can_log_in(port: int, name: str, password: str) -> bool:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        client.login(name, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()
    return True


def scram_login(port: int, name: str, password: str) -> bool:
    """AUTHENTICATE SCRAM-SHA-256 (RFC 7677) with scramp as the client."""
    import scramp  # type: ignore[import-untyped]

    scram = scramp.ScramClient(["SCRAM-SHA-256"], name, password)
    answers = iter([
        lambda _: scram.get_client_first(),
        lambda data: (scram.set_server_first(data.decode()), scram.get_client_final())[1],
        lambda data: (scram.set_server_final(data.decode()), "")[1],
    ])
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        status, _ = client.authenticate("SCRAM-SHA-256", lambda data: next(answers)(data))
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()
    return bool(status == "OK")


def test_db_commands_and_users_on_postgres(empty_url: str) -> None:
    version = run_cli("db", "version", "--store", empty_url, check=False)
    assert (version.returncode, version.stderr.count("no imapd schema")) == (1, 1)
    refused = user("list", "--store", empty_url)
    assert refused.returncode == 2 and "imapd db init" in refused.stderr
    assert run_cli("db", "init", "--store", empty_url).stdout.endswith("schema version 3\n")
    assert run_cli("db", "migrate", "--store", empty_url).stdout.endswith("schema version 3\n")
    assert run_cli("db", "version", "--store", empty_url).stdout.endswith("schema version 3\n")
    added = user("add", "alice", "--password-stdin", "--argon2", CHEAP_ARGON2,
                 "--store", empty_url, stdin="wonderland\n")
    assert added.returncode == 0, added.stderr
    again = user("add", "alice", "--password-stdin", "--store", empty_url, stdin="x\n")
    assert (again.returncode, again.stderr) == (1, "imapd: user 'alice' already exists\n")
    assert user("list", "--store", empty_url).stdout == "alice\n"  # no SCRAM rows listed
    outputs = [refused, added, again, version]
    assert not any(SECRET in p.stdout + p.stderr for p in outputs)


def test_two_frontends_share_the_users_of_one_database(tmp_path: Path, empty_url: str) -> None:
    run_cli("db", "init", "--store", empty_url)
    store = ["--store", empty_url, "--log-level", "debug"]
    user("add", "alice", "--password-stdin", "--argon2", CHEAP_ARGON2, *store[:2],
         stdin="wonderland\n")
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    with running_server(tmp_path / "a", users={}, extra_args=store) as a, \
            running_server(tmp_path / "b", users={}, extra_args=store) as b:
        assert can_log_in(a.port, "alice", "wonderland")
        assert can_log_in(b.port, "alice", "wonderland")
        # Mail is shared too: what A delivers, B reads.
        client = imaplib.IMAP4("127.0.0.1", a.port, timeout=30)
        client.login("alice", "wonderland")
        client.append("INBOX", None, None, b"Subject: shared\r\n\r\nhello\r\n")
        client.logout()
        other = imaplib.IMAP4("127.0.0.1", b.port, timeout=30)
        other.login("alice", "wonderland")
        assert other.select("INBOX") == ("OK", [b"1"])
        other.logout()
        # A change through the CLI takes effect on both at the next login.
        user("add", "bob", "--password-stdin", "--argon2", CHEAP_ARGON2, *store[:2],
             stdin="builder\n")
        user("passwd", "alice", "--password-stdin", "--argon2", CHEAP_ARGON2, *store[:2],
             stdin="rabbit\n")
        assert can_log_in(b.port, "bob", "builder") and can_log_in(a.port, "bob", "builder")
        assert can_log_in(a.port, "alice", "rabbit")
        assert scram_login(b.port, "alice", "rabbit")  # keys from the database, too
        assert not scram_login(a.port, "alice", "wonderland")
        assert not can_log_in(b.port, "alice", "wonderland")
        assert user("del", "bob", *store[:2]).returncode == 0
        assert not can_log_in(a.port, "bob", "builder")
        # The data directory still holds the certificate.
        assert (a.data_dir / "tls" / "selfsigned-cert.pem").exists()
        assert not (a.data_dir / "users.passwd").exists()
        logs = a.log() + b.log()
    assert "mail store postgresql://imapd:***@" in logs
    assert SECRET not in logs


@pytest.mark.parametrize("twistd", [False, True])
def test_an_unusable_store_is_one_line_and_status_2(
    tmp_path: Path, empty_url: str, twistd: bool
) -> None:
    unreachable = f"postgresql://imapd:{SECRET}@127.0.0.1:1/mail"
    cases = {
        "/var/mail": "use 'sqlite' or a postgresql://",
        unreachable: "127.0.0.1",
        empty_url: "run 'imapd db init' first",
        empty_url + "?port=notaport": "notaport",
    }
    for url, expected in cases.items():
        args = ["--data", str(tmp_path / "d"), "--imap", LOOPBACK_ENDPOINT, "--store", url]
        argv = twistd_command(*args) if twistd else imapd_command("serve", *args)
        done = subprocess.run(argv, capture_output=True, text=True, env=subprocess_env(),
                              timeout=60, cwd=tmp_path)
        if twistd and url == "/var/mail":
            # An option error: twistd prints its usage and exits 1 for every one.
            assert done.returncode == 1 and expected in done.stdout
            continue
        lines = [line for line in done.stderr.splitlines() if line.startswith("imapd:")]
        assert done.returncode == 2, (url, done.stderr)
        assert len(lines) == 1 and expected in lines[0], (url, done.stderr)
        assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout


def test_sqlite_remains_the_default(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        assert can_log_in(server.port, "alice", "wonderland")
        assert (server.data_dir / "mail.sqlite3").exists()
        assert "mail store postgresql" not in server.log()

"""The ``imapd`` command line: user management through real subprocesses,
option parsing, and the one-line bind failure message."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from twisted.internet.error import CannotListenError
from twisted.python import usage
from twisted.python.failure import Failure

from imapd.cli import ServeOptions, resolve_data_dir
from imapd.core.model import Secret
from imapd.accounts.users import UserDatabase
from tests.support.context import cheap_hasher
from tests.support.server import run_cli


def test_user_add_list_passwd_del(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    added = run_cli("user", "add", "alice", "--password-stdin", "--data", data, stdin="wonderland\n")
    assert added.stdout == "imapd: added user alice\n"
    run_cli("user", "add", "--data", data, "--password-stdin", "bob", stdin="builder\n")
    assert run_cli("user", "list", "--data", data).stdout == "alice\nbob\n"

    db = UserDatabase(tmp_path / "d" / "users.passwd", hasher=cheap_hasher())
    assert db.verify("alice", Secret(b"wonderland"))  # newline stripped, not stored

    run_cli("user", "passwd", "alice", "--password-stdin", "--data", data, stdin="rabbit\r\n")
    assert db.verify("alice", Secret(b"rabbit")) and not db.verify("alice", Secret(b"wonderland"))

    assert run_cli("user", "del", "bob", "--data", data).returncode == 0
    assert run_cli("user", "list", "--data", data).stdout == "alice\n"
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o700


def test_user_errors_are_one_line_and_nonzero(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    run_cli("user", "add", "alice", "--password-stdin", "--data", data, stdin="x\n")
    dup = run_cli("user", "add", "alice", "--password-stdin", "--data", data, stdin="y\n", check=False)
    assert (dup.returncode, dup.stderr) == (1, "imapd: user 'alice' already exists\n")
    gone = run_cli("user", "del", "carol", "--data", data, check=False)
    assert (gone.returncode, gone.stderr) == (1, "imapd: no such user: 'carol'\n")
    empty = run_cli("user", "add", "dave", "--password-stdin", "--data", data, stdin="\n", check=False)
    assert empty.returncode == 1 and "password must not be empty" in empty.stderr
    usage_error = run_cli("user", "add", "--data", data, check=False)
    assert usage_error.returncode == 2 and "NAME" in usage_error.stderr


def test_imapd_data_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAPD_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir("explicit") == Path("explicit")
    monkeypatch.delenv("IMAPD_DATA")
    assert resolve_data_dir(None) == Path("imapd-data")


def test_serve_options_defaults_repeatable_endpoints_and_limits() -> None:
    options = ServeOptions()
    options.parseOptions([])
    assert options["imap"] == ["tcp:143"]
    options = ServeOptions()
    options.parseOptions(["--imap", "tcp:1143", "--imap=tcp:1144", "--data", "/x",
                          "--max-line", "1000", "--failed-login-delay", "0.25",
                          "--max-bad-commands", "5"])
    config = options.config()
    assert options["imap"] == ["tcp:1143", "tcp:1144"]
    assert (config.data_dir, config.limits.max_line) == (Path("/x"), 1000)
    assert (config.limits.failed_login_delay, config.limits.max_bad_commands) == (0.25, 5)
    assert config.limits.preauth_timeout == 60.0


@pytest.mark.parametrize("argv", [
    ["--auth-timeout", "60"],          # RFC 3501 §5.4: at least 30 minutes
    ["--log-level", "chatty"],
    ["--max-line", "many"],
])
def test_serve_options_refuse_bad_values(argv: list[str]) -> None:
    with pytest.raises((usage.UsageError, ValueError)):
        ServeOptions().parseOptions(argv)


def test_bind_failure_messages() -> None:
    from imapd.net.service import describe_listen_failure

    denied = CannotListenError("", 143, OSError(errno.EACCES, "Permission denied"))  # type: ignore[no-untyped-call]
    message = describe_listen_failure("tcp:143", Failure(denied))  # type: ignore[no-untyped-call]
    assert message.startswith("imapd: cannot listen on tcp:143: permission denied")
    assert message.endswith("try --imap tcp:1143")
    assert "\n" not in message
    in_use = CannotListenError("", 1143, OSError(errno.EADDRINUSE, "Address in use"))  # type: ignore[no-untyped-call]
    assert describe_listen_failure("tcp:1143", Failure(in_use)) == (  # type: ignore[no-untyped-call]
        "imapd: cannot listen on tcp:1143: address already in use")


def test_serve_on_busy_port_says_so_and_exits_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--data", str(tmp_path / "d"),
                         "--imap", f"tcp:{port}:interface=127.0.0.1", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"imapd: cannot listen on tcp:{port}:interface=127.0.0.1: address already in use")


# --- --store, db, --workers (issue 14) ---------------------------------------------

def test_store_option_default_environment_and_bad_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAPD_STORE", raising=False)
    options = ServeOptions()
    options.parseOptions([])
    assert (options.config().store, options["workers"]) == ("sqlite", 1)
    monkeypatch.setenv("IMAPD_STORE", "postgres://mail.example/imapd")
    options = ServeOptions()
    options.parseOptions(["--workers", "3"])
    assert (options.config().store, options["workers"]) == ("postgres://mail.example/imapd", 3)
    for argv in (["--store", "/var/mail"], ["--workers", "0"], ["--store", "mysql://x/y"]):
        with pytest.raises(usage.UsageError):
            ServeOptions().parseOptions(argv)
    bad = run_cli("user", "list", "--data", str(tmp_path), "--store", "mysql://u:pw@x/y",
                  check=False)
    assert bad.returncode == 2 and "use 'sqlite' or a postgresql://" in bad.stderr
    assert "pw@" not in bad.stderr and "u:***@x" in bad.stderr


def test_db_commands_on_sqlite(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    missing = run_cli("db", "version", "--data", data, check=False)
    assert missing.returncode == 1 and "no store at" in missing.stderr
    assert not (tmp_path / "d").exists()  # version creates nothing
    init = run_cli("db", "init", "--data", data)
    assert "schema version 5" in init.stdout and "creates and upgrades it" in init.stdout
    assert run_cli("db", "migrate", "--data", data).returncode == 0
    version = run_cli("db", "version", "--data", data)
    assert version.stdout.endswith("mail.sqlite3: schema version 5\n")
    assert run_cli("db", check=False).returncode == 2


def test_user_import_is_the_short_name_of_import_passwd(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    source = tmp_path / "passwd"
    source.write_text("dave:{PLAIN}secret:1000:1000::/home/dave::\n")
    done = run_cli("user", "import", str(source), "--data", data)
    assert done.stdout == f"imapd: imported 1 user(s) from {source}\n"
    assert run_cli("user", "list", "--data", data).stdout == "dave\n"


def test_twistd_refuses_workers(tmp_path: Path) -> None:
    import subprocess

    from tests.support.server import subprocess_env, twistd_command

    done = subprocess.run(
        twistd_command("--data", str(tmp_path / "d"), "--imap", "tcp:0:interface=127.0.0.1",
                       "--workers", "2"),
        capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 2
    assert "imapd: --workers needs 'imapd serve'" in done.stderr


def test_pop3_options_reach_the_config_and_listeners() -> None:
    options = ServeOptions()
    options.parseOptions(["--pop3", "tcp:1110", "--pop3s", "ssl:1995", "--pop3-uidl-format",
                          "dovecot", "--pop3-no-seen", "--pop3-expire", "NEVER",
                          "--pop3-login-delay", "60"])
    listeners = options.listeners()
    assert listeners.pop3 == ("tcp:1110",) and listeners.pop3s == ("ssl:1995",)
    pop3 = options.config().pop3
    assert (pop3.uidl_format, pop3.seen_on_retr, pop3.expire, pop3.login_delay) == (
        "dovecot", False, "NEVER", 60)
    default = ServeOptions()
    default.parseOptions([])
    assert default.listeners().pop3 == () and default.config().pop3.seen_on_retr


@pytest.mark.parametrize("argv", [
    ["--pop3-uidl-format", "courier"], ["--pop3-expire", "soon"],
    ["--pop3-login-delay", "-1"],
])
def test_bad_pop3_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        ServeOptions().parseOptions(argv)

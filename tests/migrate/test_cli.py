"""``imapd migrate`` options and where the source password comes from
(imapd.cli_migrate): never the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from imapd.cli_migrate import PASSWORD_ENV, MigrateOptions, read_password


def options(*args: str) -> MigrateOptions:
    parsed = MigrateOptions()
    parsed.parseOptions(["--from", "imaps://bob@mail.example.org", "--user", "alice", *args])
    return parsed


def test_password_from_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret with spaces\nignored\n")
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert read_password(options("--password-file", str(secret))) == "s3cret with spaces"
    assert read_password(options()) == "from-env"


def test_no_password_without_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(usage.UsageError, match="no password"):
        read_password(options())
    (tmp_path / "empty").write_text("")
    with pytest.raises(usage.UsageError, match="empty"):
        read_password(options("--password-file", str(tmp_path / "empty")))
    with pytest.raises(usage.UsageError, match="No such file"):
        read_password(options("--password-file", str(tmp_path / "missing")))


def test_prompt_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []

    def getpass(prompt: str) -> str:
        asked.append(prompt)
        return "typed"
    monkeypatch.setattr("getpass.getpass", getpass)
    assert read_password(options()) == "typed"
    assert asked == ["password for imaps://bob@mail.example.org:993: "]


def test_option_errors() -> None:
    with pytest.raises(usage.UsageError, match="no password in the URL"):
        MigrateOptions().parseOptions(["--from", "imaps://bob:pw@host", "--user", "a"])
    with pytest.raises(usage.UsageError, match="--starttls is for imap://"):
        options("--starttls")
    with pytest.raises(usage.UsageError, match="SOURCE=TARGET"):
        options("--folder-map", "x")
    with pytest.raises(usage.UsageError, match="give --from"):
        MigrateOptions().parseOptions(["--user", "a"])
    assert options("--folder-map", "A=B/", "--folder-map", "C=")["map"] == {"A": "B", "C": ""}


def test_data_and_store_from_the_config_file(tmp_path: Path) -> None:
    """Like every command on a data directory (imapd.cli_serve.StoreOptions)."""
    config = tmp_path / "imapd.toml"
    config.write_text(f'data = "{tmp_path / "from-file"}"\nstore = "sqlite"\n')
    assert options("--config", str(config)).config().data_dir == tmp_path / "from-file"
    assert options("--config", str(config), "--data", "/elsewhere").config().data_dir == Path("/elsewhere")

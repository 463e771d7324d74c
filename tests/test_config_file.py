"""The configuration file (``imapd.config_file``): keys derived from
``ServeOptions``, tables, the command line overriding the file, every
mistake one line, and no document crashing the loader."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.python import usage

from imapd import cli
from imapd.cli import DeliverOptions, UserListOptions
from imapd.cli_config import effective_settings
from imapd.cli_serve import ServeOptions
from imapd.config_file import (
    CONFIG_ENV, ConfigFileError, check, option_keys, parse_toml,
)


def write(tmp_path: Path, text: str, name: str = "imapd.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def serve(*argv: str) -> ServeOptions:
    options = ServeOptions()
    options.parseOptions(list(argv))
    return options


@pytest.fixture(autouse=True)
def no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)


def test_flat_keys_set_every_kind_of_option(tmp_path: Path) -> None:
    path = write(tmp_path, """
        data = "/srv/mail"
        max-line = 8192
        auth-timeout = 3600
        allow-plaintext = true
        scram-plus = false
        imap = ["tcp:143", "tcp:1143"]
        special-use = ["Sent=Sent Items"]
    """)
    options = serve("--config", path)
    assert options["data"] == "/srv/mail"
    assert options.limits().max_line == 8192
    assert options.limits().auth_timeout == 3600.0
    assert options["allow-plaintext"] and not options["scram-plus"]
    assert options["imap"] == ["tcp:143", "tcp:1143"]
    assert options["special-use"] == {"\\Sent": "Sent Items"}


def test_tables_map_to_the_options_mechanically(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [pop3]
        listen = ["tcp:1110"]
        uidl-format = "dovecot"
        [lmtp]
        domain = ["Example.org"]
        [limits]
        max-line = 4096
    """)
    options = serve("--config", path)
    assert options["pop3"] == ["tcp:1110"]
    assert options["pop3-uidl-format"] == "dovecot"
    assert options["lmtp-domain"] == ["example.org"]
    assert options.limits().max_line == 4096


def test_the_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'max-line = 8192\nworkers = 2\nimap = ["tcp:143", "tcp:144"]\n')
    options = serve("--config", path, "--max-line", "100", "--imap", "tcp:1")
    assert options.limits().max_line == 100  # the command line's value
    assert options["imap"] == ["tcp:1"]  # replaces the file's list, not added to it
    assert options["workers"] == 2  # what the command line does not say comes from the file
    assert options.argv == ["--config", path, "--max-line", "100", "--imap", "tcp:1"]


def test_the_environment_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, write(tmp_path, "max-line = 777\n"))
    assert serve().limits().max_line == 777
    other = write(tmp_path, "max-line = 888\n", "other.toml")
    assert serve("--config", other).limits().max_line == 888


def test_an_option_added_to_serve_options_is_a_key_without_other_changes(tmp_path: Path) -> None:
    class Extended(ServeOptions):
        optFlags = [["metrics-off", None, "a flag another change adds"]]
        optParameters = [["log-file", None, None, "a parameter"],
                         ["ratio", None, None, "a typed parameter", float]]

        def __init__(self) -> None:
            super().__init__()
            self["allow"] = []

        def opt_allow(self, value: str) -> None:
            """a repeatable"""
            self["allow"].append(value)

    keys = option_keys(Extended())
    assert {keys[n].kind for n in ("metrics-off", "log-file", "ratio", "allow")} == {
        "flag", "str", "float", "list"}
    path = write(tmp_path, 'metrics-off = true\nlog-file = "/var/log/x"\nratio = 2\n'
                           'allow = ["a", "b"]\n')
    options = Extended()
    options.parseOptions(["--config", path])
    assert (options["metrics-off"], options["log-file"], options["ratio"], options["allow"]) == (
        1, "/var/log/x", 2.0, ["a", "b"])


def test_every_mistake_is_one_line_byte_exact(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, """
        max_line = 5
        workers = 0
        allow-plaintext = "yes"
        max-literal = "big"
        imap = "tcp:143"
        special-use = ["Nope=X"]
        auth-timeout = 10
        tls-key = "/k.pem"
        [pop3]
        uidl-format = "bogus"
        uidl_format = "x"
        [limits]
        max-conections = 3
        [nonsense]
        x = 1
    """)
    assert cli.main(["serve", "--config", path]) == 2
    assert capsys.readouterr().err == "".join(f"{path}:{line}\n" for line in [
        "max_line: unknown key (did you mean max-line?)",
        "workers: must be at least 1",
        "allow-plaintext: expected true or false, got a string",
        "max-literal: expected an integer, got a string",
        "imap: expected an array of strings, got a string",
        "special-use: needs USE=NAME with USE one of Archive, Drafts, Junk, Sent, Trash: 'Nope=X'",
        "auth-timeout: must be at least 1800 (RFC 3501 §5.4)",
        "tls-key: needs tls-cert",
        "pop3.uidl-format: must be one of imapd, dovecot",
        "pop3.uidl_format: unknown key (did you mean pop3.uidl-format?)",
        "limits.max-conections: unknown key (did you mean limits.max-connections?)",
        "nonsense: unknown table",
    ])


def test_a_key_given_twice_and_non_finite_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, 'pop3-uidl-format = "imapd"\nauth-penalty = inf\n'
                           '[pop3]\nuidl-format = "dovecot"\n')
    with pytest.raises(ConfigFileError) as raised:
        serve("--config", path)
    assert raised.value.lines == [f"{path}:auth-penalty: expected a finite number",
                                  f"{path}:pop3.uidl-format: also given as pop3-uidl-format"]


@pytest.mark.parametrize(("text", "line"), [
    ("max-line = 1\n\nworkers = = 2\n", "3: Invalid value (column 11)"),
    ('imap = ["tcp:1",\n', "2: Invalid value"),
    ("a = 1\na = 2\n", "2: Cannot overwrite a value (column 6)"),
])
def test_toml_syntax_errors_name_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          text: str, line: str) -> None:
    path = write(tmp_path, text)
    assert cli.main(["serve", "--config", path]) == 2
    assert capsys.readouterr().err == f"{path}:{line}\n"


def test_unreadable_and_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.toml")
    assert cli.main(["serve", "--config", missing]) == 2
    assert capsys.readouterr().err == f"{missing}: cannot read: No such file or directory\n"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# ok\ndata = \"caf\xe9\"\n")
    assert cli.main(["serve", "--config", str(latin)]) == 2
    assert capsys.readouterr().err == f"{latin}:2: not UTF-8 (TOML files are UTF-8)\n"


def test_other_commands_take_data_and_store_from_the_servers_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'data = "/srv/mail"\nstore = "sqlite"\nquota-full-tempfail = true\n'
                           'imap = ["tcp:143"]\n[pop3]\nuidl-format = "dovecot"\n')
    listing = UserListOptions()
    listing.parseOptions(["--config", path])
    assert listing.config().data_dir == Path("/srv/mail")
    deliver = DeliverOptions()
    deliver.parseOptions(["--config", path, "-a", "bob"])
    assert deliver.config().lmtp.quota_full_tempfail
    override = DeliverOptions()
    override.parseOptions(["--config", path, "--data", "/elsewhere"])
    assert override.config().data_dir == Path("/elsewhere")


def test_other_commands_refuse_a_wrong_file_too(tmp_path: Path) -> None:
    path = write(tmp_path, "workers = 0\ndata = 3\n")
    with pytest.raises(ConfigFileError) as raised:
        UserListOptions().parseOptions(["--config", path])
    assert raised.value.lines == [f"{path}:workers: must be at least 1",
                                  f"{path}:data: expected a string, got an integer"]


def test_config_check_prints_effective_settings_redacted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'store = "postgresql://mail:s3cret@db/mail"\nmax-line = 8192\n'
                           'special-use = ["Junk="]\n')
    assert cli.main(["config", "check", "--config", path, "--workers", "3"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert 'store = "postgresql://mail:***@db/mail"' in out.splitlines()
    assert {"max-line = 8192", "workers = 3", 'special-use = ["Junk="]',
            "allow-plaintext = false", "# tls-cert: not set (built-in default)",
            "# max-literal = 67108864  (built-in default)"} <= set(
        out.splitlines())


def test_effective_settings_read_back_as_the_same_options(tmp_path: Path) -> None:
    first = serve("--config", write(tmp_path, 'max-line = 8192\nimap = ["tcp:1"]\n'
                                              'special-use = ["Sent=Sent Items"]\n'
                                              'pop3-expire = "NEVER"\nscram-plus = true\n'))
    again = serve("--config", write(tmp_path, "\n".join(effective_settings(first)), "b.toml"))
    assert dict(again) | {"config": None} == dict(first) | {"config": None}


# --- no document crashes the loader -------------------------------------------

_KEYS = sorted(option_keys(ServeOptions())) + ["pop3", "limits", "lmtp", "max_line", "x"]
_SCALARS = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.datetimes(), st.dates(), st.times(),
    st.sampled_from(["none", "tcp:0", "Sent=Sent Items", "NEVER", "dovecot", "0", "-1"]))
_NAMES = st.one_of(st.sampled_from(_KEYS + ["listen", "uidl-format", "max-line"]), st.text(max_size=10))
_DOCUMENTS = st.dictionaries(_NAMES, st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_NAMES, inner, max_size=4),
    max_leaves=12), max_size=8)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_no_document_crashes_the_loader(document: dict[str, Any]) -> None:
    try:
        check("f.toml", document, ServeOptions, [])
    except ConfigFileError as error:
        assert error.lines
        for line in error.lines:
            assert line.startswith("f.toml:") and "\n" not in line


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8")))
def test_no_bytes_crash_the_parser(raw: bytes) -> None:
    try:
        parse_toml("f.toml", raw)
    except ConfigFileError as error:
        assert len(error.lines) == 1 and error.lines[0].startswith("f.toml:")
        assert "\n" not in error.lines[0]


def test_odd_keys_and_values_stay_on_one_line() -> None:
    with pytest.raises(ConfigFileError) as raised:
        check("f.toml", {"a\nb": 1, "pop3": {"x y": 1}, "store": "x\nBYE"}, ServeOptions, [])
    assert raised.value.lines == [
        'f.toml:"a\\nb": unknown key', 'f.toml:pop3."x y": unknown key',
        "f.toml:store: x\\nBYE: use 'sqlite' or a postgresql://user@host/dbname URL"]


def test_dates_are_a_wrong_type_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as raised:
        check("f.toml", {"data": datetime.date(2026, 1, 1)}, ServeOptions, [])
    assert raised.value.lines == ["f.toml:data: expected a string, got a date or time"]


def test_help_is_not_held_up_by_the_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        serve("--config", write(tmp_path, "workers = 0\n"), "--help")
    with pytest.raises(usage.UsageError):
        serve("--config", write(tmp_path, "workers = 0\n"))


def test_the_example_file_is_valid_with_and_without_its_comments(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "contrib" / "imapd.toml"
    options = serve("--config", str(example))
    assert options["data"] == "/var/lib/imapd" and options["imaps"] == ["ssl:993"]
    uncommented = re.sub(r"(?m)^# ([a-z0-9-]+ = )", r"\1", example.read_text(encoding="utf-8"))
    assert uncommented.count("\n# ") < example.read_text(encoding="utf-8").count("\n# ")
    everything = serve("--config", write(tmp_path, uncommented))
    assert everything["pop3"] == ["tcp:110"] and everything["lmtp-domain"] == ["example.org"]
    assert everything["tls-cert"] == "/etc/imapd/tls/fullchain.pem"

"""Every command that works on a data directory takes the same --config,
--data (and --store) options (imapd.cli_serve.DataOptions/StoreOptions),
so `imapd doctor --config /etc/imapd/imapd.toml` finds the server's store."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.cli import ImapdOptions

COMMANDS = [
    ["backup", "DIR"], ["restore", "DIR"], ["doctor"], ["status"],
    ["import", "maildir", "PATH", "--user", "alice"], ["user", "list"], ["db", "version"],
    ["deliver"], ["migrate", "--from", "imaps://u@mail.example.org", "--user", "alice"],
]


def sub_options(argv: list[str]) -> object:
    options = ImapdOptions()
    options.parseOptions(argv)
    while getattr(options, "subOptions", None) is not None:
        options = options.subOptions
    return options


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_data_and_store_come_from_the_config_file(command: list[str], tmp_path: Path) -> None:
    config = tmp_path / "imapd.toml"
    config.write_text(f'data = "{tmp_path / "from-file"}"\nstore = "sqlite"\n')
    options = sub_options([*command, "--config", str(config)])
    assert options["data"] == str(tmp_path / "from-file")  # type: ignore[index]
    given = sub_options([*command, "--config", str(config), "--data", "/elsewhere"])
    assert given["data"] == "/elsewhere"  # type: ignore[index]  # the command line wins

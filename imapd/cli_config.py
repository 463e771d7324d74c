"""``imapd config check [--config FILE] [serve options]``: validate the
configuration file as ``imapd serve`` would (every mistake one line, exit
status 2) and print the settings that would be in effect, as TOML, with
secrets (a password in the store URL) redacted.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.python import usage

from imapd.cli_serve import LIMIT_OPTIONS, BaseOptions, ServeOptions
from imapd.config_file import CONFIG_ENV, option_keys
from imapd.core.config import Limits, parse_store, redact_dsn


class ConfigCheckOptions(ServeOptions):
    """The options of ``imapd serve``, parsed the same way (so the file is
    read and checked by the same code), then printed instead of served."""

    synopsis = f"[--config FILE] [serve options] (default ${CONFIG_ENV})"


class ConfigOptions(BaseOptions):
    subCommands = [
        ["check", None, ConfigCheckOptions,
         "Validate the configuration file and print the effective settings"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("config: give check")


def toml_value(value: Any) -> str:
    """A TOML literal for an option's parsed value (strings as TOML basic
    strings: JSON's escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):  # --special-use: {"\\Sent": "Sent Items"}
        value = [f"{key.lstrip(chr(92))}={name}" for key, name in value.items()]
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def effective_settings(options: ServeOptions) -> list[str]:
    """One ``key = value`` line per option (a comment for one left at its
    built-in default), secrets redacted."""
    lines = []
    for name, key in option_keys(options).items():
        value = options.get(name)
        if key.kind == "flag":
            value = bool(value)
        if value is None and name in LIMIT_OPTIONS:
            default = getattr(Limits(), LIMIT_OPTIONS[name][0])
            lines.append(f"# {name} = {toml_value(default)}  (built-in default)")
            continue
        if value is None:
            lines.append(f"# {name}: not set (built-in default)")
            continue
        if name == "store":
            value = parse_store(value).redacted()
        elif isinstance(value, str):
            value = redact_dsn(value)  # any other URL with a password in it
        lines.append(f"{name} = {toml_value(value)}")
    return lines


def run_config(options: ConfigOptions) -> int:
    """``imapd config check``: parsing already read and checked the file
    (mistakes end the command with status 2 before this runs)."""
    sub = options.subOptions
    source = sub["config"] or None
    print(f"# imapd: {source or 'no configuration file'}: OK; effective settings:")
    print("\n".join(effective_settings(sub)))
    sys.stdout.flush()
    return 0

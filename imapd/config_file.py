"""The configuration file (``--config FILE``, else ``$IMAPD_CONFIG``): TOML
read with the standard library's ``tomllib``.

Nothing here knows an option by name. The keys are derived from the options
class itself (``imapd.cli_serve.ServeOptions``: its flags, its parameters
and its repeatable ``opt_*`` handlers), and every value is turned back into
the command-line arguments it stands for and fed through that class's own
parsing, so the file and the command line share one validation and an
option added to ``ServeOptions`` is a key of the file without any change
here. Layout (docs/configuration.md):

- flat keys named as the long options: ``tls-cert = "/etc/imapd/cert.pem"``,
  ``max-line = 8192``, flags as booleans, repeatables as arrays of strings;
- or tables, mapped mechanically: ``[T] k`` is the option ``T-k`` and
  ``[T] listen`` the option ``T`` (``[pop3] listen = ["tcp:110"]``,
  ``[pop3] uidl-format = "dovecot"``); ``[limits] k`` is the limit option
  ``k`` itself (``[limits] max-line = 8192``).

The command line overrides the file; a repeatable given on the command line
replaces the file's list. Mistakes are collected, all of them, as one line
each: ``FILE:key: what is wrong`` (``FILE:LINE: ...`` for TOML syntax).
"""

from __future__ import annotations

import difflib
import getopt
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from twisted.python import usage

CONFIG_ENV = "IMAPD_CONFIG"
CONFIG_HELP = f"TOML file of these options (default ${CONFIG_ENV}; see docs/configuration.md)"
LIMITS_TABLE = "limits"
LISTEN_KEY = "listen"
# Options that are never file keys: the file itself and what only prints and exits.
NOT_KEYS = frozenset({"config", "help", "version"})
_LARGEST_FILE = 1 << 20  # a config file is small; this bounds what a wrong path can cost


class ConfigFileError(usage.UsageError):
    """Mistakes in the configuration file, one line each (the command
    prints them as they are and exits with status 2)."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


@dataclass(frozen=True, slots=True)
class Key:
    """One option settable from the file: ``kind`` is ``flag``, ``int``,
    ``float``, ``str`` or ``list`` (a repeatable option)."""

    name: str
    kind: str


def option_keys(options: usage.Options) -> dict[str, Key]:
    """The file keys of an options class, derived from its parsing tables:
    a long option without ``=`` is a flag; one whose default is a list or
    a dict collects repeated values; the others take one value, typed by
    their ``optParameters`` coercer (``int``, ``float``, else a string)."""
    keys: dict[str, Key] = {}
    for long in options.longOpt:
        name = long.rstrip("=")
        if name in NOT_KEYS:
            continue
        if not long.endswith("="):
            keys[name] = Key(name, "flag")
        elif isinstance(options.get(name), (list, dict)):
            keys[name] = Key(name, "list")
        else:
            coerce = getattr(options._dispatch.get(name), "coerce", str)
            keys[name] = Key(name, {int: "int", float: "float"}.get(coerce, "str"))
    return keys


def _type_name(value: object) -> str:
    names = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
             (list, "an array"), (dict, "a table"))
    for kind, text in names:
        if isinstance(value, kind):
            return text
    return "a date or time"


def to_arguments(key: Key, value: object) -> list[str]:
    """The command-line arguments a file value stands for; ``ValueError``
    (its text: what is wrong) for a value of the wrong TOML type."""
    option = f"--{key.name}"
    if key.kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_type_name(value)}")
        return [option] if value else []
    if key.kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected an array of strings, got {_type_name(value)}"
                             if not isinstance(value, list) else
                             "expected an array of strings, got an array holding other values")
        return [f"{option}={v}" for v in value]
    return [f"{option}={_scalar(key.kind, value)}"]


def _scalar(kind: str, value: object) -> str:
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"expected an integer, got {_type_name(value)}")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
    if kind == "str" and not isinstance(value, str):
        raise ValueError(f"expected a string, got {_type_name(value)}")
    return str(value)


def read_toml(path: str) -> dict[str, Any]:
    """The parsed file; ``ConfigFileError`` for one it cannot read or parse
    (``FILE:LINE: what`` for TOML syntax, as ``tomllib`` locates it)."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read(_LARGEST_FILE + 1)
    except OSError as error:
        raise ConfigFileError([f"{path}: cannot read: {error.strerror}"]) from None
    if len(raw) > _LARGEST_FILE:
        raise ConfigFileError([f"{path}: larger than {_LARGEST_FILE} bytes"])
    return parse_toml(path, raw)


def parse_toml(path: str, raw: bytes) -> dict[str, Any]:
    """``raw`` as TOML (UTF-8, TOML 1.0 §"Spec"); mistakes as ``read_toml``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigFileError([f"{path}:{line}: not UTF-8 (TOML files are UTF-8)"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError([_syntax_error(path, str(error), text)]) from None


def _syntax_error(path: str, message: str, text: str) -> str:
    located = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
    if located:
        what, line, column = located.groups()
        return f"{path}:{line}: {what} (column {column})"
    if message.endswith(" (at end of document)"):
        return f"{path}:{text.count(chr(10)) + 1}: {message.removesuffix(' (at end of document)')}"
    return f"{path}: {message}"


def flatten(document: dict[str, Any], keys: dict[str, Key]) -> tuple[
        list[tuple[str, Key, object]], list[tuple[str, str]]]:
    """(shown name, option key, value) for every setting of the document,
    in file order, and the mistakes (shown name, what is wrong): unknown
    keys, tables that name no option, a setting given twice."""
    found: list[tuple[str, Key, object]] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for name, value in document.items():
        if isinstance(value, dict) and _table_candidates(name, keys):
            entries = _table_entries(name, value)  # no option takes a table: it groups options
        elif isinstance(value, dict) and name not in keys:
            problems.append((_show(name), "unknown table"))
            continue
        else:
            entries = [("", name, name, value)]
        for table, key, flat, item in entries:
            shown = _shown(table, key)
            if flat not in keys:
                problems.append((shown, f"unknown key{_suggestion(table, key, keys)}"))
            elif flat in seen:
                problems.append((shown, f"also given as {seen[flat]}"))
            else:
                seen[flat] = shown
                found.append((shown, keys[flat], item))
    return found, problems


def _one_line(text: str) -> str:
    """A message as one line of text: control characters (a quoted key or
    a value can hold a newline) written as escapes."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: m.group().encode("unicode_escape").decode(), text)


def _show(key: str) -> str:
    """A key as TOML writes it: bare if it can be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _shown(table: str, key: str) -> str:
    return f"{_show(table)}.{_show(key)}" if table else _show(key)


def _shown_names(document: dict[str, Any]) -> list[str]:
    """Every key as mistakes name it (``table.key`` in a table), in order."""
    names = []
    for name, value in document.items():
        names.append(_show(name))
        if isinstance(value, dict):
            names += [_shown(name, key) for key in value]
    return names


def _table_entries(table: str, content: dict[str, Any]) -> list[tuple[str, str, str, object]]:
    """(table, key, the option it stands for, value) for a table's keys."""
    entries = []
    for key, value in content.items():
        if table == LIMITS_TABLE:
            flat = key if _is_limit(key) else ""
        else:
            flat = table if key == LISTEN_KEY else f"{table}-{key}"
        entries.append((table, key, flat, value))
    return entries


def _is_limit(name: str) -> bool:
    from imapd.cli_serve import LIMIT_OPTIONS

    return name in LIMIT_OPTIONS


def _table_candidates(table: str, keys: dict[str, Key]) -> list[str]:
    """The keys a table ``[table]`` can hold, as shown in it."""
    if table == LIMITS_TABLE:
        return [k for k in keys if _is_limit(k)]
    inside = [k[len(table) + 1:] for k in keys if k.startswith(f"{table}-")]
    return inside + ([LISTEN_KEY] if table in keys and keys[table].kind == "list" else [])


def _suggestion(table: str, key: str, keys: dict[str, Key]) -> str:
    candidates = _table_candidates(table, keys) if table else list(keys)
    close = difflib.get_close_matches(key.replace("_", "-").lower(), candidates, n=1, cutoff=0.7)
    return f" (did you mean {_shown(table, close[0])}?)" if close else ""


def _given_on_command_line(options: usage.Options, argv: Sequence[str]) -> tuple[set[str], str | None]:
    """The long names of the options in ``argv`` and its ``--config``
    value; nothing if it does not parse (the real parse says why)."""
    try:
        pairs, _ = getopt.gnu_getopt(list(argv), options.shortOpt, options.longOpt)
    except getopt.GetoptError:
        return set(), None
    given: set[str] = set()
    config = None
    for option, value in pairs:
        name = option[2:] if option.startswith("--") else options.synonyms.get(option[1:], "")
        given.add(name)
        if name == "config":
            config = value
    return given, config


def expand(options: usage.Options, argv: Sequence[str]) -> list[str]:
    """``argv`` with the settings of the configuration file put first (so
    the command line overrides them), if ``--config`` or ``$IMAPD_CONFIG``
    names one; only the options ``options`` knows are taken (``imapd user``
    reads ``data`` and ``store`` from the server's file). ``ConfigFileError``
    lists every mistake in the file."""
    given, path = _given_on_command_line(options, argv)
    path = path or os.environ.get(CONFIG_ENV) or None
    if path is None or given & {"help", "version"}:
        return list(argv)
    from imapd.cli_serve import ServeOptions

    serving = isinstance(options, ServeOptions)
    settings = validate(path, type(options) if serving else ServeOptions,
                        list(argv) if serving else [])
    own = option_keys(options)
    prefix: list[str] = []
    for key, arguments in settings:
        if key.name in own and key.name not in given:
            prefix += arguments
    return prefix + list(argv)


def validate(path: str, factory: Callable[[], usage.Options],
             argv: list[str]) -> list[tuple[Key, list[str]]]:
    """Every setting of the file as (key, arguments), checked by the
    options class's own parsing: first each value alone (its type, its
    handler), then all of them with ``argv`` through ``postOptions``."""
    return check(path, read_toml(path), factory, argv)


def check(path: str, document: dict[str, Any], factory: Callable[[], usage.Options],
          argv: list[str]) -> list[tuple[Key, list[str]]]:
    """``validate`` for a document already parsed (``path`` only names it)."""
    keys = option_keys(factory())
    settings, problems = flatten(document, keys)
    checked: list[tuple[str, Key, list[str]]] = []
    for shown, key, value in settings:
        try:
            arguments = to_arguments(key, value)
            _parse(factory, arguments, post=False)
        except (ValueError, usage.UsageError) as error:
            problems.append((shown, _unprefixed(key.name, str(error))))
            continue
        checked.append((shown, key, arguments))
    problems += _check_together(factory, checked, argv)
    if problems:  # in the file's order, whichever check found them
        order = {shown: index for index, shown in enumerate(_shown_names(document))}
        problems.sort(key=lambda problem: order.get(problem[0], len(order)))
        raise ConfigFileError([_one_line(f"{path}:{shown}: {what}" if shown else f"{path}: {what}")
                               for shown, what in problems])
    return [(key, arguments) for _, key, arguments in checked]


def _check_together(factory: Callable[[], usage.Options],
                    checked: list[tuple[str, Key, list[str]]],
                    argv: list[str]) -> list[tuple[str, str]]:
    """``postOptions`` over the file and the command line. Its messages
    name the option first (``--workers must be ...``); the named file key is
    reported and left out, and the rest checked again, so every such mistake
    is listed. A mistake of the command line alone is left to its parse."""
    problems: list[tuple[str, str]] = []
    remaining = list(checked)
    given, _ = _given_on_command_line(factory(), argv)
    while remaining:
        try:
            _parse(factory, [a for _, key, arguments in remaining
                             if key.name not in given for a in arguments] + argv)
            break
        except usage.UsageError as error:
            message = str(error)
        culprit = _named_key(message, remaining)
        if culprit is None:
            try:
                _parse(factory, argv)
            except usage.UsageError:
                break  # the command line's own mistake: its parse reports it
            problems.append(("", message))  # no key to blame: "FILE: what"
            break
        remaining = [entry for entry in remaining if entry is not culprit]
        problems.append((culprit[0], _unprefixed(culprit[1].name, message)))
    return problems


def _named_key(message: str, entries: list[tuple[str, Key, list[str]]]) -> (
        tuple[str, Key, list[str]] | None):
    named = re.match(r"--([A-Za-z0-9-]+)", message)
    for entry in entries:
        if named and entry[1].name == named.group(1):
            return entry
    return None


def _unprefixed(name: str, message: str) -> str:
    """A message of the option parsing as the file shows it: without the
    leading ``--name`` (the line already says which key)."""
    text = re.sub(rf"^--{re.escape(name)}:? ", "", message)
    return re.sub(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", r"\1", text)


def _parse(factory: Callable[[], usage.Options], arguments: list[str], post: bool = True) -> None:
    """One parse of ``arguments`` by a fresh instance, through Twisted's
    own parser (not the class's, which would read the file again)."""
    scratch = factory()
    if not post:
        scratch.postOptions = lambda: None  # type: ignore[method-assign]
    usage.Options.parseOptions(scratch, arguments)  # type: ignore[no-untyped-call]

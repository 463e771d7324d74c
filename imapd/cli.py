"""The ``imapd`` command line: ``serve`` and ``user add|passwd|del|list``.

``ServeOptions`` and ``build_service`` are shared with the twistd plugin
(``twisted/plugins/imapd_plugin.py``), so ``imapd serve`` and
``twistd -n imapd`` accept the same options and behave the same.
Every subcommand takes ``--data DIR`` (else ``$IMAPD_DATA``, else
``./imapd-data``).
"""

from __future__ import annotations

import getopt
import getpass
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from twisted.python import usage

from imapd import __version__
from imapd.config import Config, Limits
from imapd.model import Secret
from imapd.users import UserDatabase, UserDatabaseError

if TYPE_CHECKING:
    from imapd.mailstore.interface import MailStore

DEFAULT_DATA_DIR = "imapd-data"
DATA_ENV = "IMAPD_DATA"
DEFAULT_ENDPOINT = "tcp:143"
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def resolve_data_dir(option: str | None) -> Path:
    return Path(option or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (private to the user) on first run."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


# Limits settable from the command line: option name -> (Limits field, type).
LIMIT_OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "max-line": ("max_line", int, "longest command line in bytes"),
    "max-literal": ("max_literal", int, "largest literal (APPEND message) in bytes"),
    "max-command": ("max_command", int, "largest command, lines plus literals, in bytes"),
    "max-connections": ("max_connections", int, "open connections per process"),
    "max-bad-commands": ("max_bad_commands", int, "consecutive BAD replies before BYE"),
    "max-pipelined": ("max_pipelined", int, "queued commands per connection"),
    "preauth-timeout": ("preauth_timeout", float, "idle seconds before login"),
    "auth-timeout": ("auth_timeout", float, "idle seconds after login (>= 1800)"),
    "failed-login-delay": ("failed_login_delay", float, "seconds before a failed login answers"),
}
_LIMIT_DEFAULTS = {f.name: f.default for f in fields(Limits)}


class _Options(usage.Options):
    """usage.Options with GNU-style argument order (``user add NAME
    --password-stdin``; plain getopt stops at the first operand)."""

    longdesc = ""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def opt_version(self) -> None:
        """Print the imapd version and exit"""
        print(f"imapd {__version__}")
        sys.exit(0)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        argv = list(sys.argv[1:] if options is None else options)
        if not getattr(self, "subCommands", None):
            argv = self._options_first(argv)
        super().parseOptions(argv)  # type: ignore[no-untyped-call]

    def _options_first(self, argv: list[str]) -> list[str]:
        try:
            pairs, operands = getopt.gnu_getopt(argv, self.shortOpt, self.longOpt)
        except getopt.GetoptError as error:
            raise usage.UsageError(str(error)) from None
        ordered: list[str] = []
        for name, value in pairs:
            ordered.append(name)
            takes_value = (
                f"{name[2:]}=" in self.longOpt if name.startswith("--")
                else f"{name[1:]}:" in self.shortOpt
            )
            if takes_value:
                ordered.append(value)
        return ordered + ["--"] + operands if operands else ordered


class ServeOptions(_Options):
    """Options of ``imapd serve`` and ``twistd imapd``."""

    synopsis = "[--data DIR] [--imap ENDPOINT ...] [options]"
    optParameters: list[list[Any]] = [
        ["data", "d", None, f"data directory (default ${DATA_ENV} or ./{DEFAULT_DATA_DIR})"],
        ["log-level", None, "info", "one of " + ", ".join(LOG_LEVELS)],
    ] + [
        [name, None, None, f"{doc} (default {_LIMIT_DEFAULTS[field]})", kind]
        for name, (field, kind, doc) in LIMIT_OPTIONS.items()
    ]

    def __init__(self) -> None:
        super().__init__()
        self["imap"] = []

    def opt_imap(self, endpoint: str) -> None:
        """Twisted endpoint to serve IMAP on, repeatable (default tcp:143)"""
        self["imap"].append(endpoint)

    def postOptions(self) -> None:
        if not self["imap"]:
            self["imap"] = [DEFAULT_ENDPOINT]
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        limits = self.limits()
        if limits.auth_timeout < 30 * 60:
            raise usage.UsageError("--auth-timeout must be at least 1800 (RFC 3501 §5.4)")

    def limits(self) -> Limits:
        overrides = {
            field: self[name]
            for name, (field, _, _) in LIMIT_OPTIONS.items()
            if self[name] is not None
        }
        return Limits(**overrides)

    def config(self) -> Config:
        return Config(data_dir=resolve_data_dir(self["data"]), limits=self.limits())


def open_default_store(data_dir: Path) -> MailStore:
    """Open the embedded default mail store in ``data_dir`` (SQLite,
    ``imapd.mailstore.sqlite``): the one place that opens it. The factory
    polls it for other processes' changes; the service closes it at
    shutdown."""
    from imapd.mailstore.sqlite import open_store

    return open_store(data_dir)


def build_service(options: ServeOptions, reactor: Any) -> Any:
    """Config -> users -> store -> factory -> listening service (an
    ``IService``); used by ``imapd serve`` and the twistd plugin."""
    from imapd.server.factory import ImapServerFactory
    from imapd.server.service import ImapdService

    config = options.config()
    ensure_data_dir(config.data_dir)
    users = UserDatabase.in_data_dir(config.data_dir)
    store = open_default_store(config.data_dir)
    factory = ImapServerFactory(config, users, store, clock=reactor)
    if not users.names():
        from twisted.logger import Logger

        Logger(namespace="imapd").warn(
            "imapd: no users yet; add one with: imapd user add NAME --data {data}",
            data=str(config.data_dir),
        )
    return ImapdService(factory, options["imap"], reactor)


def start_logging(level_name: str) -> None:
    """Twisted's logger, text lines on stderr, filtered by level."""
    from twisted.logger import (
        FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
        textFileLogObserver,
    )

    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level_name))
    text_observer: Any = textFileLogObserver(sys.stderr)
    observer: Any = FilteringLogObserver(text_observer, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def run_serve(options: ServeOptions) -> int:
    """Run until SIGINT/SIGTERM (the reactor's handlers stop it cleanly;
    the service then says BYE to clients and closes its ports)."""
    from imapd.server.runtime import global_reactor
    from imapd.server.service import ListenError

    reactor = global_reactor()
    start_logging(options["log-level"])
    install_stop_signals(reactor)  # before "listening" is logged: tests signal at once
    service = build_service(options, reactor)
    try:
        service.startService()
    except ListenError as error:
        print(error, file=sys.stderr)
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0


def install_stop_signals(reactor: Any) -> None:
    """SIGTERM and SIGINT stop the reactor, even when SIGINT was inherited
    as ignored (a background job), where Twisted would leave it alone."""
    stopping: list[int] = []

    def stop(signum: int, frame: object) -> None:
        if not stopping:
            stopping.append(signum)
            reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


# --- user management -----------------------------------------------------------

class _DataOptions(_Options):
    optParameters: list[list[Any]] = [
        ["data", "d", None, f"data directory (default ${DATA_ENV} or ./{DEFAULT_DATA_DIR})"],
    ]

    def database(self) -> UserDatabase:
        return UserDatabase.in_data_dir(resolve_data_dir(self["data"]))


class _NamedUserOptions(_DataOptions):
    def parseArgs(self, *args: str) -> None:
        if len(args) != 1:
            raise usage.UsageError("give exactly one user NAME")
        self["name"] = args[0]


class _PasswordUserOptions(_NamedUserOptions):
    optFlags = [["password-stdin", None, "read the password from one line of stdin"]]


class UserAddOptions(_PasswordUserOptions):
    synopsis = "NAME [--password-stdin] [--data DIR]"


class UserPasswdOptions(_PasswordUserOptions):
    synopsis = "NAME [--password-stdin] [--data DIR]"


class UserDelOptions(_NamedUserOptions):
    synopsis = "NAME [--data DIR]"


class UserListOptions(_DataOptions):
    synopsis = "[--data DIR]"


class UserOptions(_Options):
    subCommands = [
        ["add", None, UserAddOptions, "Add a user (password prompted twice)"],
        ["passwd", None, UserPasswdOptions, "Change a user's password"],
        ["del", None, UserDelOptions, "Delete a user"],
        ["list", None, UserListOptions, "List users"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("user: give one of add, passwd, del, list")


class ImapdOptions(_Options):
    synopsis = "imapd (serve | user) [options]"
    subCommands = [
        ["serve", None, ServeOptions, "Run the IMAP server"],
        ["user", None, UserOptions, "Manage users (works while the server runs)"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("give a command: serve or user")


def read_password(from_stdin: bool) -> Secret:
    """One line from stdin (scripts), or a twice-typed prompt (people)."""
    if from_stdin:
        line = sys.stdin.buffer.readline()
        return Secret(line.rstrip(b"\n").rstrip(b"\r"))
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise UserDatabaseError("passwords do not match")
    return Secret(first.encode("utf-8"))


def run_user(options: UserOptions) -> int:
    command, sub = options.subCommand, options.subOptions
    db = sub.database()
    if command == "list":
        for name in db.names():
            print(name)
        return 0
    name = sub["name"]
    if command == "del":
        db.delete(name)
        print(f"imapd: deleted user {name}")
        return 0
    ensure_data_dir(db.path.parent)
    if command == "add":
        if db.exists(name):
            raise UserDatabaseError(f"user {name!r} already exists")
        db.add(name, read_password(sub["password-stdin"]))
        print(f"imapd: added user {name}")
    else:
        if not db.exists(name):
            raise UserDatabaseError(f"no such user: {name!r}")
        db.set_password(name, read_password(sub["password-stdin"]))
        print(f"imapd: changed password of {name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    options = ImapdOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as error:
        print(f"imapd: {error} (see imapd --help)", file=sys.stderr)
        return 2
    try:
        if options.subCommand == "serve":
            return run_serve(options.subOptions)
        return run_user(options.subOptions)
    except UserDatabaseError as error:
        print(f"imapd: {error}", file=sys.stderr)
        return 1

"""The ``imapd`` command line: ``serve``, ``user add|passwd|del|list|import`` and
``db init|migrate|version``.

Argument parsing and user administration only: the server is assembled by
``imapd.app``. ``ServeOptions`` is shared with the twistd plugin
(``twisted/plugins/imapd_plugin.py``), which also builds through
``imapd.app``, so ``imapd serve`` and ``twistd -n imapd`` accept the same
options and behave the same.
Every subcommand takes ``--data DIR`` (else ``$IMAPD_DATA``, else
``./imapd-data``) and ``--store sqlite|postgresql://...`` (else
``$IMAPD_STORE``, else ``sqlite``: the data directory). A store that cannot
be used (bad URL, database unreachable, schema missing or of another
version) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from twisted.python import usage

from imapd.cli_backup import BackupOptions, RestoreOptions, run_backup, run_restore
from imapd.cli_doctor import DoctorOptions, run_doctor
from imapd.cli_conformance import ConformanceOptions, run_conformance
from imapd.cli_status import StatusOptions, run_status
from imapd.cli_config import ConfigOptions, run_config
from imapd.cli_migrate import MigrateOptions, run_migrate
from imapd.cli_import import ImportOptions, run_import_mail
from imapd.cli_quota import parse_limit, run_quota
from imapd.config_file import ConfigFileError
from imapd.cli_serve import (  # ServeOptions, resolve_data_dir: re-exported for the plugin
    QUOTA_TEMPFAIL_HELP, BaseOptions, ServeOptions, StoreOptions, resolve_data_dir, run_serve,
)
from imapd.app import ensure_data_dir
from imapd.core.config import Config, LmtpConfig
from imapd.core.model import Secret
from imapd.accounts.store import UserStore
from imapd.accounts.users import UserDatabase, UserDatabaseError, hasher_from_spec

# --- user management -----------------------------------------------------------

class _DataOptions(StoreOptions):
    def database(self) -> UserStore:
        from imapd.app import open_user_store

        return open_user_store(self.config())


class _NamedUserOptions(_DataOptions):
    def parseArgs(self, *args: str) -> None:
        if len(args) != 1:
            raise usage.UsageError("give exactly one user NAME")
        self["name"] = args[0]


class _PasswordUserOptions(_NamedUserOptions):
    optFlags = [["password-stdin", None, "read the password from one line of stdin"]]
    optParameters: list[list[Any]] = [
        ["argon2", None, None,
         "argon2id cost of the new hash: t=ITERATIONS,m=KIB,p=LANES "
         "(default t=3,m=65536,p=4)"],
    ]

    def database(self) -> UserStore:
        from imapd.app import open_user_store

        hasher = hasher_from_spec(self["argon2"]) if self["argon2"] else None
        return open_user_store(self.config(), hasher)


class UserAddOptions(_PasswordUserOptions):
    synopsis = "NAME [--password-stdin] [--data DIR] [--store URL]"


class UserPasswdOptions(_PasswordUserOptions):
    synopsis = "NAME [--password-stdin] [--data DIR] [--store URL]"


class UserDelOptions(_NamedUserOptions):
    """``imapd user del NAME``: the user, their sessions and their mail
    (``imapd.cli_user``)."""

    synopsis = "NAME [--keep-mail NEWNAME] [--data DIR] [--store URL]"
    optParameters: list[list[Any]] = [
        ["keep-mail", None, None, "keep the mail under this new owner name (no user has it)"],
    ]


class UserRenameOptions(_DataOptions):
    synopsis = "OLD NEW [--data DIR] [--store URL]"

    def parseArgs(self, *args: str) -> None:
        if len(args) != 2:
            raise usage.UsageError("give the user's OLD and NEW name")
        self["old"], self["new"] = args


class UserListOptions(_DataOptions):
    synopsis = "[--data DIR] [--store URL]"


class UserImportOptions(_DataOptions):
    synopsis = "FILE [--replace] [--data DIR] [--store URL]"
    optFlags = [["replace", None, "replace users that already exist (default: skip them)"]]

    def parseArgs(self, *args: str) -> None:
        if len(args) != 1:
            raise usage.UsageError("give exactly one Dovecot passwd-file")
        self["file"] = args[0]


class UserQuotaOptions(_NamedUserOptions):
    """``imapd user quota NAME [--storage SIZE] [--messages N]``: show the
    user's quota (RFC 9208 STORAGE and MESSAGE) or change the given limits
    (``none``: unlimited); a limit not given is kept."""

    synopsis = "NAME [--storage SIZE|none] [--messages N|none] [--data DIR] [--store URL]"
    optParameters: list[list[Any]] = [
        ["storage", None, None, "storage limit in bytes, or with K, M, G, T (x1024), or none"],
        ["messages", None, None, "message count limit, or none"],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        for key in ("storage", "messages"):
            if self[key] is not None:
                self[key] = parse_limit(self[key], key == "storage")


IMPORT_HELP = "Import users from a Dovecot passwd-file (user:{SCHEME}hash:...)"


class UserOptions(BaseOptions):
    subCommands = [
        ["add", None, UserAddOptions, "Add a user (password prompted twice)"],
        ["passwd", None, UserPasswdOptions, "Change a user's password"],
        ["del", None, UserDelOptions, "Delete a user, their sessions and their mail"],
        ["rename", None, UserRenameOptions, "Rename a user, with their mail"],
        ["list", None, UserListOptions, "List users"],
        ["quota", None, UserQuotaOptions, "Show or set a user's quota (RFC 9208)"],
        ["import", None, UserImportOptions, IMPORT_HELP],
        ["import-passwd", None, UserImportOptions, "The same as import"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(
                "user: give one of add, passwd, del, rename, list, quota, import")


class DbInitOptions(_DataOptions):
    synopsis = "[--store URL] [--data DIR]"


class DbOptions(BaseOptions):
    subCommands = [
        ["init", None, DbInitOptions, "Create the store's schema (PostgreSQL: an empty database)"],
        ["migrate", None, DbInitOptions, "Upgrade the store's schema to this imapd's version"],
        ["version", None, DbInitOptions, "Print the store's schema version"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("db: give one of init, migrate, version")


class DeliverOptions(_DataOptions):
    """``imapd deliver``: one message on stdin into a mailbox (for an MTA's
    ``mailbox_command`` or pipe transport); exit status from sysexits."""

    optParameters: list[list[Any]] = [
        ["from", "f", None, "envelope sender: adds Return-Path (unless the message has one)"],
        ["address", "a", None, "recipient address or user name (default: $USER)"],
        ["mailbox", "m", None, "folder to deliver into (default: +detail folder, else INBOX)"],
        ["lmtp-separator", None, "+", "subaddress separator, as for serve (\"\": none)"],
    ]
    optFlags = [["quota-full-tempfail", None, QUOTA_TEMPFAIL_HELP]]

    def config(self) -> Config:
        return replace(super().config(), lmtp=LmtpConfig(
            separator=self["lmtp-separator"],
            quota_full_tempfail=bool(self["quota-full-tempfail"])))


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
    try:
        return _user_command(command or "", sub, db)
    finally:
        db.close()


def _user_command(command: str, sub: Any, db: UserStore) -> int:
    if command == "list":
        for name in db.names():
            print(name)
        return 0
    if isinstance(db, UserDatabase):
        ensure_data_dir(db.path.parent)
    if command in ("import", "import-passwd"):
        return run_import(db, Path(sub["file"]), bool(sub["replace"]))
    if command in ("del", "rename"):
        from imapd.cli_user import run_del, run_rename

        return (run_del if command == "del" else run_rename)(sub, db)
    name = sub["name"]
    if command == "quota":
        if not db.exists(name):
            raise UserDatabaseError(f"no such user: {name!r}")
        return run_quota(sub, name)
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


def run_import(db: UserStore, source: Path, replace_existing: bool) -> int:
    """``imapd user import FILE``: one line per refused entry (line
    number and reason, never the hash), then a summary. Exit 1 if any line
    was refused (the others are imported)."""
    from imapd.accounts.passwd_import import parse_dovecot_passwd

    try:
        text = source.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise UserDatabaseError(f"cannot read {source}: {error.strerror}") from None
    entries, problems = parse_dovecot_passwd(text)
    for line_number, reason in problems:
        print(f"imapd: {source}:{line_number}: skipped: {reason}", file=sys.stderr)
    skipped = db.import_entries(entries, replace_existing)
    for name in skipped:
        print(f"imapd: {name}: already exists, kept (use --replace)", file=sys.stderr)
    imported = len(entries) - len(skipped)
    print(f"imapd: imported {imported} user(s) from {source}"
          + (f", {len(problems) + len(skipped)} skipped" if problems or skipped else ""))
    return 1 if problems else 0


def run_db(options: DbOptions) -> int:
    """``imapd db init|migrate|version`` (``imapd.app.db_command``)."""
    from imapd import app

    message, status = app.db_command(options.subCommand or "", options.subOptions.config())
    print(message, file=sys.stdout if status == 0 else sys.stderr)
    return status


def run_deliver(options: DeliverOptions) -> int:
    """``imapd deliver`` (``imapd.app.deliver_command``, ``imapd.lmtp.lda``)."""
    from imapd import app
    from imapd.lmtp.lda import EX_USAGE, Request

    recipient = options["address"] or os.environ.get("USER") or getpass.getuser()
    if not recipient:
        print("imapd deliver: no recipient (-a)", file=sys.stderr)
        return EX_USAGE
    config = options.config()
    request = Request(recipient, options["from"], options["mailbox"], config.lmtp.separator)
    return app.deliver_command(config, request, sys.stdin.buffer.read())


# The subcommands: name -> (options class, what runs it, one line of help).
# A new command lives in its own module (``cli_<name>.py``: its Options
# class and its run function) and adds one line here.
Command = tuple[type[usage.Options], Callable[[Any], int], str]
COMMANDS: dict[str, Command] = {
    "serve": (ServeOptions, run_serve, "Run the server"),
    "user": (UserOptions, run_user,
             "Manage users (works while the server runs)"),
    "db": (DbOptions, run_db,
           "Create, upgrade or inspect the store's schema"),
    "deliver": (DeliverOptions, run_deliver,
                "Deliver one message from stdin (MTA mailbox_command)"),
    "migrate": (MigrateOptions, run_migrate, "Copy an account from another IMAP server (imaps://USER@HOST)"),
    "config": (ConfigOptions, run_config, "Check the configuration file, print the settings"),
    "backup": (BackupOptions, run_backup, "Copy the store, users and TLS files while the server runs"),
    "restore": (RestoreOptions, run_restore, "Put a backup back into a stopped data directory"),
    "doctor": (DoctorOptions, run_doctor, "Check the store's invariants; --repair fixes what is safe"),
    "status": (StatusOptions, run_status, "Show the running server's sessions and users"),
    "import": (ImportOptions, run_import_mail, "Import a Maildir or mbox into an account (resumable)"),
    "conformance": (ConformanceOptions, run_conformance, "Run conformance scripts against any IMAP server"),
}


class ImapdOptions(BaseOptions):
    synopsis = "imapd COMMAND [options]"
    subCommands = [[name, None, options, text] for name, (options, _, text) in COMMANDS.items()]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(f"give a command: {', '.join(COMMANDS)}")


def main(argv: Sequence[str] | None = None) -> int:
    from imapd.app import StoreError, store_failure, store_of

    options = ImapdOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except ConfigFileError as error:  # every mistake of the file, one line each
        print(*error.lines, sep="\n", file=sys.stderr)
        return 2
    except usage.UsageError as error:
        print(f"imapd: {error} (see imapd --help)", file=sys.stderr)
        return 2
    try:
        return COMMANDS[options.subCommand or ""][1](options.subOptions)
    except UserDatabaseError as error:
        print(f"imapd: {error}", file=sys.stderr)
        return 1
    except StoreError as error:
        print(error, file=sys.stderr)
        return 2
    except Exception as error:
        if not _is_store_failure(error):
            raise
        # The database is down or its schema is wrong: one line, status 2.
        sub = options.subOptions.subOptions
        print(store_failure(store_of(sub.config()), error), file=sys.stderr)
        return 2


def _is_store_failure(error: Exception) -> bool:
    """A failure of the store itself (not of the command): the mail core's
    ``Unavailable`` (a database that cannot be reached), a schema mismatch,
    any database driver error."""
    from imapd.mail.errors import Unavailable

    module = type(error).__module__
    return (isinstance(error, Unavailable) or type(error).__name__ == "SchemaMismatch"
            or module.startswith("psycopg"))

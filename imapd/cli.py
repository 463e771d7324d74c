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

import getopt
import getpass
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Sequence

from twisted.python import usage

from imapd import __version__
from imapd.cli_quota import parse_limit, run_quota
from imapd.app import DEFAULT_ENDPOINT, DEFAULT_IMAPS_ENDPOINT, Listeners, ensure_data_dir
from imapd.core.config import (
    DEFAULT_MAILBOXES, SPECIAL_USES, SQLITE_STORE, Config, Limits, LmtpConfig, StoreURLError,
    parse_store,
)
from imapd.core.errors import ImapError
from imapd.mail.names import normalize_name
from imapd.core.model import Secret
from imapd.accounts.store import UserStore
from imapd.accounts.users import UserDatabase, UserDatabaseError, hasher_from_spec

DEFAULT_DATA_DIR = "imapd-data"
DATA_ENV = "IMAPD_DATA"
STORE_ENV = "IMAPD_STORE"
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def resolve_data_dir(option: str | None) -> Path:
    return Path(option or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)


def resolve_store(option: str | None) -> str:
    """``--store``, else ``$IMAPD_STORE``, else ``sqlite``; checked for
    shape (``UsageError``: one line, exit status 2)."""
    value = option or os.environ.get(STORE_ENV) or SQLITE_STORE
    try:
        parse_store(value)
    except StoreURLError as error:
        raise usage.UsageError(str(error)) from None
    return value


_WORKERS_OPTION: list[Any] = [
    "workers", None, 1, "server processes sharing the listening ports (imapd serve only)", int]
STORE_HELP = (f"where mail and users live: sqlite (the data directory) or "
              f"postgresql://USER@HOST[:PORT]/DBNAME (default ${STORE_ENV} or sqlite)")


# Limits settable from the command line: option name -> (Limits field, type).
LIMIT_OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "max-line": ("max_line", int, "longest command line in bytes"),
    "max-literal": ("max_literal", int, "largest literal (APPEND message) in bytes"),
    "max-command": ("max_command", int, "largest command, lines plus literals, in bytes"),
    "max-command-text": ("max_command_text", int,
                         "largest command text without its literals, in bytes"),
    "max-connections": ("max_connections", int, "open connections per process"),
    "listen-backlog": ("listen_backlog", int,
                       "connections queued on each listening port before they are accepted "
                       "(capped by /proc/sys/net/core/somaxconn)"),
    "max-bad-commands": ("max_bad_commands", int, "consecutive BAD replies before BYE"),
    "max-pipelined": ("max_pipelined", int, "queued commands per connection"),
    "preauth-timeout": ("preauth_timeout", float, "idle seconds before login"),
    "auth-timeout": ("auth_timeout", float, "idle seconds after login (>= 1800)"),
    "failed-login-delay": ("failed_login_delay", float, "seconds before a failed login answers"),
    "max-connections-per-ip": ("max_connections_per_ip", int, "open connections from one address"),
    "max-connections-per-user": ("max_connections_per_user", int, "logged-in sessions of one user"),
    "auth-penalty": ("auth_penalty_initial", float,
                     "delay in seconds after one failed login (doubles per failure; 0: off)"),
    "auth-penalty-max": ("auth_penalty_max", float, "largest failed-login delay in seconds"),
    "auth-penalty-window": ("auth_penalty_window", float,
                            "seconds a failed login is remembered after the last one"),
    "max-preauth-duration": ("max_preauth_duration", float,
                             "seconds a connection may stay unauthenticated"),
    "max-preauth-literal": ("max_preauth_literal", int, "largest literal before login, bytes"),
    "literal-spool-threshold": ("literal_spool_threshold", int,
                                "literals above this many bytes go to DATA/spool, not memory"),
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
        self.argv = list(argv)  # as given: ``--workers`` runs its workers with them
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
    optFlags = [
        ["allow-plaintext", None,
         "allow LOGIN/AUTHENTICATE without TLS from other hosts (unsafe)"],
        ["loopback-is-remote", None,
         "no plaintext logins from loopback either (a local proxy forwards remote clients)"],
        ["id-send-version", None,
         "include the server version in the ID response (RFC 2971; off: name only)"],
        ["scram-plus", None,
         "offer SCRAM-SHA-256-PLUS (channel binding, RFC 5802 §6) on TLS connections"],
        ["no-default-mailboxes", None,
         "do not give new accounts Drafts, Sent, Trash, Junk and Archive (RFC 6154)"],
    ]
    optParameters: list[list[Any]] = [
        ["data", "d", None, f"data directory (default ${DATA_ENV} or ./{DEFAULT_DATA_DIR})"],
        ["log-level", None, "info", "one of " + ", ".join(LOG_LEVELS)],
        ["tls-cert", None, None,
         "PEM certificate (with its chain) for STARTTLS and IMAPS "
         "(default: a self-signed one generated in DATA/tls)"],
        ["tls-key", None, None, "PEM private key (default: in the --tls-cert file)"],
        ["store", None, None, STORE_HELP],
        _WORKERS_OPTION,
    ] + [
        [name, None, None, f"{doc} (default {_LIMIT_DEFAULTS[field]})", kind]
        for name, (field, kind, doc) in LIMIT_OPTIONS.items()
    ]

    def __init__(self) -> None:
        super().__init__()
        self["imap"] = []
        self["imaps"] = []
        self["special-use"] = {}
        self["lmtp"] = []
        self["lmtp-domain"] = []

    def opt_special_use(self, value: str) -> None:
        # The docstring is the help text (one line: usage.Options keeps indentation).
        """USE=NAME names a default special-use mailbox (RFC 6154; USE: Drafts, Sent, Trash, Junk, Archive), e.g. "Sent=Sent Items"; "Junk=" for none; repeatable"""  # noqa: E501
        use, sep, name = value.partition("=")
        attribute = "\\" + use.strip().lstrip("\\").capitalize()
        if not sep or attribute not in SPECIAL_USES:
            raise usage.UsageError(
                f"--special-use needs USE=NAME with USE one of "
                f"{', '.join(u[1:] for u in SPECIAL_USES)}: {value!r}")
        if name:
            try:
                normalize_name(name)
            except ImapError as error:
                raise usage.UsageError(f"--special-use {value!r}: {error.text}") from None
            if name.upper() == "INBOX":
                raise usage.UsageError("--special-use: INBOX cannot be a special-use mailbox")
        self["special-use"][attribute] = name

    def opt_imap(self, endpoint: str) -> None:
        """Twisted endpoint to serve IMAP on, repeatable (default tcp:143); haproxy:tcp:143 expects a PROXY protocol header (v1/v2) from a load balancer first"""
        self["imap"].append(endpoint)

    def opt_imaps(self, endpoint: str) -> None:
        """Endpoint for implicit TLS (IMAPS), e.g. ssl:993, repeatable; default ssl:993 when --tls-cert is given; "none" for no IMAPS"""
        self["imaps"].append(endpoint)

    def opt_lmtp(self, endpoint: str) -> None:
        """Endpoint to accept local delivery on by LMTP (RFC 2033), e.g. unix:/run/imapd/lmtp or tcp:24:interface=127.0.0.1, repeatable (default: none, LMTP off); no authentication, so never a public address"""
        self["lmtp"].append(endpoint)

    def opt_lmtp_domain(self, domain: str) -> None:
        """Recipient domain LMTP accepts, repeatable (default: any domain)"""
        self["lmtp-domain"].append(domain.strip().lower())

    def postOptions(self) -> None:
        if self["lmtp"] and self["workers"] > 1:
            raise usage.UsageError("--lmtp cannot be combined with --workers yet")
        if not self["imap"]:
            self["imap"] = [DEFAULT_ENDPOINT]
        if not self["imaps"] and self["tls-cert"]:
            self["imaps"] = [DEFAULT_IMAPS_ENDPOINT]
        self["imaps"] = [e for e in self["imaps"] if e.lower() != "none"]
        from imapd.net.tls import TLSConfigError, tcp_description_for_implicit_tls

        from imapd.net.peer import split_proxy

        try:
            for endpoint in self["imaps"]:
                tcp_description_for_implicit_tls(split_proxy(endpoint)[1])
        except TLSConfigError as error:
            raise usage.UsageError(str(error)) from None
        self["store"] = resolve_store(self["store"])
        if self["workers"] < 1:
            raise usage.UsageError("--workers must be at least 1")
        if self["tls-key"] and not self["tls-cert"]:
            raise usage.UsageError("--tls-key needs --tls-cert")
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        limits = self.limits()
        if limits.listen_backlog < 1:
            raise usage.UsageError("--listen-backlog must be at least 1")
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
        return Config(
            data_dir=resolve_data_dir(self["data"]), limits=self.limits(),
            allow_plaintext=bool(self["allow-plaintext"]),
            loopback_is_local=not self["loopback-is-remote"],
            id_send_version=bool(self["id-send-version"]),
            scram_plus=bool(self["scram-plus"]),
            default_mailboxes=self.default_mailboxes(),
            store=self["store"],
            lmtp=LmtpConfig(domains=tuple(self["lmtp-domain"])),
        )

    def listeners(self) -> Listeners:
        """The endpoints and certificate (``imapd.app.Listeners``)."""
        return Listeners(
            imap=tuple(self["imap"]), imaps=tuple(self["imaps"]), lmtp=tuple(self["lmtp"]),
            tls_cert=Path(self["tls-cert"]) if self["tls-cert"] else None,
            tls_key=Path(self["tls-key"]) if self["tls-key"] else None,
        )

    def default_mailboxes(self) -> tuple[tuple[str, str], ...]:
        """``Config.default_mailboxes`` with the --special-use names applied."""
        if self["no-default-mailboxes"]:
            return ()
        chosen = dict((use, name) for name, use in DEFAULT_MAILBOXES)
        chosen.update(self["special-use"])
        return tuple((name, use) for use, name in chosen.items() if name)


def run_serve(options: ServeOptions) -> int:
    """``imapd serve``: the server is assembled and run by ``imapd.app``."""
    from imapd import app

    return app.serve(options.config(), options.listeners(), options["log-level"],
                     workers=options["workers"], serve_args=options.argv)


# --- user management -----------------------------------------------------------

class _DataOptions(_Options):
    optParameters: list[list[Any]] = [
        ["data", "d", None, f"data directory (default ${DATA_ENV} or ./{DEFAULT_DATA_DIR})"],
        ["store", None, None, STORE_HELP],
    ]

    def postOptions(self) -> None:
        self["store"] = resolve_store(self["store"])

    def config(self) -> Config:
        return Config(data_dir=resolve_data_dir(self["data"]), store=self["store"])

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
    synopsis = "NAME [--data DIR] [--store URL]"


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
    optParameters: list[list[Any]] = _DataOptions.optParameters + [
        ["storage", None, None, "storage limit in bytes, or with K, M, G, T (x1024), or none"],
        ["messages", None, None, "message count limit, or none"],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        for key in ("storage", "messages"):
            if self[key] is not None:
                self[key] = parse_limit(self[key], key == "storage")


IMPORT_HELP = "Import users from a Dovecot passwd-file (user:{SCHEME}hash:...)"


class UserOptions(_Options):
    subCommands = [
        ["add", None, UserAddOptions, "Add a user (password prompted twice)"],
        ["passwd", None, UserPasswdOptions, "Change a user's password"],
        ["del", None, UserDelOptions, "Delete a user"],
        ["list", None, UserListOptions, "List users"],
        ["quota", None, UserQuotaOptions, "Show or set a user's quota (RFC 9208)"],
        ["import", None, UserImportOptions, IMPORT_HELP],
        ["import-passwd", None, UserImportOptions, "The same as import"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("user: give one of add, passwd, del, list, quota, import")


class DbInitOptions(_DataOptions):
    synopsis = "[--store URL] [--data DIR]"


class DbOptions(_Options):
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
    ]


class ImapdOptions(_Options):
    synopsis = "imapd (serve | user | db) [options]"
    subCommands = [
        ["serve", None, ServeOptions, "Run the IMAP server"],
        ["user", None, UserOptions, "Manage users (works while the server runs)"],
        ["db", None, DbOptions, "Create, upgrade or inspect the store's schema"],
        ["deliver", None, DeliverOptions, "Deliver one message from stdin (MTA mailbox_command)"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("give a command: serve, user or db")


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
    name = sub["name"]
    if command == "quota":
        if not db.exists(name):
            raise UserDatabaseError(f"no such user: {name!r}")
        return run_quota(sub, name)
    if command == "del":
        db.delete(name)
        print(f"imapd: deleted user {name}")
        return 0
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
    request = Request(recipient, options["from"], options["mailbox"])
    return app.deliver_command(options.config(), request, sys.stdin.buffer.read())


def main(argv: Sequence[str] | None = None) -> int:
    from imapd.app import StoreError, store_failure, store_of

    options = ImapdOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as error:
        print(f"imapd: {error} (see imapd --help)", file=sys.stderr)
        return 2
    try:
        if options.subCommand == "serve":
            return run_serve(options.subOptions)
        if options.subCommand == "db":
            return run_db(options.subOptions)
        if options.subCommand == "deliver":
            return run_deliver(options.subOptions)
        return run_user(options.subOptions)
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

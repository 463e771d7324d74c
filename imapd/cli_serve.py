"""Options of ``imapd serve`` and ``twistd imapd`` (``ServeOptions``), and
what every subcommand shares: the GNU-order ``usage.Options`` base, the
data directory and ``--store`` resolution. Apart from ``imapd.cli`` so each
stays one reader's length; ``imapd.cli`` re-exports these names.
"""

from __future__ import annotations

import getopt
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Sequence

from twisted.python import usage

from imapd import __version__
from imapd.config_file import CONFIG_HELP, expand
from imapd.app import DEFAULT_ENDPOINT, DEFAULT_IMAPS_ENDPOINT, Listeners
from imapd.core.config import (
    DEFAULT_MAILBOXES, SPECIAL_USES, SQLITE_STORE, Config, Limits, LmtpConfig, Pop3Config,
    StoreURLError, parse_store,
)
from imapd.core.errors import ImapError
from imapd.mail.names import normalize_name
from imapd.net.logs import LogSettings
from imapd.pop3.maildrop import UIDL_FORMATS

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
QUOTA_TEMPFAIL_HELP = ("over quota is a temporary failure (LMTP 452 4.2.2, deliver exit 75) "
                       "instead of a permanent one (552 5.2.2, exit 77): the MTA retries")
_POP3_LOGIN_DELAY: list[Any] = [
    "pop3-login-delay", None, None,
    "POP3 CAPA LOGIN-DELAY seconds to advertise (RFC 2449 §6.5; default: not advertised)", int]
# Where the log goes (imapd.net.logs; docs/operations.md § Logs).
_LOG_OPTIONS: list[list[Any]] = [
    ["log-file", None, None, "log to this file instead of stderr (see --log-rotate-size)"],
    ["log-rotate-size", None, 10 * 1024 * 1024,
     "rotate --log-file at this many bytes (0: never, e.g. logrotate with copytruncate)", int],
    ["log-rotate-keep", None, 5, "rotated log files kept (FILE.1, FILE.2, ...)", int],
]
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
    "auth-cache-ttl": ("auth_cache_ttl", float,
                       "seconds a verified password is accepted again without argon2 (0: off)"),
    "auth-cache-entries": ("auth_cache_entries", int, "logins the auth cache keeps at most"),
    "max-preauth-duration": ("max_preauth_duration", float,
                             "seconds a connection may stay unauthenticated"),
    "max-preauth-literal": ("max_preauth_literal", int, "largest literal before login, bytes"),
    "literal-spool-threshold": ("literal_spool_threshold", int,
                                "literals above this many bytes go to DATA/spool, not memory"),
}
_LIMIT_DEFAULTS = {f.name: f.default for f in fields(Limits)}

# LMTP settings (``LmtpConfig``) settable from the command line, as LIMIT_OPTIONS.
LMTP_OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "lmtp-separator": ("separator", str,
                       "subaddress separator: user+detail delivers into the folder detail "
                       "when it exists (RFC 5233); \"\" turns it off"),
    "lmtp-max-message": ("max_message", int, "largest message LMTP accepts, bytes (LHLO SIZE)"),
    "lmtp-max-recipients": ("max_recipients", int, "recipients per LMTP transaction"),
    "lmtp-max-line": ("max_line", int, "longest LMTP input line, bytes"),
    "lmtp-idle-timeout": ("idle_timeout", float, "idle seconds before an LMTP connection is closed"),
}
_LMTP_DEFAULTS = {f.name: f.default for f in fields(LmtpConfig)}


class BaseOptions(usage.Options):
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
        if "config=" in self.longOpt:  # the file's settings first: the command line wins
            argv = expand(self, argv)
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


class DataOptions(BaseOptions):
    """Options of a command that works on a data directory: ``--config``
    (its data and store settings apply: docs/configuration.md) and
    ``--data``. Twisted's usage merges a subclass's own optParameters with
    these."""

    optParameters: list[list[Any]] = [
        ["config", None, None, CONFIG_HELP],
        ["data", "d", None, f"data directory (default ${DATA_ENV} or ./{DEFAULT_DATA_DIR})"],
    ]

    def data_dir(self) -> Path:
        return resolve_data_dir(self["data"])


class StoreOptions(DataOptions):
    """``DataOptions`` and ``--store`` (checked for shape)."""

    optParameters: list[list[Any]] = [["store", None, None, STORE_HELP]]

    def postOptions(self) -> None:
        self["store"] = resolve_store(self["store"])

    def config(self) -> Config:
        return Config(data_dir=self.data_dir(), store=self["store"])


class ServeOptions(BaseOptions):
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
        ["pop3-no-seen", None, "POP3 RETR does not mark messages \\Seen"],
        ["no-default-mailboxes", None,
         "do not give new accounts Drafts, Sent, Trash, Junk and Archive (RFC 6154)"],
        ["quota-full-tempfail", None, QUOTA_TEMPFAIL_HELP],
        ["syslog", None, "log to the local syslog daemon (facility mail) instead of stderr"],
        ["allow-root", None, "keep running as root when started as root without --user "
                             "(also IMAPD_ALLOW_ROOT=1; unsafe)"],
    ]
    optParameters: list[list[Any]] = [
        ["config", None, None, CONFIG_HELP],
        ["data", "d", None, f"data directory (default ${DATA_ENV} or ./{DEFAULT_DATA_DIR})"],
        ["log-level", None, "info", "one of " + ", ".join(LOG_LEVELS)],
        *_LOG_OPTIONS,
        ["tls-cert", None, None,
         "PEM certificate (with its chain) for STARTTLS and IMAPS "
         "(default: a self-signed one generated in DATA/tls)"],
        ["tls-key", None, None, "PEM private key (default: in the --tls-cert file)"],
        ["metrics", None, None, "endpoint to serve Prometheus /metrics and /healthz on over HTTP, "
                                "e.g. tcp:9143:interface=127.0.0.1 (default: none)"],
        ["store", None, None, STORE_HELP],
        ["user", None, None, "started as root: bind the ports, then run as this user "
                             "(who then owns the data directory)"],
        ["group", None, None, "with --user: run with this group (default: the user's)"],
        ["pop3-uidl-format", None, "imapd",
         "POP3 UIDL format: imapd (UIDVALIDITY-UID) or dovecot (Dovecot's %08Xu%08Xv)"],
        ["pop3-expire", None, None,
         "POP3 CAPA EXPIRE to advertise (RFC 2449 §6.7): days or NEVER (default: not advertised)"],
        _POP3_LOGIN_DELAY,
        _WORKERS_OPTION,
    ] + [
        [name, None, None, f"{doc} (default {_LIMIT_DEFAULTS[field]})", kind]
        for name, (field, kind, doc) in LIMIT_OPTIONS.items()
    ] + [
        [name, None, None, f"{doc} (default {_LMTP_DEFAULTS[field]!r})", kind]
        for name, (field, kind, doc) in LMTP_OPTIONS.items()
    ]

    def __init__(self) -> None:
        super().__init__()
        self["imap"] = []
        self["imaps"] = []
        self["special-use"] = {}
        self["lmtp"] = []
        self["lmtp-domain"] = []
        self["pop3"] = []
        self["pop3s"] = []

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

    def opt_pop3(self, endpoint: str) -> None:
        """Endpoint to serve POP3 on (RFC 1939), e.g. tcp:110, repeatable (default: none, POP3 off)"""
        self["pop3"].append(endpoint)

    def opt_pop3s(self, endpoint: str) -> None:
        """Endpoint for POP3 over implicit TLS (RFC 8314), e.g. ssl:995, repeatable (default: none)"""
        self["pop3s"].append(endpoint)

    def postOptions(self) -> None:
        if self["pop3-uidl-format"] not in UIDL_FORMATS:
            raise usage.UsageError(f"--pop3-uidl-format must be one of {', '.join(UIDL_FORMATS)}")
        expire = self["pop3-expire"]
        if expire is not None and not (expire.isdigit() and expire.isascii() or expire == "NEVER"):
            raise usage.UsageError("--pop3-expire must be a number of days or NEVER")
        if self["pop3-login-delay"] is not None and self["pop3-login-delay"] < 0:
            raise usage.UsageError("--pop3-login-delay must not be negative")
        if not self["imap"]:
            self["imap"] = [DEFAULT_ENDPOINT]
        if not self["imaps"] and self["tls-cert"]:
            self["imaps"] = [DEFAULT_IMAPS_ENDPOINT]
        self["imaps"] = [e for e in self["imaps"] if e.lower() != "none"]
        from imapd.net.tls import TLSConfigError, tcp_description_for_implicit_tls

        from imapd.net.peer import split_proxy

        try:
            for endpoint in self["imaps"] + self["pop3s"]:
                tcp_description_for_implicit_tls(split_proxy(endpoint)[1])
        except TLSConfigError as error:
            raise usage.UsageError(str(error)) from None
        self._check_endpoints()
        self["store"] = resolve_store(self["store"])
        if self["workers"] < 1:
            raise usage.UsageError("--workers must be at least 1")
        if self["metrics"] and self["workers"] > 1:  # each worker would count only its own
            raise usage.UsageError("--metrics needs --workers 1")
        if self["tls-key"] and not self["tls-cert"]:
            raise usage.UsageError("--tls-key needs --tls-cert")
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        check_logs(self)
        limits = self.limits()
        if limits.listen_backlog < 1:
            raise usage.UsageError("--listen-backlog must be at least 1")
        if limits.auth_timeout < 30 * 60:
            raise usage.UsageError("--auth-timeout must be at least 1800 (RFC 3501 §5.4)")
        check_lmtp(self.lmtp())

    def lmtp(self) -> LmtpConfig:
        """``LmtpConfig`` from --lmtp-domain, --quota-full-tempfail and LMTP_OPTIONS."""
        overrides = {field: self[name] for name, (field, _, _) in LMTP_OPTIONS.items()
                     if self[name] is not None}
        return LmtpConfig(domains=tuple(self["lmtp-domain"]),
                          quota_full_tempfail=bool(self["quota-full-tempfail"]), **overrides)

    def _check_endpoints(self) -> None:
        """Each endpoint parses (``net.service.endpoint_problem``): a typo
        is a usage error (one line, exit status 2), not a traceback."""
        from imapd.net.service import endpoint_problem

        for option, tls in (("imap", False), ("imaps", True), ("lmtp", False),
                            ("pop3", False), ("pop3s", True)):
            for endpoint in self[option]:
                problem = endpoint_problem(endpoint, tls)
                if problem is not None:
                    raise usage.UsageError(f"--{option} {endpoint}: not an endpoint ({problem})")

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
            lmtp=self.lmtp(),
            pop3=Pop3Config(uidl_format=self["pop3-uidl-format"],
                            seen_on_retr=not self["pop3-no-seen"], expire=self["pop3-expire"],
                            login_delay=self["pop3-login-delay"]),
        )

    def listeners(self) -> Listeners:
        """The endpoints and certificate (``imapd.app.Listeners``)."""
        return Listeners(
            imap=tuple(self["imap"]), imaps=tuple(self["imaps"]), lmtp=tuple(self["lmtp"]),
            pop3=tuple(self["pop3"]), pop3s=tuple(self["pop3s"]), metrics=self["metrics"],
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


def check_lmtp(lmtp: LmtpConfig) -> None:
    """The LMTP settings' bounds (RFC 5321 §4.5.3.1: 100 recipients and
    1000-octet lines at least), one UsageError line each."""
    if lmtp.max_recipients < 100:
        raise usage.UsageError("--lmtp-max-recipients must be at least 100 (RFC 5321 §4.5.3.1.8)")
    if lmtp.max_line < 1000:
        raise usage.UsageError("--lmtp-max-line must be at least 1000 (RFC 5321 §4.5.3.1.6)")
    if lmtp.max_message < 1 or lmtp.idle_timeout <= 0:
        raise usage.UsageError("--lmtp-max-message and --lmtp-idle-timeout must be positive")
    if len(lmtp.separator) > 1 or lmtp.separator in ("@", " ", "\"", "<", ">"):
        raise usage.UsageError("--lmtp-separator must be one character other than @, space, \", <, >")


def check_logs(options: ServeOptions) -> None:
    """The log destination options (docs/operations.md § Logs)."""
    if options["log-file"] and options["syslog"]:
        raise usage.UsageError("--log-file and --syslog exclude each other")
    if options["log-rotate-size"] < 0 or options["log-rotate-keep"] < 1:
        raise usage.UsageError("--log-rotate-size must be >= 0 and --log-rotate-keep >= 1")


def log_settings(options: ServeOptions) -> LogSettings:
    """Where ``imapd serve`` logs, and from which level."""
    return LogSettings(
        level=options["log-level"], syslog=bool(options["syslog"]),
        file=Path(options["log-file"]).absolute() if options["log-file"] else None,
        rotate_size=options["log-rotate-size"], rotate_keep=options["log-rotate-keep"])


def run_serve(options: ServeOptions) -> int:
    """``imapd serve``: the server is assembled and run by ``imapd.app``."""
    from imapd import app
    from imapd.net import privileges

    listeners = options.listeners()
    endpoints = [*listeners.imap, *listeners.imaps, *listeners.lmtp, *listeners.pop3,
                 *listeners.pop3s, *([listeners.metrics] if listeners.metrics else [])]
    local = privileges.local_only(endpoints)
    allow_root = bool(options["allow-root"]) or privileges.allow_root_from_environment()
    try:  # whom to become after binding; root without --user is refused
        identity = privileges.plan(options["user"], options["group"], allow_root,
                                   local_only=local)
    except privileges.PrivilegeError as error:
        print(error, file=sys.stderr)
        return 2
    if identity is None and os.geteuid() == 0 and not allow_root and not options["user"]:
        print("imapd: warning: running as root, which only a server on loopback may do; "
              "for a service give --user NAME", file=sys.stderr)
    return app.serve(options.config(), listeners, log_settings(options),
                     workers=options["workers"], serve_args=options.argv, identity=identity)

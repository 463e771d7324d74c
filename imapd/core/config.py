"""Server configuration: every limit has a default here and can be overridden
from the command line. One frozen object is built at start-up and passed
down; nothing reads the environment later."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client can make the server hold or do."""

    max_line: int = 64 * KIB            # one command line, excluding literals
    max_literal: int = 64 * MIB         # one literal (APPEND message)
    max_command: int = 80 * MIB         # one whole command, lines plus literals
    # The text of one command without its literal octets: what the parser
    # tokenizes (about 0.5 us a byte), so this bounds the CPU one command can
    # take on the reactor before any handler runs (a command of thousands of
    # tiny literals is otherwise up to max_command of tokens).
    max_command_text: int = 256 * KIB
    max_nesting: int = 32               # parenthesis depth in one command
    max_bad_commands: int = 20          # BAD answers before BYE
    max_pipelined: int = 256            # parsed commands queued per connection
    max_connections: int = 4096         # open connections per process
    # Connections the kernel queues on a listening port before accept()
    # (capped by /proc/sys/net/core/somaxconn). Twisted's default of 50
    # made a burst of 5,000 connects leave ~4,000 handshaken clients that
    # were never accepted, so never greeted (issue 13).
    listen_backlog: int = 1024
    preauth_timeout: float = 60.0       # seconds, not authenticated state
    auth_timeout: float = 30 * 60.0     # seconds, RFC 3501 §5.4: at least 30 min
    failed_login_delay: float = 1.0     # seconds before NO [AUTHENTICATIONFAILED]
    # Security limits (issue 6; docs/security.md explains each).
    max_connections_per_ip: int = 64    # open connections from one address
    max_connections_per_user: int = 32  # logged-in sessions of one user
    auth_penalty_initial: float = 2.0   # seconds of delay after the first failure
    auth_penalty_max: float = 15.0      # cap of the doubling delay (as Dovecot)
    # Seconds a failure is remembered after the last one (Dovecot's penalty
    # is irrelevant after 2+4+8+15 s; an hour kept a shared address's users
    # waiting long after one typo).
    auth_penalty_window: float = 30.0
    auth_penalty_entries: int = 100_000  # addresses/users tracked at most
    # Auth cache (imapd.accounts.authcache): seconds a verified password
    # is accepted again without argon2 (0: off), and users kept at most.
    auth_cache_ttl: float = 300.0
    auth_cache_entries: int = 10_000
    max_preauth_duration: float = 300.0  # seconds a connection may stay unauthenticated
    max_preauth_literal: int = 16 * KIB  # one literal before login (a LOGIN password)
    # Literals larger than this go to an anonymous file in DATA/spool as
    # they arrive instead of memory (issue 6; imapd.core.spool).
    literal_spool_threshold: int = 256 * KIB


# RFC 6154 §2 uses a mailbox can be given (CREATE ... USE, defaults); \All
# and \Flagged describe virtual mailboxes, which this server does not have.
SPECIAL_USES: tuple[str, ...] = ("\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash")
DEFAULT_MAILBOXES: tuple[tuple[str, str], ...] = (
    ("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"),
    ("Junk", "\\Junk"), ("Archive", "\\Archive"),
)


@dataclass(frozen=True, slots=True)
class LmtpConfig:
    """LMTP delivery (RFC 2033, ``imapd serve --lmtp``): the accepted
    recipient ``domains`` (lower-case; empty: any), the subaddress
    ``separator`` ("" turns ``user+detail`` off), the SIZE limit (RFC 1870),
    recipients per transaction (RFC 5321 §4.5.3.1.8: at least 100), the
    longest input line and the idle timeout in seconds.
    ``quota_full_tempfail``: an over-quota recipient is a temporary failure
    (LMTP 452 4.2.2, ``imapd deliver`` 75) instead of a permanent one
    (552 5.2.2, 77), as Dovecot's ``quota_full_tempfail``; LMTP and
    ``imapd deliver`` both read it (``--quota-full-tempfail``)."""

    domains: tuple[str, ...] = ()
    separator: str = "+"
    max_message: int = 64 * MIB
    max_recipients: int = 100
    max_line: int = 64 * KIB
    idle_timeout: float = 300.0
    quota_full_tempfail: bool = False


@dataclass(frozen=True, slots=True)
class Pop3Config:
    """POP3 (RFC 1939, ``imapd serve --pop3``; docs/pop3.md): the UIDL
    format (``imapd``: ``<uidvalidity>-<uid>``; ``dovecot``: Dovecot's
    default ``%08Xu%08Xv``), whether RETR sets ``\\Seen``, the longest
    command line in octets with its CRLF (RFC 2449 §4 asks for at least
    255), and the RFC 2449 EXPIRE / LOGIN-DELAY values to advertise (None:
    not advertised)."""

    uidl_format: str = "imapd"
    seen_on_retr: bool = True
    max_line: int = 1024
    expire: str | None = None
    login_delay: int | None = None


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("imapd-data")
    limits: Limits = field(default_factory=Limits)
    server_name: str = "imapd"
    # RFC 3501 §6.2.3 / RFC 8314: plaintext LOGIN/AUTHENTICATE is refused on
    # an unencrypted, non-loopback connection unless this is set.
    allow_plaintext: bool = False
    # Loopback and UNIX-socket clients count as local (plaintext allowed);
    # False when a proxy on this host forwards remote clients.
    loopback_is_local: bool = True
    # RFC 2971 ID: the server answers with its name only; its version is
    # sent only when the operator allows it (versions help attackers, §7).
    id_send_version: bool = False
    # RFC 5802 §6 SCRAM-SHA-256-PLUS (channel binding) on TLS connections,
    # only when the operator asks (``--scram-plus``): clients that pick
    # -PLUS because it is offered but cannot bind (Debian's mutt with GNU
    # SASL) then fall back to LOGIN (docs/security.md).
    scram_plus: bool = False
    # RFC 6154 special-use mailboxes every new account gets, once, as
    # (name, attribute) pairs: every device then finds the same Drafts,
    # Sent, ... (``imapd serve --special-use``); () turns this off.
    default_mailboxes: tuple[tuple[str, str], ...] = DEFAULT_MAILBOXES
    # Where mail and users live (``--store``, ``parse_store``): "sqlite" (the
    # data directory) or a postgresql:// URL shared by several frontends.
    # The data directory still holds TLS certificates and the spool.
    store: str = "sqlite"
    lmtp: LmtpConfig = field(default_factory=LmtpConfig)
    pop3: Pop3Config = field(default_factory=Pop3Config)


# --- the mail and user store (``--store``) ------------------------------------

SQLITE_STORE = "sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres")


class StoreURLError(ValueError):
    """``--store`` is neither ``sqlite`` nor a ``postgresql://`` URL; the
    message is one line for the operator (never containing a password)."""


@dataclass(frozen=True, slots=True)
class StoreURL:
    """Where mail and users live: ``kind`` is ``"sqlite"`` (the data
    directory) or ``"postgresql"``; ``dsn`` is the libpq URL for the latter
    (``postgres://`` is libpq's other spelling), "" for SQLite."""

    kind: str
    dsn: str = ""

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"

    def redacted(self) -> str:
        """The URL as logs and messages show it: any password replaced."""
        return redact_dsn(self.dsn) if self.is_postgres else self.kind


def parse_store(text: str) -> StoreURL:
    """``sqlite`` (also empty) or ``postgresql://[user[:password]@][host][:port][/db][?...]``
    (``postgres://`` too). Only the shape is checked here; libpq checks the
    rest when connecting (``imapd.app`` turns its refusal into one line)."""
    value = text.strip()
    if value.lower() in ("", SQLITE_STORE):
        return StoreURL(SQLITE_STORE)
    scheme, sep, _ = value.partition("://")
    if sep and scheme.lower() in POSTGRES_SCHEMES:
        return StoreURL("postgresql", value)
    raise StoreURLError(
        f"--store {redact_dsn(value)}: use 'sqlite' or a postgresql://user@host/dbname URL")


_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@:]*):[^/?#]*@")
_PARAM_PASSWORD = re.compile(r"(?i)((?:^|[?&\s])password\s*=\s*)('[^']*'|[^&\s]*)")


def redact_dsn(dsn: str) -> str:
    """``dsn`` with the password of its user part (``user:secret@``) and
    any ``password=`` parameter (URL query or libpq keyword form) replaced
    by ``***``: what logs and error messages may show."""
    dsn = _URL_PASSWORD.sub(r"\1:***@", dsn)
    return _PARAM_PASSWORD.sub(r"\1***", dsn)

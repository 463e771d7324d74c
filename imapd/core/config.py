"""Server configuration: every limit has a default here and can be overridden
from the command line. One frozen object is built at start-up and passed
down; nothing reads the environment later."""

from __future__ import annotations

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

"""One POP3 session, I/O-free (RFC 1939 §3-§6): the AUTHORIZATION,
TRANSACTION and UPDATE states, each command's reply, the maildrop.

The session reads lines handed to ``run`` and writes through its ``Link``
(the connection: ``imapd.net.pop3_connection``). Logins go through the
``Authenticator`` every protocol shares (``imapd.accounts.authenticator``:
plaintext policy, penalties, the failure delay); ``imapd.pop3.auth`` has
USER/PASS and AUTH. Mail is read and changed through the mail core
(``MailService.open`` gives the INBOX watch):

* at login the maildrop is INBOX as committed then (``Maildrop``); the
  watch is read-write, so like Dovecot (default ``pop3_no_flag_updates =
  no``) a POP3 login takes the ``\\Recent`` claim of new messages;
* DELE only marks; QUIT (the UPDATE state, RFC 1939 §6) stores ``\\Seen``
  on retrieved messages (``seen_on_retr``) and expunges exactly the marked
  ones in one durable commit (``MailboxWatch.store_and_expunge``) before
  ``+OK``: IMAP sessions see the FETCHes and EXPUNGEs through the change
  feed at once.
  A connection that ends any other way changes nothing.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator, NamedTuple, Protocol

from twisted.logger import Logger

from imapd.core import telemetry
from imapd.accounts.authenticator import Authenticator, Client, plaintext_allowed
from imapd.mail.errors import MailError, StorageFull, Unavailable
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from imapd.pop3 import replies as r
from imapd.pop3.commands import Command, SyntaxProblem, parse_command
from imapd.pop3.maildrop import Entry, Maildrop

log = Logger(namespace="imapd.pop3")

MAILDROP = "INBOX"


class Link(Protocol):
    """What the session needs of its connection."""

    label: str
    peer_host: str

    @property
    def secure(self) -> bool: ...

    @property
    def local(self) -> bool: ...

    def tls_available(self) -> bool: ...

    def send(self, data: bytes | Iterator[bytes]) -> None: ...

    def read_continuation(self, prompt: bytes) -> Awaitable[bytes]: ...

    def start_tls(self) -> None: ...

    def user_session_count(self, user: str) -> int: ...

    def channel_bindings(self) -> dict[str, bytes]: ...


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    """``uidl_style``: ``imapd.pop3.maildrop.UIDL_FORMATS``; ``seen_on_retr``:
    RETR sets ``\\Seen`` (at QUIT); ``implementation``: the CAPA
    IMPLEMENTATION text; ``expire``/``login_delay``: advertised only when
    set (RFC 2449 §6.7, §6.5: policy the server announces, not enforces)."""

    uidl_style: str = "imapd"
    seen_on_retr: bool = True
    implementation: str = "imapd"
    allow_plaintext: bool = False
    sasl: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256")
    max_bad_commands: int = 20
    max_sessions_per_user: int = 32
    expire: str | None = None
    login_delay: int | None = None


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"  # QUIT ran (or the connection ended): nothing more


class Outcome(NamedTuple):
    """After one line: close the connection; the bad-command budget is spent."""

    close: bool = False
    too_many_bad: bool = False


class Bad(Exception):
    """A command the client got wrong: ``-ERR reason``, counted as bad."""


class Refused(Exception):
    """A valid command that fails: ``-ERR [code] reason``, not counted;
    ``close``: the session ends all the same (QUIT, RFC 1939 §6)."""

    def __init__(self, text: str, code: str | None = None, close: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.close = close


Handler = Callable[["Pop3Session", Command], Awaitable[bool]]
OK, ERR = "+OK", "-ERR"  # the verdicts (RFC 1939 §3)


def command_name(parsed: Command | SyntaxProblem) -> str:
    """The command's name for telemetry: a POP3 command, else ``UNKNOWN``
    (never what a client made up: the metrics' label set stays bounded)."""
    from imapd.pop3 import auth, transaction

    if isinstance(parsed, Command) and (
            parsed.name in auth.HANDLERS or parsed.name in transaction.HANDLERS):
        return parsed.name
    return "UNKNOWN"


class Pop3Session:
    """See the module docstring. ``mail`` None: no maildrop (protocol tests)."""

    def __init__(self, mail: MailService | None, authenticator: Authenticator,
                 settings: Pop3Settings, link: Link) -> None:
        self.mail = mail
        self.authenticator = authenticator
        self.settings = settings
        self.link = link
        self.state = State.AUTHORIZATION
        self.user: str | None = None
        self.pending_user: str | None = None  # after USER, before PASS
        self.maildrop: Maildrop | None = None
        self.watch: MailboxWatch | None = None
        self._bad = 0

    @property
    def authenticated(self) -> bool:
        return self.state is State.TRANSACTION

    @property
    def client(self) -> Client:
        return Client(self.link.peer_host, self.link.label)

    def plaintext_allowed(self) -> bool:
        return plaintext_allowed(self.link.secure, self.link.local, self.settings.allow_plaintext)

    def greeting(self) -> bytes:
        """RFC 1939 §4 (no APOP timestamp: APOP is not offered)."""
        return r.ok("POP3 server ready")

    # --- running one line --------------------------------------------------------

    async def run(self, line: bytes) -> Outcome:
        """Answer one command line (see the module docstring); its verdict
        (``+OK``/``-ERR``, RFC 1939 §3) and time go to the telemetry."""
        started = time.monotonic()
        parsed = parse_command(line)
        outcome, verdict = await self._answer(parsed)
        telemetry.sink().command_finished(
            "pop3", command_name(parsed), verdict, time.monotonic() - started)
        return outcome

    async def _answer(self, parsed: Command | SyntaxProblem) -> tuple[Outcome, str]:
        """The outcome of one parsed line and its verdict."""
        try:
            if isinstance(parsed, SyntaxProblem):
                raise Bad(parsed.reason)
            close = await self._dispatch(parsed)
        except Bad as bad:
            self.link.send(r.err(str(bad)))
            return self.count_bad(), ERR
        except Refused as refused:
            self.link.send(r.err(refused.text, refused.code))
            return Outcome(close=refused.close), ERR
        except (Unavailable, StorageFull) as error:
            log.info("{label}: store unavailable: {why}", label=self.link.label, why=error.text)
            self.link.send(r.err("Mail store temporarily unavailable", r.SYS_TEMP))
            return Outcome(), ERR
        except MailError as error:
            self.link.send(r.err(error.text, r.SYS_PERM))
            return Outcome(), ERR
        self._bad = 0
        return Outcome(close=close), OK

    def count_bad(self) -> Outcome:
        """One more bad command in a row (``max_bad_commands``, as IMAP's BAD)."""
        self._bad += 1
        return Outcome(too_many_bad=self._bad >= self.settings.max_bad_commands)

    async def _dispatch(self, command: Command) -> bool:
        """Run ``command`` in the current state; True when the session ends."""
        from imapd.pop3 import auth, transaction

        if self.state is State.AUTHORIZATION:
            table = auth.HANDLERS
        elif self.state is State.TRANSACTION:
            table = transaction.HANDLERS
        else:
            raise Bad("Session is ending")
        handler = table.get(command.name)
        if handler is None:
            known = command.name in auth.HANDLERS or command.name in transaction.HANDLERS
            raise Bad("Command not valid in this state" if known else "Unknown command")
        return await handler(self, command)

    # --- shared by both states -----------------------------------------------------

    def capabilities(self) -> list[str]:
        """CAPA (RFC 2449 §5, §6) for this state and link."""
        caps = ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"]
        if self.state is State.AUTHORIZATION:
            if self.plaintext_allowed():
                caps.append("USER")
                caps.append("SASL " + " ".join(self.settings.sasl))
            if self.link.tls_available() and not self.link.secure:
                caps.append("STLS")
        if self.settings.expire is not None:
            caps.append(f"EXPIRE {self.settings.expire}")
        if self.settings.login_delay is not None:
            caps.append(f"LOGIN-DELAY {self.settings.login_delay}")
        caps.append(f"IMPLEMENTATION {self.settings.implementation}")
        return caps

    async def capa(self, command: Command) -> bool:
        if command.args:
            raise Bad("CAPA takes no arguments")
        lines = [c.encode("utf-8") for c in self.capabilities()]
        self.link.send(b"".join(r.multiline(r.ok("Capability list follows"), lines)))
        return False

    async def quit_authorization(self, command: Command) -> bool:
        """QUIT before login: nothing to update (RFC 1939 §4)."""
        self.state = State.UPDATE
        self.link.send(r.ok("Logging out"))
        return True

    # --- entering TRANSACTION ----------------------------------------------------------

    async def log_in(self, user: str) -> None:
        """After the credentials were accepted: the per-user limit, then the
        maildrop snapshot; ``+OK``. A refusal leaves the session in the
        AUTHORIZATION state (RFC 1939 §7 PASS: the client may retry)."""
        if self.link.user_session_count(user) >= self.settings.max_sessions_per_user:
            log.info("{label}: per-user session limit reached", label=self.link.label)
            raise Refused("Too many sessions for this user", r.IN_USE)
        if self.mail is not None:
            watch = await self.mail.open(user, MAILDROP, readonly=False)
            try:
                records = await watch.fetch_records()
            except BaseException:
                watch.close()
                raise
            self.watch = watch
            self.maildrop = Maildrop(
                watch.uidvalidity, [Entry(rec.uid, rec.size) for rec in records],
                self.settings.uidl_style)
        else:
            self.maildrop = Maildrop(1, [], self.settings.uidl_style)
        self.user = user
        self.pending_user = None
        self.state = State.TRANSACTION
        log.info("{label}: logged in as {user}", label=self.link.label, user=user)
        count, octets = self.maildrop.stat()
        self.link.send(r.ok(f"Logged in, {count} messages ({octets} octets)"))

    def abort(self) -> None:
        """The connection ended without QUIT: nothing is changed (RFC 1939 §6)."""
        self.state = State.UPDATE
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    # --- the UPDATE state ------------------------------------------------------------

    async def update(self) -> None:
        """RFC 1939 §6, see the module docstring. Just the marked UIDs are
        expunged (RFC 4315 §2.1 UID EXPUNGE semantics), so messages an IMAP
        client flagged ``\\Deleted`` stay; ``\\Seen`` on the retrieved ones
        and the expunge are one durable commit."""
        self.state = State.UPDATE
        watch, drop = self.watch, self.maildrop
        if watch is None or drop is None:
            return
        try:
            seen = drop.seen_uids() if self.settings.seen_on_retr else []
            deleted = drop.deleted_uids()
            if seen or deleted:
                # One commit (one fsync) for the whole UPDATE state.
                await watch.store_and_expunge(seen, ["\\Seen"], deleted)
        finally:
            watch.close()
            self.watch = None

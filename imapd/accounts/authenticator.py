"""The login checks every protocol uses: IMAP LOGIN/AUTHENTICATE today,
POP3 USER/PASS and AUTH, and an admin interface next.

A protocol adapter (``imapd.imap.commands.auth``) reads the credentials off
its wire, asks the ``Authenticator``, and maps the ``Verdict`` to its own
answers (IMAP: NO/BAD with RFC 5530 codes; POP3 would answer -ERR). The
gates, in order, are the same for every protocol and mechanism:

1. Plaintext policy (RFC 3501 §6.2.3, RFC 8314 §4, RFC 2595 §2.3): a
   password may cross the network only over TLS, from this host, or when
   the operator allows it (``plaintext_allowed``; the adapter asks before
   it reads credentials, and advertises LOGINDISABLED by the same rule).
2. Brute-force penalty (``imapd.accounts.penalty``): a delay that grows with
   recent failures of the client's address or of the user name, waited out
   *before* the credentials are checked, the right ones included.
3. The check itself, off the reactor thread for passwords (argon2 is slow
   on purpose; ``Runtime.in_thread``). A failure is answered no sooner than
   ``Limits.failed_login_delay`` after the check started, whether the user
   exists or not, so answer and timing are the same for both.

Credentials are only ever held as ``Secret`` and are never logged; failed
attempts are logged with the client's label only (a mistyped password is
often typed into the name field, so the name is not logged either).

Every verdict is reported to the telemetry sink (``logged_in``: protocol,
mechanism, success; ``imapd.core.telemetry``), never with the name or secret.

A recently verified password is accepted again without argon2 when the
store the server hands in is wrapped in ``imapd.accounts.authcache``'s
``CachedLogins`` (``imapd.app.open_accounts``): the cache sits behind
``Credentials.verify``, so gates 2 and 3 stay as they are: a cached login
still waits out its penalty, and a wrong password misses the cache and
pays the full check and delay.

Nothing here knows a protocol's wire or imports the reactor: time and
threads come from the ``Runtime`` (``imapd.core.runtime``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

from twisted.logger import Logger

from imapd.accounts.penalty import LoginGuard
from imapd.accounts.scram import Failure, ScramExchange, ScramFailed, ScramKeys
from imapd.core.config import Limits
from imapd.core.model import Secret
from imapd.core.runtime import Runtime
from imapd.core.telemetry import sink

log = Logger(namespace="imapd.accounts")


class Credentials(Protocol):
    """What the checks need of the user database
    (``imapd.accounts.users.UserDatabase``): both calls may block."""

    def verify(self, name: str, password: Secret) -> bool: ...

    def scram_keys(self, name: str) -> ScramKeys | None: ...


@dataclass(frozen=True, slots=True)
class Client:
    """Who is logging in: ``address`` (the peer host) keys the penalty;
    ``label`` names the connection in log lines (e.g. ``session 7
    (192.0.2.1:4711)``), never the user name or a credential."""

    address: str
    label: str


class Outcome(enum.Enum):
    """How an attempt (or one step of a SASL exchange) ended."""

    OK = "ok"  # authenticated (or: the step succeeded, ``Verdict.data`` is next)
    FAILED = "failed"  # wrong credentials or unknown user: no detail, after the delay
    REFUSED = "refused"  # refused for a reason the client may see (RFC 5802 §6 binding)
    UNAUTHORIZED = "unauthorized"  # asked to act as another user (RFC 4616 §2 authzid)
    MALFORMED = "malformed"  # the client broke the mechanism's grammar (reason says how)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer of a check. ``user``: the authenticated (or, for a SASL
    step, claimed) name when ``OK``; ``reason``: for REFUSED and MALFORMED,
    text the client may see; ``data``: the server's next SASL message."""

    outcome: Outcome
    user: str | None = None
    reason: str = ""
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def plaintext_allowed(secure: bool, local: bool, allow_plaintext: bool) -> bool:
    """RFC 3501 §6.2.3, RFC 8314 §4: may a password be sent on this
    connection? Over TLS, from this host (loopback, UNIX socket, unless the
    operator says a local proxy forwards remote clients), or when the
    operator allows plaintext (``--allow-plaintext``)."""
    return secure or local or allow_plaintext


def may_act_as(authenticated: str, requested: str) -> bool:
    """SASL authorization identity (RFC 4616 §2, RFC 5802 §5.1): empty or
    the user itself; no proxy logins."""
    return not requested or requested == authenticated


def split_plain(message: bytes) -> tuple[str, str, Secret] | None:
    """RFC 4616 §2: ``[authzid] NUL authcid NUL passwd`` as (authzid,
    authcid, password); None when malformed (not three fields, an empty
    name or password, names not UTF-8)."""
    parts = message.split(b"\0")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    authzid, authcid, password = parts
    try:
        return authzid.decode("utf-8"), authcid.decode("utf-8"), Secret(password)
    except UnicodeDecodeError:
        return None


class Authenticator:
    """The gates of the module docstring over ``users``. ``guard``: the
    penalty tracker shared by every connection of the server (None: no
    penalties); ``now``: the clock the guard and the failure delay use;
    ``protocol``: the wing asking ("imap", "pop3"), for telemetry."""

    def __init__(
        self,
        users: Credentials,
        runtime: Runtime,
        limits: Limits,
        *,
        guard: LoginGuard | None = None,
        now: Callable[[], float] = lambda: 0.0,
        protocol: str = "imap",
    ) -> None:
        self.users = users
        self.runtime = runtime
        self.failed_login_delay = limits.failed_login_delay
        self.guard = guard
        self.now = now
        self.protocol = protocol

    async def check_password(self, client: Client, username: str, password: Secret,
                             mechanism: str = "LOGIN") -> Verdict:
        """Gates 2 and 3 for a name and password (IMAP LOGIN and SASL
        PLAIN, RFC 3501 §6.2.3, RFC 4616; POP3 USER/PASS, RFC 1939 §7).
        OK or FAILED; a success clears the name's and the address's
        penalty. ``mechanism`` names the attempt for telemetry."""
        await self.wait_penalty(client, username)
        started = self.now()
        if not await self.runtime.in_thread(self.users.verify, username, password):
            return await self.failed(client, username, started, mechanism)
        return self.succeeded(client, username, mechanism)

    def scram(
        self,
        client: Client,
        *,
        plus: bool = False,
        bindings: Mapping[str, bytes] | None = None,
        plus_offered: bool = False,
    ) -> ScramLogin:
        """A SCRAM-SHA-256 exchange (RFC 7677, RFC 5802 §5), or -PLUS bound
        to this TLS channel (``bindings`` by type, RFC 5929, RFC 9266;
        ``plus_offered``: -PLUS is advertised here, so a ``y`` client was
        downgraded, §6)."""
        exchange = ScramExchange(
            self.users.scram_keys, plus=plus, bindings=bindings, plus_offered=plus_offered)
        return ScramLogin(self, client, exchange,
                          "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256")

    async def wait_penalty(self, client: Client, username: str) -> None:
        """Gate 2: wait out the penalty of this address and this name."""
        if self.guard is None:
            return
        delay = self.guard.delay_for(client.address, username)
        if delay > 0:
            await self.runtime.sleep(delay)

    async def failed(self, client: Client, username: str, started: float,
                     mechanism: str) -> Verdict:
        """Record a wrong credential and answer FAILED once
        ``failed_login_delay`` has passed since ``started`` (so the time
        the check took, which differs between schemes and for unknown
        users, is hidden)."""
        if self.guard is not None:
            self.guard.record_failure(client.address, username)
        log.info("{client}: authentication failed", client=client.label)
        sink().logged_in(self.protocol, mechanism, False)
        remaining = self.failed_login_delay - (self.now() - started)
        if remaining > 0:
            await self.runtime.sleep(remaining)
        return Verdict(Outcome.FAILED)

    def succeeded(self, client: Client, username: str, mechanism: str) -> Verdict:
        """A success clears the penalty of the user and of its address
        (``LoginGuard.record_success``)."""
        if self.guard is not None:
            self.guard.record_success(client.address, username)
        sink().logged_in(self.protocol, mechanism, True)
        return Verdict(Outcome.OK, username)

    def refused(self, client: Client, username: str | None, reason: str,
                mechanism: str) -> Verdict:
        """An exchange refused for a reason the client may see: it counts
        as a failure for the penalty (when a name was given), without the
        delay (nothing secret was checked)."""
        if self.guard is not None and username is not None:
            self.guard.record_failure(client.address, username)
        log.info("{client}: SCRAM refused: {why}", client=client.label, why=reason)
        sink().logged_in(self.protocol, mechanism, False)
        return Verdict(Outcome.REFUSED, reason=reason)


class ScramLogin:
    """One server-side SCRAM exchange (RFC 5802 §5) through the gates:
    ``await first(client_first)`` then ``await final(client_final)``; each
    returns OK with ``data`` = the server message to send, or the failure;
    then ``done()`` when the protocol has completed the exchange.
    The penalty is waited out after client-first (the name is known only
    then) and before server-first is returned; a wrong proof is FAILED
    like a wrong password (delay, no detail)."""

    def __init__(self, authenticator: Authenticator, client: Client, exchange: ScramExchange,
                 mechanism: str = "SCRAM-SHA-256") -> None:
        self._auth = authenticator
        self._client = client
        self._exchange = exchange
        self._mechanism = mechanism

    @property
    def username(self) -> str | None:
        """The (SASLprep'd) name client-first claimed, once it was read."""
        return self._exchange.username

    async def first(self, client_first: bytes) -> Verdict:
        """The keys are looked up in a thread: the user store may be a
        database round trip away (``imapd.accounts.store``)."""
        try:
            username = self._exchange.begin(client_first)
            keys = await self._auth.runtime.in_thread(self._auth.users.scram_keys, username)
            server_first = self._exchange.answer_first(keys)
        except ScramFailed as failure:
            return await self._failed(failure, self._auth.now())
        await self._auth.wait_penalty(self._client, username)
        return Verdict(Outcome.OK, username, data=server_first)

    async def final(self, client_final: bytes) -> Verdict:
        started = self._auth.now()
        try:
            server_final = self._exchange.final(client_final)
        except ScramFailed as failure:
            return await self._failed(failure, started)
        return Verdict(Outcome.OK, self.username, data=server_final)

    def done(self) -> Verdict:
        """The protocol finished the exchange after server-final (IMAP: the
        client's empty answer, RFC 3501 §6.2.2): the login succeeded."""
        return self._auth.succeeded(self._client, self.username or "", self._mechanism)

    async def _failed(self, failure: ScramFailed, started: float) -> Verdict:
        """By kind (``imapd.accounts.scram.Failure``): a broken message or
        another identity answers at once; a refused binding counts for the
        penalty; a wrong proof is a wrong password."""
        if failure.kind is Failure.MALFORMED:
            sink().logged_in(self._auth.protocol, self._mechanism, False)
            return Verdict(Outcome.MALFORMED, reason=failure.reason)
        if failure.kind is Failure.AUTHORIZATION:
            sink().logged_in(self._auth.protocol, self._mechanism, False)
            return Verdict(Outcome.UNAUTHORIZED, reason=failure.reason)
        if failure.kind is Failure.REFUSED:
            return self._auth.refused(self._client, self.username, failure.reason,
                                      self._mechanism)
        return await self._auth.failed(self._client, self.username or "", started,
                                       self._mechanism)

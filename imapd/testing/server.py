"""``TestServer``: a real imapd in the test process, on loopback ports.

    with TestServer() as server:
        user = server.add_user("alice", "secret")
        server.seed("alice", "INBOX", b"Subject: hi\\r\\n\\r\\nbody\\r\\n", flags=["\\\\Seen"])
        with imaplib.IMAP4(*server.address) as client:
            client.login("alice", "secret")
            ...
        assert server.mailbox("INBOX").exists == 1

It is assembled from the server's own parts, as ``imapd serve`` assembles
them (``imapd.app``): the ``MailService`` over the memory store (default)
or SQLite in a data directory (``backend="sqlite"``), the IMAP factory
and, when asked for, the POP3 (RFC 1939) and LMTP (RFC 2033) factories on
the same store and users. Each listens on ``127.0.0.1`` port 0 (the kernel
picks a free port) on the shared reactor thread
(``imapd.testing.reactor``), behind a ``Wiretap`` that records every
connection's octets (``transcripts``), applies the ``faults`` and feeds the
strict ``checks``.

What differs from a production server, on purpose: users live in memory
with cheap password checks (``imapd.testing.users``); plaintext LOGIN is
allowed (loopback, RFC 3501 §6.2.3 lets the server decide); failed logins
are delayed briefly instead of seconds; there is no TLS (no STARTTLS, no
implicit TLS) in this version. ``options`` sets any field of
``imapd.core.config.Config`` or ``Limits`` by name
(``options={"max_line": 1000}``).

``stop()`` says BYE to open connections (RFC 3501 §7.1.5), closes them,
the listening ports and the store, and removes the data directory it made.
"""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Mapping

from imapd.core.config import Config, Limits
from imapd.mail.errors import TargetMissing
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.importer.source import stored_form
from imapd.testing import reactor as kit
from imapd.testing.inspect import MailboxState, mailbox_names, read_mailbox
from imapd.testing.seeding import MessageSource, messages_from
from imapd.testing.users import TestUsers

HOST = "127.0.0.1"
BACKENDS = ("memory", "sqlite")
CLOSE_WAIT = 2.0  # seconds open connections get to close after BYE before they are cut

# Test-friendly timing (see the module doc); anything here can be overridden by ``options``.
_TEST_LIMITS: dict[str, object] = {
    "failed_login_delay": 0.05, "auth_penalty_initial": 0.05, "auth_penalty_max": 0.2,
}


class ServerNotRunning(RuntimeError):
    """The test server was used before ``start()`` or after ``stop()``."""


@dataclass(frozen=True)
class MailUser:
    """A user of a test server: log in with ``name`` and ``password``."""

    name: str
    password: str
    server: TestServer

    def mailbox(self, name: str = "INBOX") -> MailboxState:
        """This user's mailbox ``name`` as stored now (``TestServer.mailbox``)."""
        return self.server.mailbox(name, user=self.name)

    def folders(self) -> list[str]:
        return self.server.folders(user=self.name)

    def seed(self, mailbox: str, *sources: MessageSource, flags: Iterable[str] = (),
             internal_date: datetime.datetime | None = None) -> list[int]:
        """``TestServer.seed`` for this user: the new messages' UIDs."""
        return self.server.seed(self.name, mailbox, *sources, flags=flags,
                                internal_date=internal_date)


def server_config(data_dir: Path, options: Mapping[str, object] | None) -> Config:
    """The server configuration: plaintext allowed, test timing, then
    ``options`` (a ``Config`` or ``Limits`` field each; ``TypeError``
    naming the unknown key otherwise)."""
    config_keys = {f.name for f in dataclasses.fields(Config)} - {"data_dir", "store", "limits"}
    limit_keys = {f.name for f in dataclasses.fields(Limits)}
    top: dict[str, Any] = {"allow_plaintext": True}
    limits: dict[str, Any] = dict(_TEST_LIMITS)
    for key, value in (options or {}).items():
        if key in config_keys:
            top[key] = value
        elif key in limit_keys:
            limits[key] = value
        else:
            raise TypeError(f"unknown imapd option {key!r}: not a field of "
                            "imapd.core.config.Config or Limits")
    return Config(data_dir=data_dir, limits=Limits(**limits), **top)


class TestServer:
    """See the module docstring. Public attributes once started: ``host``,
    ``imap_port``, ``pop3_port`` and ``lmtp_port`` (None unless enabled),
    ``users`` (a ``TestUsers``), ``faults`` (a ``FaultPlan``: add faults
    at any time), ``checks`` (a ``CheckSuite`` or None)."""

    __test__ = False  # not a test class, despite the name (pytest collects Test*)

    def __init__(self, *, backend: str = "memory", data_dir: Path | None = None,
                 pop3: bool = False, lmtp: bool = False, faults: Any = None,
                 checks: Any = None, options: Mapping[str, object] | None = None) -> None:
        from imapd.testing.faults import FaultPlan

        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.host = HOST
        self.imap_port = 0
        self.pop3_port: int | None = None
        self.lmtp_port: int | None = None
        self.users = TestUsers()
        self.faults = faults if faults is not None else FaultPlan()
        self.checks = checks
        self._options = dict(options or {})
        self._given_dir = data_dir
        self._want_pop3, self._want_lmtp = pop3, lmtp
        self._data_dir: Path | None = None
        self._own_dir = False
        self._mail: MailService | None = None
        self._factories: list[Any] = []
        self._ports: list[Any] = []
        self._wiretaps: list[Any] = []
        self._secrets: list[str] = []

    # --- life cycle ------------------------------------------------------------

    def start(self) -> TestServer:
        """Bind the ports and open the store; returns ``self``."""
        if self._mail is not None:
            return self
        if self._given_dir is not None:
            self._data_dir = self._given_dir
            self._data_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._data_dir = Path(tempfile.mkdtemp(prefix="imapd-testing-"))
            self._own_dir = True
        try:
            config = server_config(self._data_dir, self._options)
            kit.call(lambda: self._start(config))
        except BaseException:
            self.stop()  # whatever did start (a port, the store) is closed again
            raise
        return self

    async def _start(self, config: Config) -> None:
        """On the reactor: the store, the factories, the ports."""
        from imapd.app import lmtp_factory
        from imapd.net.imap_factory import ImapServerFactory
        from imapd.net.pop3_connection import Pop3Factory

        reactor = kit.reactor()
        self._mail = self._open_mail(config, reactor)
        imap = ImapServerFactory(config, self.users, mail=self._mail, clock=reactor)
        self.imap_port = self._listen("imap", imap, reactor)
        if self._want_pop3:
            pop3 = Pop3Factory(config, self.users, self._mail, clock=reactor,
                               guard=imap.login_guard)
            self.pop3_port = self._listen("pop3", pop3, reactor)
        if self._want_lmtp:
            lmtp = lmtp_factory(config, self._mail, self.users, reactor)
            self.lmtp_port = self._listen("lmtp", lmtp, reactor)

    def _open_mail(self, config: Config, reactor: Any) -> MailService:
        if self.backend == "sqlite":
            from imapd.app import open_mail

            return open_mail(config, reactor)
        from imapd.net.runtime import ReactorRuntime
        from imapd.storage.memory import MemoryBackend

        return MailService(MemoryBackend(), ReactorRuntime(reactor), config.default_mailboxes)

    def _listen(self, protocol: str, factory: Any, reactor: Any) -> int:
        from imapd.testing.wiretap import Wiretap

        wiretap = Wiretap(protocol, self.faults, self.checks, self, reactor)
        port = reactor.listenTCP(0, wiretap.wrap(factory), interface=HOST)
        self._factories.append(factory)
        self._wiretaps.append(wiretap)
        self._ports.append(port)
        return int(port.getHost().port)

    def stop(self) -> None:
        """BYE and close every connection, close the ports and the store,
        remove the data directory this server made. Idempotent."""
        if self._mail is None and not self._ports:
            self._remove_dir()
            return
        try:
            kit.call(self._stop, timeout=CLOSE_WAIT + 30)
        finally:
            self._mail = None
            self._remove_dir()

    async def _stop(self) -> None:
        from twisted.internet.defer import DeferredList
        from twisted.internet.task import deferLater

        reactor = kit.reactor()
        for factory in self._factories:
            factory.shutdown_connections()
        stopping = [port.stopListening() for port in self._ports]
        await DeferredList([d for d in stopping if d is not None])
        self._ports = []
        deadline = reactor.seconds() + CLOSE_WAIT
        while self._open_connections() and reactor.seconds() < deadline:
            await deferLater(reactor, 0.005, lambda: None)
        for connection in self._open_connections():  # a client that does not read: cut
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abortConnection()
        mail, self._mail = self._mail, None
        self._factories = []
        if mail is not None:
            await mail.close()

    def _open_connections(self) -> list[Any]:
        return [c for factory in self._factories for c in getattr(factory, "connections", ())]

    def _remove_dir(self) -> None:
        if self._own_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._own_dir = False

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._mail is not None

    @property
    def data_dir(self) -> Path | None:
        """The data directory (the SQLite store, the spool), while running."""
        return self._data_dir

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of IMAP: ``imaplib.IMAP4(*server.address)``."""
        return self.host, self.imap_port

    # --- users and records ----------------------------------------------------

    def add_user(self, name: str, password: str) -> MailUser:
        """A new user (``UserExists`` if taken); the password joins ``secrets``."""
        self.users.add_user(name, password)
        self._secrets.append(password)
        return MailUser(name, password, self)

    @property
    def secrets(self) -> list[str]:
        """Every password added: what transcripts redact."""
        return list(self._secrets)

    @property
    def transcripts(self) -> list[Any]:
        """Every connection's ``Transcript`` so far: IMAP, then POP3, then
        LMTP, each in accept order."""
        def collect() -> list[Any]:
            return [t for wiretap in self._wiretaps for t in wiretap.transcripts]

        return kit.call_sync(collect) if self.running else collect()

    def _only_user(self, user: str | None) -> str:
        if user is not None:
            return user
        names = self.users.names()
        if len(names) != 1:
            raise ValueError(f"say which user: the server has {len(names)} "
                             f"({', '.join(names) or 'none'})")
        return names[0]

    def _mail_service(self) -> MailService:
        if self._mail is None:
            raise ServerNotRunning("the test server is not running (start() it first)")
        return self._mail

    # --- the store, read and seeded from the test thread ------------------------

    def mailbox(self, name: str = "INBOX", user: str | None = None) -> MailboxState:
        """``user``'s mailbox as stored now (None: the only user);
        ``MailboxNotFound`` naming the existing ones."""
        who, mail = self._only_user(user), self._mail_service()
        return kit.call(lambda: read_mailbox(mail, who, name))

    def folders(self, user: str | None = None) -> list[str]:
        """``user``'s selectable mailboxes, INBOX first."""
        who, mail = self._only_user(user), self._mail_service()
        return kit.call(lambda: mailbox_names(mail, who))

    def create_mailbox(self, name: str, user: str | None = None) -> None:
        """CREATE ``name`` for ``user`` (RFC 3501 §6.3.3), superiors included."""
        who, mail = self._only_user(user), self._mail_service()
        kit.call(lambda: mail.create_mailbox(who, name))

    def seed(self, user: str, mailbox: str, *sources: MessageSource,
             flags: Iterable[str] = (), internal_date: datetime.datetime | None = None
             ) -> list[int]:
        """Deliver ``sources`` (``imapd.testing.seeding``) into ``user``'s
        ``mailbox`` through the mail core, as one APPEND of them all
        (MULTIAPPEND, RFC 3502); the mailbox is created if missing. Returns
        the new UIDs in order."""
        items = messages_from(sources, flags, internal_date)
        if not items:
            return []
        mail = self._mail_service()

        async def deliver() -> list[int]:
            try:
                result = await mail.deliver(user, mailbox, items)
            except TargetMissing:
                await mail.create_mailbox(user, mailbox)
                result = await mail.deliver(user, mailbox, items)
            return list(result.uids)

        return kit.call(deliver)

    # --- StoreActions (imapd.testing.faults): called by the wiretap on the reactor

    async def append_message(self, user: str, mailbox: str, raw: bytes) -> int:
        """A new message in ``user``'s ``mailbox`` as if another client had
        appended it; its UID."""
        result = await self._mail_service().deliver(user, mailbox, [AppendItem(stored_form(raw))])
        return result.uid

    async def expunge_message(self, user: str, mailbox: str, uid: int | None) -> int | None:
        """Expunge ``uid`` (None: the lowest UID) as another session would,
        ``\\Deleted`` then UID EXPUNGE (RFC 4315 §2.1); the UID expunged,
        or None when there was no such message."""
        mail = self._mail_service()
        entry = await mail.target_entry(user, mailbox)
        if uid is None:
            states = await mail.backend.fetch_flags(entry.ref)
            if not states:
                return None
            uid = states[0].uid
        await mail.backend.store_flags(entry.ref, [uid], FlagOp.ADD, ["\\Deleted"])
        expunged = await mail.backend.expunge(entry.ref, [uid])
        return expunged[0] if expunged else None

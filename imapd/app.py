"""The composition root: Config -> accounts -> backend -> mail -> listeners.

The one place that assembles a server, used by ``imapd serve``
(``imapd.cli``) and by the twistd plugin (``twisted/plugins``) alike, so
the two always serve the same thing:

1. accounts: the user database in the data directory (``imapd.accounts``);
2. the mail storage in the data directory (SQLite, ``imapd.storage.sqlite``)
   behind the ``MailService`` every protocol uses (``open_mail``);
3. the IMAP listeners: one ``ImapServerFactory`` shared by every ``--imap``
   endpoint and, wrapped in TLS, every ``--imaps`` endpoint (RFC 8314 §3.3),
   with one reloadable certificate (SIGHUP, ``imapd.net.tls``).

``build_service`` returns an ``IService``; starting it binds the ports,
stopping it says BYE to every client (RFC 3501 §7.1.5), closes the ports
and then the storage. ``serve`` runs it on the global reactor until
SIGTERM/SIGINT.

This module may import the reactor (it sits above ``net/``); nothing it
assembles does, except ``net/``.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from imapd.accounts.users import UserDatabase
from imapd.core.config import Config
from imapd.mail.service import MailService

log = Logger(namespace="imapd")

DEFAULT_ENDPOINT = "tcp:143"
DEFAULT_IMAPS_ENDPOINT = "ssl:993"  # RFC 8314 §7.3, when a certificate is given


@dataclass(frozen=True, slots=True)
class Listeners:
    """Where to listen and with which certificate. ``imap``: plain
    endpoints (STARTTLS offered, RFC 3501 §6.2.1); ``imaps``: implicit TLS
    (RFC 8314 §3.3). No ``tls_cert``: a self-signed certificate generated
    once in DATA/tls."""

    imap: tuple[str, ...] = (DEFAULT_ENDPOINT,)
    imaps: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (private to the user) on first run."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def open_accounts(config: Config) -> UserDatabase:
    """The user database of ``config.data_dir`` (re-read when the CLI
    changes it, so ``imapd user add`` works while the server runs)."""
    return UserDatabase.in_data_dir(config.data_dir)


def open_mail(config: Config, reactor: Any) -> MailService:
    """The mail service over the SQLite backend in ``config.data_dir``
    (the one place that opens the storage; ``config.default_mailboxes``
    are given to every account once, RFC 6154):
    writes and fsyncs on the backend's writer thread with group commit,
    results and change doorbells hopped back to the reactor thread
    (``reactor.callFromThread``); message analysis of large messages in
    the reactor's thread pool. Call on the reactor thread."""
    from twisted.internet.defer import Deferred

    from imapd.net.runtime import ReactorRuntime
    from imapd.storage.sqlite import open_backend

    backend = open_backend(config.data_dir, hop=reactor.callFromThread, make_waiter=Deferred)
    return MailService(backend, ReactorRuntime(reactor), config.default_mailboxes)


def build_service(
    config: Config, listeners: Listeners, reactor: Any, *, reload_on_hangup: bool = True
) -> Any:
    """Assemble the server (see the module docstring); the returned
    ``IService`` binds nothing until it is started. ``reload_on_hangup``:
    SIGHUP reloads the certificate (a process-wide signal handler, so it is
    installed from the main thread; in-process tests turn it off). Raises
    ``imapd.net.tls.TLSConfigError`` for an unusable certificate."""
    from imapd.net.imap_factory import ImapServerFactory
    from imapd.net.service import ListeningService, imap_listeners
    from imapd.net.tls import ServerTLS, ensure_certificate, install_reload_on_hangup

    ensure_data_dir(config.data_dir)
    users = open_accounts(config)
    tls = ServerTLS(ensure_certificate(config.data_dir, listeners.tls_cert, listeners.tls_key))
    if reload_on_hangup:
        install_reload_on_hangup(tls, reactor)
    mail = open_mail(config, reactor)
    factory = ImapServerFactory(config, users, mail=mail, clock=reactor, tls=tls)
    if not users.names():
        log.warn("imapd: no users yet; add one with: imapd user add NAME --data {data}",
                 data=str(config.data_dir))
    return ListeningService(
        imap_listeners(factory, listeners.imap, listeners.imaps), reactor,
        servers=[factory], backlog=config.limits.listen_backlog,
        close=factory.close_store)  # the mail service: its watches, then the backend


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


def serve(config: Config, listeners: Listeners, log_level: str) -> int:
    """``imapd serve``: run until SIGINT/SIGTERM (the reactor then stops
    the service, which says BYE to clients and closes ports and storage).
    Returns the exit status: 1 if the certificate or a port is unusable."""
    from imapd.net.runtime import global_reactor
    from imapd.net.service import ListenError
    from imapd.net.tls import TLSConfigError

    reactor = global_reactor()
    start_logging(log_level)
    install_stop_signals(reactor)  # before "listening" is logged: tests signal at once
    try:
        service = build_service(config, listeners, reactor)
    except TLSConfigError as error:
        print(f"imapd: {error}", file=sys.stderr)
        return 1
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

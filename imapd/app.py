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

import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from twisted.logger import Logger

from imapd.accounts.store import UserStore
from imapd.accounts.users import UserDatabase
from imapd.core.config import Config, StoreURL, StoreURLError, parse_store, redact_dsn
from imapd.mail.backend import MailBackend
from imapd.mail.service import MailService
from imapd.net.logs import LogSettings

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
    # LMTP (RFC 2033) for the MTA's local delivery: off unless asked for
    # (``--lmtp unix:/run/imapd/lmtp`` or a loopback TCP port).
    lmtp: tuple[str, ...] = ()
    # POP3 (RFC 1939) and POP3S (implicit TLS, RFC 8314 §3.3, port 995):
    # off unless asked for (``--pop3 tcp:110 --pop3s ssl:995``).
    pop3: tuple[str, ...] = ()
    pop3s: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Prometheus /metrics and /healthz over HTTP (``imapd.net.metrics``): off
    # unless asked for, and then best on loopback (``tcp:9143:interface=127.0.0.1``).
    metrics: str | None = None


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (private to the user) on first run."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class StoreError(Exception):
    """The store cannot be used: a bad ``--store`` URL, a database that
    cannot be reached, a schema that is missing or of another version.
    ``str()`` is one line for the operator, without the DSN's password;
    ``imapd serve`` prints it and exits with status 2."""


def store_of(config: Config) -> StoreURL:
    """``config.store`` parsed (``StoreError`` if it is not a store)."""
    try:
        return parse_store(config.store)
    except StoreURLError as error:
        raise StoreError(f"imapd: {error}") from None


def store_failure(store: StoreURL, error: BaseException) -> StoreError:
    """One line for a store that failed to open: the first line of the
    driver's message, with any password in it masked."""
    text = str(getattr(error, "detail", "") or error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return StoreError(f"imapd: store {store.redacted()}: {redact_dsn(first)}")


def open_user_store(config: Config, hasher: Any = None) -> UserStore:
    """The users of ``config``'s store (``imapd.accounts.store``): the file
    in the data directory, or the ``users`` table of the PostgreSQL
    database. Connects lazily; ``hasher`` (argon2) for new passwords."""
    store = store_of(config)
    if store.is_postgres:
        from imapd.storage.postgres.users import PostgresUserStore

        return PostgresUserStore(store.dsn, hasher)
    return UserDatabase.in_data_dir(config.data_dir, hasher)


def open_accounts(config: Config) -> UserStore:
    """The user store the server logs in against (``open_user_store``;
    the file is re-read when the CLI changes it, the database asked at
    each login, so ``imapd user add`` works while the server runs),
    behind the auth cache (``imapd.accounts.authcache``)."""
    from imapd.accounts.authcache import AuthCache, CachedLogins

    limits = config.limits
    return CachedLogins(open_user_store(config),
                        AuthCache(limits.auth_cache_ttl, limits.auth_cache_entries))


def check_store(config: Config) -> None:
    """Fail early with one line (``StoreError``) if ``config``'s store
    cannot be used: for PostgreSQL, connect and check the schema version
    (a parent of ``--workers`` checks once instead of N crashing workers).
    SQLite needs nothing: the data directory's store is created on open."""
    store = store_of(config)
    if not store.is_postgres:
        return
    import psycopg

    from imapd.storage.postgres import schema

    try:
        with psycopg.connect(store.dsn, autocommit=True, connect_timeout=10) as conn:
            schema.check(conn)
    except (psycopg.Error, schema.SchemaMismatch) as error:
        raise store_failure(store, error) from None


def open_mail(config: Config, reactor: Any) -> MailService:
    """The mail service over the backend ``config.store`` names (the one
    place that opens the storage; ``config.default_mailboxes`` are given
    to every account once, RFC 6154): SQLite in ``config.data_dir`` or
    the PostgreSQL database. Writes run on the backend's threads, results
    and change doorbells hop back to the reactor thread
    (``reactor.callFromThread``); message analysis of large messages in
    the reactor's thread pool. Call on the reactor thread. ``StoreError``
    (one line) when the store cannot be opened."""
    from twisted.internet.defer import Deferred

    from imapd.net.runtime import ReactorRuntime

    store = store_of(config)
    backend: MailBackend
    if store.is_postgres:
        backend = _open_postgres(store, reactor)
    else:
        from imapd.storage.sqlite import open_backend

        backend = open_backend(config.data_dir, hop=reactor.callFromThread, make_waiter=Deferred)
    return MailService(backend, ReactorRuntime(reactor), config.default_mailboxes)


def _open_postgres(store: StoreURL, reactor: Any) -> MailBackend:
    import psycopg
    from twisted.internet.defer import Deferred

    from imapd.mail.errors import MailError
    from imapd.storage import postgres

    try:
        backend: MailBackend = postgres.open_backend(
            store.dsn, hop=reactor.callFromThread, make_waiter=Deferred)
    except (psycopg.Error, postgres.SchemaMismatch, MailError) as error:
        raise store_failure(store, error) from None
    log.info("imapd: mail store {store}", store=store.redacted())
    return backend


def db_command(command: str, config: Config) -> tuple[str, int]:
    """``imapd db init|migrate|version``: (the line to print, exit status).
    PostgreSQL: the schema functions of ``imapd.storage.postgres.schema``
    (``StoreError`` when the database cannot be reached or refuses).
    SQLite creates and upgrades its schema itself whenever a server opens
    the data directory, so ``init``/``migrate`` do exactly that and
    ``version`` reads it without creating anything."""
    store = store_of(config)
    if store.is_postgres:
        return _postgres_db_command(command, store)
    from imapd.storage.sqlite import schema as sqlite_schema

    path = config.data_dir / sqlite_schema.DB_FILENAME
    if command == "version":
        version = _sqlite_version(path)
        if version is None:
            return (f"imapd: no store at {path} yet (created with schema version "
                    f"{sqlite_schema.SCHEMA_VERSION} when the server first starts)", 1)
        return f"imapd: store {path}: schema version {version}", 0
    ensure_data_dir(config.data_dir)
    try:
        sqlite_schema.connect(config.data_dir).close()
    except Exception as error:  # sqlite3.Error, an unknown schema version
        raise StoreError(f"imapd: store {path}: {error}") from None
    return (f"imapd: store {path}: schema version {sqlite_schema.SCHEMA_VERSION} "
            f"(SQLite creates and upgrades it whenever the server opens it)", 0)


def _sqlite_version(path: Path) -> int | None:
    import sqlite3

    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as error:
        raise StoreError(f"imapd: store {path}: {error}") from None


def _postgres_db_command(command: str, store: StoreURL) -> tuple[str, int]:
    import psycopg

    from imapd.storage.postgres import schema

    where = f"imapd: store {store.redacted()}"
    try:
        if command == "init":
            schema.init(store.dsn)
            return f"{where}: schema version {schema.SCHEMA_VERSION}", 0
        if command == "migrate":
            return f"{where}: schema version {schema.migrate(store.dsn)}", 0
        version = schema.current_version(store.dsn)
    except (psycopg.Error, schema.SchemaMismatch) as error:
        raise store_failure(store, error) from None
    if version is None:
        return f"{where}: no imapd schema (run 'imapd db init')", 1
    known = "" if version == schema.SCHEMA_VERSION else (
        f" (this imapd needs {schema.SCHEMA_VERSION}: "
        + ("run 'imapd db migrate')" if version < schema.SCHEMA_VERSION else "upgrade imapd)"))
    return f"{where}: schema version {version}{known}", 0 if not known else 1


def build_service(
    config: Config, listeners: Listeners, reactor: Any, *, reload_on_hangup: bool = True,
    inherited: Sequence[int] | None = None,
) -> Any:
    """Assemble the server (see the module docstring); the returned
    ``IService`` binds nothing until it is started. ``reload_on_hangup``:
    SIGHUP reloads the certificate (a process-wide signal handler, so it is
    installed from the main thread; in-process tests turn it off).
    ``inherited``: listening descriptors bound by a ``--workers`` parent,
    one per listener (IMAP, IMAPS, LMTP, POP3, POP3S in turn), adopted instead of bound. Raises
    ``imapd.net.tls.TLSConfigError`` for an unusable certificate and
    ``StoreError`` for an unusable store."""
    from imapd.net.imap_factory import ImapServerFactory
    from imapd.net.admin import AdminListener
    from imapd.net.logs import SessionLog
    from imapd.net.ops import OperatedService, metrics_site
    from imapd.net.service import imap_listeners
    from imapd.net.tls import ServerTLS, ensure_certificate, install_reload_on_hangup

    check_store(config)  # before anything is made in the data directory
    ensure_data_dir(config.data_dir)
    tls = ServerTLS(ensure_certificate(config.data_dir, listeners.tls_cert, listeners.tls_key))
    mail = open_mail(config, reactor)
    users = open_accounts(config)
    try:
        names = users.names()
    except Exception as error:  # the user table of a database that just went away
        users.close()
        raise store_failure(store_of(config), error) from None
    if reload_on_hangup:
        install_reload_on_hangup(tls, reactor)
    factory = ImapServerFactory(config, users, mail=mail, clock=reactor, tls=tls)
    if not names:
        log.warn("imapd: no users yet; add one with: imapd user add NAME --data {data}",
                 data=str(config.data_dir))

    async def close() -> None:
        await factory.close_store()  # the mail service: its watches, then the backend
        users.close()

    bound = imap_listeners(factory, listeners.imap, listeners.imaps)
    servers: list[Any] = [factory]
    bound += wing_listeners(config, listeners, factory, servers, reactor)
    admin = AdminListener(config.data_dir, servers, own=inherited is not None)
    # Telemetry (imapd.core.telemetry), installed while serving: the
    # per-session log line (imapd.net.logs), the metrics when asked for.
    sinks: list[Any] = [SessionLog()]
    http = metrics_site(config, listeners.metrics, sinks, reactor) if listeners.metrics else None
    return OperatedService(
        bound, reactor, servers=servers, backlog=config.limits.listen_backlog, close=close,
        inherited=inherited, admin=admin, metrics=http, telemetry=sinks)


def wing_listeners(config: Config, listeners: Listeners, imap: Any, servers: list[Any],
                   reactor: Any) -> list[Any]:
    """The LMTP and POP3 listeners asked for, on the IMAP factory's mail
    service, user store, certificate and login guard (penalties shared
    across protocols); each wing's factory is appended to ``servers``."""
    from imapd.net.service import Listener

    bound: list[Any] = []
    if listeners.lmtp:
        lmtp = lmtp_factory(config, imap.mail, imap.users, reactor)
        bound += [Listener("LMTP", d, lmtp) for d in listeners.lmtp]
        servers.append(lmtp)
    if listeners.pop3 or listeners.pop3s:
        from imapd.net.pop3_connection import Pop3Factory

        pop3 = Pop3Factory(config, imap.users, imap.mail, clock=reactor, tls=imap.tls,
                           guard=imap.login_guard)
        bound += [Listener("POP3", d, pop3) for d in listeners.pop3]
        bound += [Listener("POP3S", d, pop3, tls=imap.tls) for d in listeners.pop3s]
        servers.append(pop3)
    return bound


def lmtp_factory(config: Config, mail: MailService, users: UserStore, reactor: Any) -> Any:
    """The factory every ``--lmtp`` endpoint shares (``imapd.net.lmtp_connection``)."""
    import socket

    from imapd.lmtp.session import LmtpSettings
    from imapd.net.lmtp_connection import LmtpFactory

    options = config.lmtp
    settings = LmtpSettings(
        hostname=socket.getfqdn() or config.server_name, domains=options.domains,
        separator=options.separator, max_message=options.max_message,
        max_recipients=options.max_recipients, spool_dir=config.data_dir / "spool",
        quota_full_tempfail=options.quota_full_tempfail)
    return LmtpFactory(mail, users, settings, reactor, max_line=options.max_line,
                       idle=options.idle_timeout,
                       max_connections=config.limits.max_connections)


def deliver_command(config: Config, request: Any, raw: bytes) -> int:
    """``imapd deliver``: store one message (``imapd.lmtp.lda``) and return
    its sysexits status. Runs the reactor just for this (the storage
    engines hop results back to it). Whatever goes wrong on our side (a
    store that cannot be opened, a data directory that cannot be made, an
    unexpected error) is EX_TEMPFAIL, never EX_SOFTWARE: an MTA bounces
    mail on any status but 75, and ours is the trouble to fix, not the
    message's (Dovecot's LDA answers the same). Works beside a running server:
    its sessions learn of the message by the engine's change detection."""
    from twisted.internet.defer import Deferred

    from imapd.lmtp import lda
    from imapd.net.runtime import ReactorRuntime, global_reactor

    try:
        message = lda.prepare(raw, request.sender, config.lmtp.max_message)
    except lda.BadMessage as error:
        print(f"imapd deliver: {error}", file=sys.stderr)
        return lda.EX_CANTCREAT
    reactor = global_reactor()
    outcome: list[tuple[int, str]] = []

    async def run() -> tuple[int, str]:
        try:
            check_store(config)
            if not store_of(config).is_postgres:  # PostgreSQL needs no data directory: an MTA
                ensure_data_dir(config.data_dir)  # runs the LDA as the recipient, often in a cwd it can't write
            mail = open_mail(config, reactor)
        except StoreError as error:
            return lda.EX_TEMPFAIL, str(error)
        except OSError as error:  # e.g. the data directory cannot be made
            return lda.EX_TEMPFAIL, f"imapd deliver: {error}"
        users = open_user_store(config)
        runtime = ReactorRuntime(reactor)
        try:
            return await lda.deliver(
                mail, lambda name: runtime.in_thread(users.exists, name), request, message,
                quota_tempfail=config.lmtp.quota_full_tempfail)
        except Exception as error:  # the store went away mid-delivery
            return lda.EX_TEMPFAIL, f"imapd deliver: {error}"
        finally:
            await mail.close()
            users.close()

    def done(result: Any) -> None:
        outcome.append(result if isinstance(result, tuple) else
                       (lda.EX_TEMPFAIL, f"imapd deliver: {result.getErrorMessage()}"))
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(run()).addBoth(done))
    reactor.run(installSignalHandlers=False)
    status, text = outcome[0] if outcome else (lda.EX_TEMPFAIL, "imapd deliver: interrupted")
    if text:
        print(text, file=sys.stderr)
    return status


class _StdlibToTwisted(logging.Handler):
    """Hands records of Python's ``logging`` (the storage engines log with
    it: they know no Twisted) to Twisted's logger, so they come out as the
    same timestamped, levelled lines as everything else."""

    _LEVELS = ((logging.CRITICAL, "critical"), (logging.ERROR, "error"),
               (logging.WARNING, "warn"), (logging.INFO, "info"))

    def emit(self, record: logging.LogRecord) -> None:
        from twisted.logger import LogLevel

        name = next((n for at, n in self._LEVELS if record.levelno >= at), "debug")
        try:
            text = self.format(record)
        except Exception:  # a broken format string must not kill the caller
            text = str(record.msg)
        Logger(namespace=record.name).emit(LogLevel.levelWithName(name), "{text}", text=text)


def bridge_stdlib_logging() -> None:
    """Route Python ``logging`` into Twisted's logger (once per process)."""
    root = logging.getLogger()
    if not any(isinstance(h, _StdlibToTwisted) for h in root.handlers):
        root.addHandler(_StdlibToTwisted())
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def start_logging(settings: str | LogSettings) -> None:
    """Twisted's logger to stderr, a rotated file or syslog, filtered by
    level (``imapd.net.logs``; a level name alone: stderr); Python
    ``logging`` records go through it too."""
    from imapd.net import logs

    logs.begin(logs.LogSettings(level=settings) if isinstance(settings, str) else settings)
    bridge_stdlib_logging()


def serve(
    config: Config, listeners: Listeners, log_level: str | LogSettings, *,
    workers: int = 1, serve_args: Sequence[str] = (), identity: Any = None,
) -> int:
    """``imapd serve``: run until SIGINT/SIGTERM (the reactor then stops
    the service, which says BYE to clients and closes ports and storage).
    ``workers`` > 1: bind here and supervise that many worker processes
    (``imapd.net.workers``) running ``imapd serve SERVE_ARGS``. ``identity``
    (``imapd.net.privileges``): whom to become once the ports are bound.
    Returns the exit status: 2, with one line on stderr and no traceback,
    if the store, the certificate, a port or the data directory is unusable."""
    from imapd.net import privileges
    from imapd.net import workers as worker_processes
    from imapd.net.runtime import global_reactor
    from imapd.net.service import ListenError
    from imapd.net.tls import TLSConfigError

    reactor = global_reactor()
    start_logging(log_level)
    spec = worker_processes.worker_spec()
    if spec is None and workers > 1:
        return supervise(config, listeners, reactor, workers, serve_args, identity)
    install_stop_signals(reactor)  # before "listening" is logged: tests signal at once
    try:
        if identity is None:
            privileges.check_data_dir(config.data_dir)
        service = build_service(config, listeners, reactor,
                                inherited=spec.fds if spec is not None else None)
    except TLSConfigError as error:
        print(f"imapd: {error}", file=sys.stderr)
        return 2
    except (StoreError, privileges.PrivilegeError) as error:
        print(error, file=sys.stderr)
        return 2
    try:
        service.startService()
        privileges.become(config.data_dir, identity)  # bound: root is no longer needed
    except (ListenError, privileges.PrivilegeError) as error:
        print(error, file=sys.stderr)
        return 2
    if spec is not None:
        log.info("imapd: worker {i}/{n} (pid {pid}) serving", i=spec.index, n=spec.count,
                 pid=os.getpid())
        worker_processes.report_ready(spec)
        worker_processes.watch_parent(reactor, spec)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0


def supervise(
    config: Config, listeners: Listeners, reactor: Any, count: int, serve_args: Sequence[str],
    identity: Any = None,
) -> int:
    """The ``--workers`` parent: check what every worker would trip over
    (the store, the certificate, the ports) once, with the same one-line
    errors and exit statuses, then bind and run the ``Supervisor``. With
    ``identity`` the parent stays root, like Dovecot's and Postfix's masters
    (it restarts workers and never reads a client's byte); each worker
    becomes the user once it has adopted the ports."""
    from imapd.net import privileges
    from imapd.net import workers as worker_processes
    from imapd.net.service import ListenError
    from imapd.net.tls import TLSConfigError, ensure_certificate

    try:
        check_store(config)
        if identity is None:
            privileges.check_data_dir(config.data_dir)
    except (StoreError, privileges.PrivilegeError) as error:
        print(error, file=sys.stderr)
        return 2
    ensure_data_dir(config.data_dir)
    try:
        # Made once here, so the workers find it instead of racing to create it.
        ensure_certificate(config.data_dir, listeners.tls_cert, listeners.tls_key)
    except TLSConfigError as error:
        print(f"imapd: {error}", file=sys.stderr)
        return 2
    # In build_service's listener order: the workers adopt them in turn.
    wanted = [("IMAP", d, False) for d in listeners.imap] + [
        ("IMAPS", d, True) for d in listeners.imaps] + [
        ("LMTP", d, False) for d in listeners.lmtp] + [
        ("POP3", d, False) for d in listeners.pop3] + [
        ("POP3S", d, True) for d in listeners.pop3s]
    try:
        sockets = worker_processes.bind_all(reactor, wanted, config.limits.listen_backlog)
    except ListenError as error:
        print(error, file=sys.stderr)
        return 2
    command = worker_processes.worker_command(serve_args)
    return worker_processes.Supervisor(command, sockets, count).run()


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


def run_with_mail(config: Config, work: Callable[[Any], Any]) -> Any:
    """Run ``await work(mail_service)`` on a reactor started for it (the
    store's threads hop results back to it), then close the store."""
    from twisted.internet.defer import Deferred

    from imapd.net.runtime import global_reactor

    reactor = global_reactor()
    outcome: list[Any] = []

    async def main() -> Any:
        mail = open_mail(config, reactor)
        try:
            return await work(mail)
        finally:
            await mail.close()

    def done(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(main()).addBoth(done))
    reactor.run(installSignalHandlers=False)
    result = outcome[0]
    if hasattr(result, "raiseException"):  # a Failure: the original error
        result.raiseException()
    return result

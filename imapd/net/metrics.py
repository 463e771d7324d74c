"""Prometheus metrics and the health check, served over HTTP when the
operator asks for them (``imapd serve --metrics tcp:9143:interface=127.0.0.1``).

``PrometheusTelemetry`` is a ``imapd.core.telemetry.Telemetry``: the
server's events become counters, gauges and histograms in its own
``CollectorRegistry`` (prometheus_client's metrics are thread-safe, so the
storage engines' writer threads may report commits directly). Names follow
Dovecot's OpenMetrics export where Dovecot has one (``auth_successes``,
``auth_failures``, ``imap_command`` grouped by command and reply state,
``mail_delivery``), with the ``imapd_`` prefix.

Label values a client chooses (a command name, a SASL mechanism) are
bounded: at most ``MAX_LABEL_VALUES`` distinct ones per label, of a plain
shape; anything else counts as ``OTHER``, so a client sending a million
made-up commands costs one series, not a million.

``site`` builds the HTTP side: ``/metrics`` (the text exposition format)
and ``/healthz``: 200 ``ok`` when the store answers a trivial read within
``HEALTH_TIMEOUT`` seconds, 503 with the reason otherwise. The read opens
the store afresh (a new SQLite read-only connection, a new PostgreSQL
connection), so it notices a file that became unreadable or a database
that went away, which the server's long-lived connections may not yet
have; concurrent checks share one read, so polling cannot pile up threads.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from imapd.core.telemetry import SessionSummary

log = Logger(namespace="imapd.metrics")

MAX_LABEL_VALUES = 64
HEALTH_TIMEOUT = 5.0
_PLAIN = re.compile(r"[A-Z][A-Z0-9 _.-]{0,31}\Z")
_VERDICT = re.compile(r"[+-]?[A-Z0-9]{1,8}\Z")  # OK, NO, BAD, +OK, -ERR, 250, 4XX
# Command latency: sub-millisecond NOOPs to minute-long FETCHes of big mail.
_LATENCY = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
_COMMIT = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _Bounded:
    """The label values seen so far for one label (see the module
    docstring); thread-safe."""

    def __init__(self, limit: int = MAX_LABEL_VALUES, shape: re.Pattern[str] = _PLAIN) -> None:
        self.limit = limit
        self.shape = shape
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = value.upper()
        if value in self.seen:
            return value
        if not self.shape.match(value):
            return "OTHER"
        with self.lock:
            if len(self.seen) >= self.limit:
                return "OTHER"
            self.seen.add(value)
        return value


class PrometheusTelemetry:
    """The events as Prometheus metrics (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(namespace="", registry=r)  # CPU, memory, descriptors
        self.connections = Gauge("imapd_client_connections", "Open client connections",
                                 ["protocol"], registry=r)
        self.connections_opened = Counter("imapd_client_connections_opened",
                                          "Client connections accepted", ["protocol"], registry=r)
        self.connections_closed = Counter(
            "imapd_client_connections_closed", "Client connections closed, by why",
            ["protocol", "reason"], registry=r)
        self.bytes_in = Counter("imapd_client_received_bytes",
                                "Bytes read from clients (counted as connections close)",
                                ["protocol"], registry=r)
        self.bytes_out = Counter("imapd_client_sent_bytes",
                                 "Bytes written to clients (counted as connections close)",
                                 ["protocol"], registry=r)
        self.auth_successes = Counter("imapd_auth_successes", "Successful logins",
                                      ["protocol", "mechanism"], registry=r)
        self.auth_failures = Counter("imapd_auth_failures", "Failed logins",
                                     ["protocol", "mechanism"], registry=r)
        self.commands = Counter("imapd_command", "Commands answered, by verdict",
                                ["protocol", "cmd_name", "reply_state"], registry=r)
        self.command_seconds = Histogram("imapd_command_duration_seconds",
                                         "Command latency", ["protocol", "cmd_name"],
                                         buckets=_LATENCY, registry=r)
        self.idle = Gauge("imapd_idle_sessions", "Sessions in IMAP IDLE (RFC 2177)", registry=r)
        self.deliveries = Counter("imapd_mail_delivery", "Deliveries, per recipient",
                                  ["via", "outcome"], registry=r)
        self.commit_seconds = Histogram("imapd_store_commit_duration_seconds",
                                        "Store commit latency", ["engine"],
                                        buckets=_COMMIT, registry=r)
        self.commit_changes = Histogram("imapd_store_commit_changes",
                                        "Changes per store commit (group commit batch)",
                                        ["engine"], buckets=_BATCH, registry=r)
        self._command = _Bounded()
        self._mechanism = _Bounded()
        self._reason = _Bounded()
        self._result = _Bounded(shape=_VERDICT)

    # --- Telemetry ---------------------------------------------------------------
    # Each event swallows its own errors: the contract says a sink never raises.

    def connection_opened(self, protocol: str, peer: str) -> None:
        try:
            self.connections.labels(protocol).inc()
            self.connections_opened.labels(protocol).inc()
        except Exception:
            log.failure("metrics: connection_opened")

    def connection_closed(self, summary: SessionSummary) -> None:
        try:
            protocol = summary.protocol
            self.connections.labels(protocol).dec()
            reason = self._reason(summary.reason.replace(" ", "_")).lower()
            self.connections_closed.labels(protocol, reason).inc()
            self.bytes_in.labels(protocol).inc(max(0, summary.bytes_in))
            self.bytes_out.labels(protocol).inc(max(0, summary.bytes_out))
        except Exception:
            log.failure("metrics: connection_closed")

    def logged_in(self, protocol: str, mechanism: str, success: bool) -> None:
        try:
            counter = self.auth_successes if success else self.auth_failures
            counter.labels(protocol, self._mechanism(mechanism)).inc()
        except Exception:
            log.failure("metrics: logged_in")

    def command_finished(self, protocol: str, command: str, result: str,
                         seconds: float) -> None:
        try:
            name = self._command(command)
            self.commands.labels(protocol, name, self._result(result)).inc()
            self.command_seconds.labels(protocol, name).observe(max(0.0, seconds))
        except Exception:
            log.failure("metrics: command_finished")

    def idle_changed(self, delta: int) -> None:
        try:
            self.idle.inc(delta)
        except Exception:
            log.failure("metrics: idle_changed")

    def delivered(self, via: str, outcome: str) -> None:
        try:
            self.deliveries.labels(via, outcome).inc()
        except Exception:
            log.failure("metrics: delivered")

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        try:
            self.commit_seconds.labels(engine).observe(max(0.0, seconds))
            self.commit_changes.labels(engine).observe(max(0, changes))
        except Exception:
            log.failure("metrics: committed")


# --- HTTP -----------------------------------------------------------------------------


class Health:
    """``check()``: None when ``probe`` (a blocking trivial read of the
    store, run in a thread) returns within ``timeout``, else the reason.
    Checks arriving while one runs wait for that one."""

    def __init__(self, probe: Callable[[], None], reactor: Any,
                 timeout: float = HEALTH_TIMEOUT) -> None:
        self.probe = probe
        self.reactor = reactor
        self.timeout = timeout
        self._waiting: list[Deferred[str | None]] | None = None

    def check(self) -> Deferred[str | None]:
        answer: Deferred[str | None] = Deferred()
        if self._waiting is not None:
            self._waiting.append(answer)
            return answer
        waiting = self._waiting = [answer]

        def finish(reason: str | None) -> None:
            if self._waiting is waiting:
                self._waiting = None
                if timer.active():
                    timer.cancel()
                for each in waiting:
                    each.callback(reason)

        def failed(failure: Any) -> None:
            text = str(failure.value).strip().splitlines()
            finish(f"store: {text[0] if text else type(failure.value).__name__}")

        timer = self.reactor.callLater(
            self.timeout, finish, f"store did not answer within {self.timeout:g}s")
        work: Deferred[None] = deferToThread(self.probe)
        work.addCallbacks(lambda _: finish(None), failed)
        return answer


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, health: Health) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.health = health

    def render_GET(self, request: Request) -> Any:
        http: Any = request  # twisted.web's Request is untyped
        http.setHeader(b"content-type", b"text/plain; charset=utf-8")
        http.setHeader(b"cache-control", b"no-store")

        def answer(reason: str | None) -> None:
            if reason is not None:
                http.setResponseCode(503)
            if not http._disconnected:  # the poller may have given up
                http.write(f"{reason or 'ok'}\n".encode())
                http.finish()

        self.health.check().addCallback(answer)
        return NOT_DONE_YET


class _Root(Resource):
    """``/``: only its children; anything else a plain 404."""

    def getChild(self, path: bytes, request: Any) -> Any:
        from twisted.web.pages import notFound

        return notFound()


def site(telemetry: PrometheusTelemetry, health: Health) -> Site:
    """The HTTP site: ``/metrics`` and ``/healthz``."""
    from prometheus_client.twisted import MetricsResource

    root: Any = cast(Any, _Root)()
    root.putChild(b"metrics", cast(Any, MetricsResource)(registry=telemetry.registry))
    root.putChild(b"healthz", HealthResource(health))
    made: Site = cast(Any, Site)(root)
    made.noisy = False
    made.displayTracebacks = False
    return made


def store_probe(config: Any) -> Callable[[], None]:
    """The blocking trivial read ``Health`` runs: a fresh read-only SQLite
    connection to the store file, or a fresh PostgreSQL connection, and
    one query. Raises when the store cannot answer."""
    from imapd.core.config import parse_store

    store = parse_store(config.store)
    if store.is_postgres:
        dsn = store.dsn

        def postgres() -> None:
            import psycopg

            timeout = max(1, int(HEALTH_TIMEOUT))
            with psycopg.connect(dsn, autocommit=True, connect_timeout=timeout) as conn:
                conn.execute("SELECT 1").fetchone()

        return postgres
    from imapd.storage.sqlite.schema import DB_FILENAME

    path = config.data_dir / DB_FILENAME

    def sqlite() -> None:
        import contextlib
        import sqlite3

        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=HEALTH_TIMEOUT)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    return sqlite

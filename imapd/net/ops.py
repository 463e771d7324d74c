"""The operator's side doors of a running server: the admin socket
(``imapd.net.admin``) and, when asked for, the metrics and health HTTP
endpoint (``imapd.net.metrics``).

``OperatedService`` is the ``ListeningService`` plus these: they open
after the mail listeners and close before them. They are this process's
own (never inherited from a ``--workers`` parent), and a failure to open
the admin socket is logged, not fatal; a metrics endpoint that cannot be
bound is (the operator asked for it, as for any listener).
"""

from __future__ import annotations

from typing import Any, Sequence, cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from imapd.core import telemetry
from imapd.core.telemetry import Telemetry
from imapd.net.admin import AdminListener
from imapd.net.peer import format_peer
from imapd.net.service import ListenError, ListeningService, describe_listen_failure

log = Logger(namespace="imapd.net")


class OperatedService(ListeningService):
    """See the module docstring. ``admin``: the admin socket (None: none);
    ``metrics``: (endpoint description, twisted.web site) or None."""

    def __init__(self, *args: Any, admin: AdminListener | None = None,
                 metrics: tuple[str, Any] | None = None,
                 telemetry: Sequence[Telemetry] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admin = admin
        self.metrics = metrics
        self.sinks = telemetry
        self._replaced: Telemetry | None = None
        self.side_ports: list[IListeningPort] = []

    def startService(self) -> None:
        if self.sinks:  # before the first connection can report anything
            previous = telemetry.sink()
            self._replaced = previous
            telemetry.install(telemetry.Fanout(previous, *self.sinks))
        super().startService()
        if self.metrics is not None:
            self._listen_metrics(*self.metrics)
        if self.admin is not None:
            self.admin.start(self.reactor)

    def _listen_metrics(self, description: str, site: Any) -> None:
        failures: list[str] = []
        try:
            endpoint = serverFromString(self.reactor, description)  # type: ignore[no-untyped-call]
        except ValueError as error:
            self.stopService()
            raise ListenError(f"imapd: --metrics {description}: not an endpoint ({error})") from None
        d: Deferred[IListeningPort] = endpoint.listen(site)

        def listening(port: IListeningPort) -> None:
            self.side_ports.append(port)
            log.info("imapd: listening on metrics {address}",
                     address=format_peer(cast(Any, port).getHost()))

        def failed(failure: Any) -> None:
            failures.append(describe_listen_failure(description, failure))

        d.addCallbacks(listening, failed)
        if failures:
            self.stopService()
            raise ListenError(failures[0])

    def stopService(self) -> Deferred[Any]:
        if self.admin is not None:
            self.admin.stop()
        ports, self.side_ports = self.side_ports, []
        for port in ports:
            cast(Any, port).stopListening()
        stopped = super().stopService()
        if self._replaced is not None:  # the connections have reported their close
            stopped.addBoth(self._restore)
        return stopped

    def _restore(self, result: Any) -> Any:
        if self._replaced is not None:
            telemetry.install(self._replaced)
            self._replaced = None
        return result


def metrics_site(config: Any, endpoint: str, sinks: list[Telemetry],
                 reactor: Any) -> tuple[str, Any]:
    """``--metrics ENDPOINT``: a Prometheus sink added to ``sinks`` and the
    HTTP site serving it and the health check (``imapd.net.metrics``)."""
    from imapd.net import metrics

    prometheus = metrics.PrometheusTelemetry()
    sinks.append(prometheus)
    health = metrics.Health(metrics.store_probe(config), reactor)
    return endpoint, metrics.site(prometheus, health)

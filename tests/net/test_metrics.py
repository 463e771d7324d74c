"""Prometheus metrics and /healthz (``imapd.net.metrics``): the sink's
series for each telemetry event (``imapd.core.telemetry``), label values a
client picks kept bounded, and the health check's verdicts (ok, the store
failing, the store not answering in time)."""

from __future__ import annotations

import threading

from imapd.core.telemetry import SessionSummary
from imapd.net import metrics
from tests.support.reactor_thread import on_reactor, reactor


def value(sink: metrics.PrometheusTelemetry, name: str, **labels: str) -> float:
    found = sink.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_connections_bytes_and_close_reasons() -> None:
    sink = metrics.PrometheusTelemetry()
    sink.connection_opened("imap", "127.0.0.1:1")
    sink.connection_opened("imap", "127.0.0.1:2")
    sink.connection_opened("pop3", "127.0.0.1:3")
    assert value(sink, "imapd_client_connections", protocol="imap") == 2
    sink.connection_closed(SessionSummary("imap", "127.0.0.1:1", "alice", 1.5, 100, 2000,
                                          "logout"))
    assert value(sink, "imapd_client_connections", protocol="imap") == 1
    assert value(sink, "imapd_client_connections_opened_total", protocol="imap") == 2
    assert value(sink, "imapd_client_connections_closed_total", protocol="imap",
                 reason="logout") == 1
    assert value(sink, "imapd_client_received_bytes_total", protocol="imap") == 100
    assert value(sink, "imapd_client_sent_bytes_total", protocol="imap") == 2000


def test_logins_commands_idle_deliveries_commits() -> None:
    sink = metrics.PrometheusTelemetry()
    sink.logged_in("imap", "PLAIN", True)
    sink.logged_in("imap", "PLAIN", False)
    sink.logged_in("pop3", "USER", False)
    assert value(sink, "imapd_auth_successes_total", protocol="imap", mechanism="PLAIN") == 1
    assert value(sink, "imapd_auth_failures_total", protocol="pop3", mechanism="USER") == 1
    sink.command_finished("imap", "UID FETCH", "OK", 0.003)
    sink.command_finished("imap", "UID FETCH", "NO", 0.2)
    assert value(sink, "imapd_command_total", protocol="imap", cmd_name="UID FETCH",
                 reply_state="OK") == 1
    assert value(sink, "imapd_command_duration_seconds_count", protocol="imap",
                 cmd_name="UID FETCH") == 2
    assert value(sink, "imapd_command_duration_seconds_bucket", protocol="imap",
                 cmd_name="UID FETCH", le="0.005") == 1
    sink.command_finished("pop3", "RETR", "+OK", 0.01)  # the verdicts of every protocol kept
    sink.command_finished("pop3", "RETR", "-ERR", 0.01)
    sink.command_finished("lmtp", "DATA", "4xx", 0.01)
    assert value(sink, "imapd_command_total", protocol="pop3", cmd_name="RETR",
                 reply_state="+OK") == 1
    assert value(sink, "imapd_command_total", protocol="pop3", cmd_name="RETR",
                 reply_state="-ERR") == 1
    assert value(sink, "imapd_command_total", protocol="lmtp", cmd_name="DATA",
                 reply_state="4XX") == 1
    sink.idle_changed(+1)
    sink.idle_changed(+1)
    sink.idle_changed(-1)
    assert value(sink, "imapd_idle_sessions") == 1
    sink.delivered("lmtp", "ok")
    sink.delivered("lmtp", "temporary")
    assert value(sink, "imapd_mail_delivery_total", via="lmtp", outcome="ok") == 1
    sink.committed("sqlite", 0.004, 3)
    assert value(sink, "imapd_store_commit_duration_seconds_count", engine="sqlite") == 1
    assert value(sink, "imapd_store_commit_changes_bucket", engine="sqlite", le="4.0") == 1
    assert value(sink, "imapd_store_commit_changes_bucket", engine="sqlite", le="2.0") == 0


def test_label_values_clients_choose_are_bounded() -> None:
    sink = metrics.PrometheusTelemetry()
    for n in range(metrics.MAX_LABEL_VALUES + 500):
        sink.command_finished("imap", f"X{n}", "BAD", 0.001)
    sink.command_finished("imap", "\x00evil{label}", "BAD", 0.001)
    sink.logged_in("imap", "A" * 200, False)
    names = {s.labels["cmd_name"] for m in sink.registry.collect() if m.name == "imapd_command"
             for s in m.samples}
    assert len(names) == metrics.MAX_LABEL_VALUES + 1 and "OTHER" in names
    assert value(sink, "imapd_command_total", protocol="imap", cmd_name="OTHER",
                 reply_state="BAD") == 501
    assert value(sink, "imapd_auth_failures_total", protocol="imap", mechanism="OTHER") == 1


def test_a_sink_never_raises() -> None:
    sink = metrics.PrometheusTelemetry()
    sink.idle_changed("many")  # type: ignore[arg-type]
    sink.connection_closed(None)  # type: ignore[arg-type]


def check(health: metrics.Health) -> str | None:
    async def run() -> str | None:
        return await health.check()

    return on_reactor(run)


def test_health_ok_failing_and_hung() -> None:
    assert check(metrics.Health(lambda: None, reactor())) is None

    def broken() -> None:
        raise OSError("unable to open database file\nmore")

    assert check(metrics.Health(broken, reactor())) == "store: unable to open database file"
    release = threading.Event()
    calls: list[int] = []

    def hung() -> None:
        calls.append(1)
        release.wait(30)

    health = metrics.Health(hung, reactor(), timeout=0.2)
    try:
        answers: list[str | None] = []

        async def two() -> None:  # both wait on the one probe
            first, second = health.check(), health.check()
            answers.extend([await first, await second])

        on_reactor(two)
        assert answers == ["store did not answer within 0.2s"] * 2
        assert calls == [1]
    finally:
        release.set()

"""``--metrics``: a real server in this process serves /metrics (the
Prometheus text format, after real logins) and /healthz (200 while the
store answers, 503 when it cannot be read) over HTTP; telemetry goes back
to what it was when the server stops."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from imapd.core import telemetry
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.support.operated import Client, Served, serve
from tests.support.reactor_thread import on_reactor
from tests.support.waiting import wait_until


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path, metrics="tcp:0:interface=127.0.0.1")


def http_port(served: Served) -> int:
    port: int = served.service.side_ports[0].getHost().port
    return port


def get(served: Served, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{http_port(served)}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sample(text: str, series: str) -> float:
    """The value of one series line (``name{labels}``) of an exposition."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_after_real_logins(served: Served) -> None:
    status, before = get(served, "/metrics")
    assert status == 200 and "# TYPE imapd_auth_successes_total counter" in before
    imap = Client(served.imap)
    imap.line()
    assert imap.say("a LOGIN alice wonderland").startswith(b"a OK")
    pop3 = Client(served.pop3)
    pop3.line()
    pop3.say("USER bob")
    assert pop3.say("PASS wrong").startswith(b"-ERR")
    imap.close()
    pop3.close()
    _, after = get(served, "/metrics")
    assert sample(after, 'imapd_auth_successes_total{mechanism="LOGIN",protocol="imap"}') == 1
    assert sample(after, 'imapd_auth_failures_total{mechanism="USER",protocol="pop3"}') == 1
    assert "process_cpu_seconds_total" in after


def test_healthz_follows_the_store(served: Served) -> None:
    assert get(served, "/healthz") == (200, "ok\n")
    store = served.data / DB_FILENAME
    aside = served.data / "moved-away"
    store.rename(aside)  # the server's open connections keep working: the probe must not
    try:
        status, text = get(served, "/healthz")
        assert status == 503 and text.startswith("store: ")
    finally:
        aside.rename(store)
    assert get(served, "/healthz") == (200, "ok\n")
    assert get(served, "/nothing")[0] == 404


def test_telemetry_is_put_back_at_stop(served: Served) -> None:
    assert isinstance(telemetry.sink(), telemetry.Fanout)

    async def stop() -> None:
        await served.service.stopService()

    on_reactor(stop)
    assert not isinstance(telemetry.sink(), telemetry.Fanout)


@pytest.fixture
def on_postgres(tmp_path: Path) -> Iterator[Served]:
    from tests.e2e.frontends import store_url
    from tests.support import postgres

    cluster = postgres.shared_cluster()
    dsn = cluster.fresh_database()
    try:
        yield from serve(tmp_path, store=store_url(dsn), metrics="tcp:0:interface=127.0.0.1")
    finally:
        if not cluster.running:
            cluster.start()
        cluster.release_database(dsn)


def test_healthz_503_while_postgresql_is_down(on_postgres: Served) -> None:
    from tests.support import postgres

    assert get(on_postgres, "/healthz") == (200, "ok\n")
    postgres.stop()
    try:
        status, text = get(on_postgres, "/healthz")
        assert status == 503 and text.startswith("store: "), text
    finally:
        postgres.start()
    assert get(on_postgres, "/healthz") == (200, "ok\n")


def test_serve_option(tmp_path: Path) -> None:
    from twisted.python import usage

    from imapd.cli_serve import ServeOptions

    options = ServeOptions()
    options.parseOptions(["--data", str(tmp_path), "--metrics", "tcp:9143:interface=127.0.0.1"])
    assert options.listeners().metrics == "tcp:9143:interface=127.0.0.1"
    options = ServeOptions()
    options.parseOptions(["--data", str(tmp_path)])
    assert options.listeners().metrics is None
    with pytest.raises(usage.UsageError, match="--metrics needs --workers 1"):
        ServeOptions().parseOptions(["--data", str(tmp_path), "--metrics", "tcp:9143",
                                     "--workers", "2"])


def series(text: str, name: str, **labels: str) -> float:
    """The value of ``name`` with ``labels`` (in any order) in an exposition."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, rest = line.partition("}")
        if head.startswith(name + "{"):
            found = dict(pair.split("=", 1) for pair in head[len(name) + 1:].split(","))
            if found != {k: f'"{v}"' for k, v in labels.items()}:
                continue
        elif labels:
            continue
        return float(line.split()[-1])
    return 0.0


def imap_session(served: Served) -> None:
    imap = Client(served.imap)
    imap.line()
    assert imap.say("a LOGIN alice wonderland").startswith(b"a OK")
    assert imap.until(b"b ").startswith(b"b OK") if imap.say("b SELECT INBOX").startswith(
        b"*") else True
    assert imap.say("c IDLE").startswith(b"+")
    _, idling = get(served, "/metrics")
    assert series(idling, "imapd_idle_sessions") == 1
    assert imap.say("DONE").startswith(b"c OK")
    assert imap.say("d NOOP").startswith(b"d OK")
    assert imap.say("e LOGOUT").startswith(b"* BYE")
    assert imap.until(b"e ") .startswith(b"e OK")
    imap.close()


def lmtp_delivery(served: Served) -> None:
    lmtp = Client(served.lmtp)
    lmtp.line()
    lmtp.sock.sendall(b"LHLO client.example\r\n")
    assert lmtp.until(b"250 ").startswith(b"250 ")
    assert lmtp.say("MAIL FROM:<sender@example.org>").startswith(b"250")
    assert lmtp.say("RCPT TO:<alice@localhost>").startswith(b"250")
    assert lmtp.say("DATA").startswith(b"354")
    assert lmtp.say("Subject: hi\r\n\r\nhello\r\n.").startswith(b"250")
    assert lmtp.say("QUIT").startswith(b"221")
    lmtp.close()


def test_real_sessions_move_the_series(served: Served) -> None:
    imap_session(served)
    lmtp_delivery(served)
    pop3 = Client(served.pop3)
    pop3.line()
    pop3.say("USER alice")
    assert pop3.say("PASS wonderland").startswith(b"+OK")
    assert pop3.say("STAT").startswith(b"+OK 1 ")
    assert pop3.say("QUIT").startswith(b"+OK")
    pop3.close()

    def all_closed() -> str | None:  # the server notes a close a moment after the client
        text = get(served, "/metrics")[1]
        return text if all(
            series(text, "imapd_client_connections_closed_total", protocol=p, reason=r) == 1
            for p, r in (("imap", "logout"), ("pop3", "logout"), ("lmtp", "logout"))) else None

    text = wait_until(all_closed, "every session's close counted")
    for protocol in ("imap", "pop3", "lmtp"):
        assert series(text, "imapd_client_connections_opened_total", protocol=protocol) == 1
        assert series(text, "imapd_client_connections", protocol=protocol) == 0
        assert series(text, "imapd_client_received_bytes_total", protocol=protocol) > 0
        assert series(text, "imapd_client_sent_bytes_total", protocol=protocol) > 0
    assert series(text, "imapd_idle_sessions") == 0
    assert series(text, "imapd_command_total", protocol="imap", cmd_name="SELECT",
                  reply_state="OK") == 1
    assert series(text, "imapd_command_duration_seconds_count", protocol="imap",
                  cmd_name="NOOP") == 1
    assert series(text, "imapd_command_total", protocol="pop3", cmd_name="STAT",
                  reply_state="+OK") == 1
    assert series(text, "imapd_auth_successes_total", protocol="pop3", mechanism="USER") == 1
    assert series(text, "imapd_mail_delivery_total", via="lmtp", outcome="ok") == 1
    assert series(text, "imapd_store_commit_duration_seconds_count", engine="sqlite") >= 1
    assert series(text, "imapd_store_commit_changes_sum", engine="sqlite") >= 1


def test_a_kick_is_counted_as_such(served: Served) -> None:
    from imapd.net import admin

    imap = Client(served.imap)
    imap.line()
    assert imap.say("a LOGIN alice wonderland").startswith(b"a OK")
    assert admin.ask(served.data, {"command": "kick", "user": "alice"}) == {"closed": 1}
    assert imap.until(b"* BYE").startswith(b"* BYE")
    imap.close()
    wait_until(lambda: series(get(served, "/metrics")[1], "imapd_client_connections_closed_total",
                              protocol="imap", reason="kicked") == 1, "the kick counted")

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

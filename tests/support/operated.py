"""A whole server in this process (``app.build_service`` on the test
reactor, tests/support/reactor_thread.py) with IMAP, POP3 and LMTP on
loopback ports, for the operator's side doors: the admin socket
(``imapd.net.admin``) and the metrics endpoint (``imapd.net.metrics``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from imapd import app
from imapd.core.config import Config, Limits
from tests.support.context import make_users
from tests.support.reactor_thread import on_reactor, reactor


@dataclass
class Served:
    service: Any
    data: Path
    imap: int
    pop3: int
    lmtp: int


def serve(tmp_path: Path, store: str | None = None, **extra: Any) -> Iterator[Served]:
    """Start the server (``store``: a PostgreSQL DSN instead of SQLite in
    the data directory; ``extra``: more ``app.Listeners`` fields); stop it
    after the test."""
    data = tmp_path / "data"
    make_users(data, alice="wonderland", bob="builder")
    config = Config(data_dir=data, limits=Limits(failed_login_delay=0.05),
                    **({"store": store} if store else {}))
    loopback = "tcp:0:interface=127.0.0.1"
    listeners = app.Listeners(imap=(loopback,), pop3=(loopback,), lmtp=(loopback,), **extra)

    async def start() -> Any:
        service = app.build_service(config, listeners, reactor(), reload_on_hangup=False)
        service.startService()
        return service

    service = on_reactor(start)
    imap, lmtp, pop3 = (port.getHost().port for port in service.ports)
    try:
        yield Served(service, data, imap, pop3, lmtp)
    finally:
        if service.running:
            async def stop() -> None:
                await service.stopService()

            on_reactor(stop)


class Client:
    """A line-oriented client over a real socket (generous timeouts)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def say(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def until(self, prefix: bytes) -> bytes:
        """Lines until one starts with ``prefix`` (b"" at end of stream)."""
        while True:
            line = self.line()
            if not line or line.startswith(prefix):
                return line

    def close(self) -> None:
        self.file.close()
        self.sock.close()

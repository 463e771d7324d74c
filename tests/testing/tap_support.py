"""A real imapd (memory backend, in-process on the test reactor thread)
listening through a ``Wiretap``, for the wiretap's and faults' tests.

    with tapped(tmp_path, faults=[close_at("NOOP")]) as server:
        client = imaplib.IMAP4(*server.address)
        ...
        server.transcripts

``actions``: makes the ``StoreActions`` of the inject faults from the
server's IMAP factory.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from imapd import app
from imapd.core.config import Config, Limits
from imapd.importer.source import stored_form
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.testing.faults import Fault, FaultPlan
from imapd.testing.transcript import Transcript
from imapd.testing.wiretap import Wiretap
from tests.support.context import make_users
from tests.support.reactor_thread import on_reactor, reactor

USER, PASSWORD = "alice", "wonderland"


class ServiceActions:
    """``StoreActions`` through the server's MailService, as another client
    would change the store (the test server has its own)."""

    def __init__(self, factory: Any) -> None:
        self.mail = factory.mail

    async def append_message(self, user: str, mailbox: str, raw: bytes) -> int:
        result = await self.mail.deliver(user, mailbox, [AppendItem(stored_form(raw))])
        return result.uid  # type: ignore[no-any-return]

    async def expunge_message(self, user: str, mailbox: str, uid: int | None) -> int | None:
        entry = await self.mail.target_entry(user, mailbox)
        if uid is None:
            states = await self.mail.backend.fetch_flags(entry.ref)
            if not states:
                return None
            uid = states[0].uid
        await self.mail.backend.store_flags(entry.ref, [uid], FlagOp.ADD, ["\\Deleted"])
        gone = await self.mail.backend.expunge(entry.ref, [uid])
        return gone[0] if gone else None


@dataclass
class Tapped:
    host: str
    port: int
    taps: dict[str, Wiretap]
    ports: dict[str, int] = field(default_factory=dict)
    tap_factories: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def transcripts(self) -> list[Transcript]:
        return self.taps["imap"].transcripts

    def wait_closed(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` IMAP connections have ended on the server."""
        done = threading.Event()

        def poll() -> None:
            if sum(1 for t in self.transcripts if t.closed_at is not None) >= count:
                done.set()
            else:
                reactor().callLater(0.01, poll)

        reactor().callFromThread(poll)
        assert done.wait(timeout), "the server did not see the connection end"


@contextlib.contextmanager
def tapped(tmp_path: Path, faults: Iterable[Fault] = (), *, pop3: bool = False, lmtp: bool = False,
           checks: Any = None, actions: Callable[[Any], Any] | None = ServiceActions) -> Iterator[Tapped]:
    data = tmp_path / "data"
    make_users(data, **{USER: PASSWORD})
    config = Config(data_dir=data, limits=Limits(failed_login_delay=0.0))
    loopback = "tcp:0:interface=127.0.0.1"
    listeners = app.Listeners(imap=(loopback,), pop3=(loopback,) if pop3 else (),
                              lmtp=(loopback,) if lmtp else ())
    # build_service's order of service.servers: IMAP, then LMTP, then POP3.
    names = ["imap"] + (["lmtp"] if lmtp else []) + (["pop3"] if pop3 else [])
    plan = FaultPlan(faults)

    async def start() -> tuple[Any, Tapped]:
        the_reactor = reactor()
        service = app.build_service(config, listeners, the_reactor, reload_on_hangup=False)
        service.startService()
        taps: dict[str, Wiretap] = {}
        ports = []
        wrapped = {}
        for name, factory in zip(names, service.servers):
            tap = Wiretap(name, plan, checks, actions(factory) if actions else None, the_reactor)
            taps[name] = tap
            wrapped[name] = tap.wrap(factory)
            ports.append(the_reactor.listenTCP(0, wrapped[name], interface="127.0.0.1"))
        numbers = {name: p.getHost().port for name, p in zip(taps, ports)}
        service.tap_ports = ports
        return service, Tapped("127.0.0.1", numbers["imap"], taps, numbers, wrapped)

    service, server = on_reactor(start)
    try:
        yield server
    finally:
        async def stop() -> None:
            for port in service.tap_ports:
                await port.stopListening()
            await service.stopService()

        on_reactor(stop)

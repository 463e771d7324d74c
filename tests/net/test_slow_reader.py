"""A client that stops reading cannot make the server hold its replies,
stall others or leak its connection (issue 13, item 3: 40 pipelined
``FETCH 1:*`` to a client that did not read grew the server from 172 to
592 MiB, kept after it disconnected).

The server runs in this process on a real reactor (``app.build_service``,
tests/support/reactor_thread.py) so the test can look at the slow
connection's transport buffer and, after it disconnects, check with a
weak reference that its protocol object (and with it its session, view
and buffers) is freed. The replies are flag-only FETCH responses of about
2 KB each (many long keywords): the kind a handler sends without ever
reading a message, so nothing but back-pressure on the output stops it.
"""

from __future__ import annotations

import gc
import socket
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from imapd import app
from imapd.core.config import Config, Limits
from imapd.net import output
from imapd.net.imap_connection import ImapServerProtocol
from tests.support.context import make_users
from tests.support.raw import RawClient
from tests.support.reactor_thread import on_reactor, reactor

MESSAGES = 3000
# 30 keywords of 60 characters: each FETCH (FLAGS) response is about 2 KB,
# one FETCH 1:* about 6 MB.
KEYWORDS = b" ".join(b"k%02d" % n + b"x" * 57 for n in range(30))
MESSAGE = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
# What the slow connection may leave buffered in the process: the writer's
# streaming threshold, the transport's pause limit, one joined batch and a
# slice of responses, doubled for slack. Before: one whole FETCH, 6 MB.
BUFFER_BOUND = 2 * (output.STREAM_AFTER + 64 * 1024 + 64 * 1024 + 256 * 2048)
NOOP_BOUND = 2.0  # seconds; generous for a loaded machine (it was the FETCHes' time)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, int]]:
    data = tmp_path / "data"
    make_users(data, alice="wonderland")
    config = Config(data_dir=data, limits=Limits(failed_login_delay=0.05))
    listeners = app.Listeners(imap=("tcp:0:interface=127.0.0.1",))

    async def start() -> Any:
        service = app.build_service(config, listeners, reactor(), reload_on_hangup=False)
        service.startService()
        return service

    service = on_reactor(start)
    try:
        yield service, service.ports[0].getHost().port
    finally:
        async def stop() -> None:
            await service.stopService()

        on_reactor(stop)


class Client(RawClient):
    def login(self) -> Client:
        assert self.line().startswith(b"* OK ")
        self.send(b"a LOGIN alice wonderland\r\n")
        assert self.until_tagged(b"a")[-1].startswith(b"a OK ")
        return self


def seed(port: int) -> None:
    client = Client("127.0.0.1", port, timeout=60).login()
    one = b" (%s) {%d+}\r\n%s" % (KEYWORDS, len(MESSAGE), MESSAGE)
    for batch in range(MESSAGES // 100):  # 100 of them stay under max_command_text
        client.send(b"s%d APPEND INBOX" % batch + one * 100 + b"\r\n")
        assert client.until_tagged(b"s%d" % batch)[-1].startswith(b"s%d OK " % batch)
    client.close()


def slow_client(port: int) -> socket.socket:
    """Logged in, INBOX selected, a small receive buffer, never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    client = Client.__new__(Client)
    client.sock, client.buffer = sock, b""
    client.login()
    client.send(b"s SELECT INBOX\r\n")
    client.until_tagged(b"s")
    return sock


def factory_of(service: Any) -> Any:
    return service.servers[0]


def the_connection(service: Any, other_than: set[int]) -> ImapServerProtocol:
    async def find() -> ImapServerProtocol:
        found = [c for c in factory_of(service).connections if id(c) not in other_than]
        assert len(found) == 1
        return found[0]  # type: ignore[no-any-return]
    return on_reactor(find)


def buffered(proto: ImapServerProtocol) -> int:
    """Octets the process holds for the client: the Twisted transport's
    send buffer (read on the reactor thread)."""
    async def size() -> int:
        transport: Any = proto.transport
        if transport is None:
            return 0
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # type: ignore[no-any-return]
    return on_reactor(size)


def wait_until_stalled(proto: ImapServerProtocol) -> None:
    """Until the slow connection's output is paused (it then waits)."""
    assert wait_for(lambda: proto._output.busy, 30.0), "the output never filled up"


def test_a_client_that_stops_reading_holds_little_and_is_freed(served: tuple[Any, int]) -> None:
    service, port = served
    seed(port)
    known = {id(c) for c in on_reactor(_connections(service))}
    sock = slow_client(port)
    proto = the_connection(service, known)
    sock.sendall(b"".join(b"f%d FETCH 1:* (FLAGS)\r\n" % n for n in range(40)))
    wait_until_stalled(proto)
    time.sleep(0.5)  # whatever the server would still produce, it does now
    held = buffered(proto)
    assert held <= BUFFER_BOUND, f"{held} octets buffered for a client that does not read"
    # Its next commands stay in the kernel meanwhile (reading is paused):
    # before, they were read and queued, up to Limits.max_pipelined.
    sock.sendall(b"n NOOP\r\n" * 2000)
    time.sleep(0.5)
    assert wait_for(lambda: proto._slices.reading_paused)
    assert len(proto._queue) < 40 and proto._backlog.size == 0
    other = Client("127.0.0.1", port, timeout=60).login()
    start = time.monotonic()
    other.send(b"n NOOP\r\n")
    assert other.until_tagged(b"n") == [b"n OK NOOP completed\r\n"]
    assert time.monotonic() - start < NOOP_BOUND
    gone = weakref.ref(proto)
    del proto
    # Freed by reference counting as soon as the connection is lost, not at
    # some later full collection (reference cycles: the context's hooks,
    # the writer's and the slices' callbacks, cancelled timers).
    gc.collect()
    gc.disable()
    try:
        sock.close()
        assert wait_for(lambda: gone() is None), \
            "the closed connection's protocol object is still alive"
    finally:
        gc.enable()
    other.close()


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` on the reactor thread until true or ``timeout``."""
    async def check() -> bool:
        return condition()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if on_reactor(check):
            return True
        time.sleep(0.05)
    return False


def _connections(service: Any) -> Any:
    async def connections() -> list[Any]:
        return list(factory_of(service).connections)
    return connections

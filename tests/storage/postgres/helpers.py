"""Helpers of the PostgreSQL engine tests: backends on the test reactor,
doorbells that can be waited for from the test thread."""

from __future__ import annotations

import threading
from typing import Any, Awaitable, Callable, TypeVar

from twisted.internet.defer import Deferred

from imapd.mail.backend import MailBackend, MailboxRef
from imapd.storage.postgres import PostgresBackend, open_backend
from tests.support.reactor_thread import on_reactor, reactor_hop

T = TypeVar("T")
USER = "alice"
WAIT = 20.0  # seconds; bounds a hang, never asserted as a timing


def open_pg(dsn: str, poll_interval: float = 1.0, pool_size: int = 4) -> PostgresBackend:
    return open_backend(dsn, hop=reactor_hop(), make_waiter=Deferred,
                        poll_interval=poll_interval, pool_size=pool_size)


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return on_reactor(fn, timeout=WAIT * 3)


def inbox(backend: MailBackend) -> MailboxRef:
    async def go() -> MailboxRef:
        await backend.ensure_user(USER)
        entry = await backend.lookup(USER, "INBOX")
        assert entry is not None
        return entry.ref

    return run(go)


def close(*backends: MailBackend) -> None:
    for backend in backends:
        run(backend.close)


def other_node_dsn(dsn: str, cluster: Any) -> str:
    """The same database reached another way (the unix socket): a backend
    opened with it is not an in-process sibling of one opened with ``dsn``
    (siblings ring each other directly), so only the database can tell it
    of the other's changes, as on another machine."""
    name = dict(part.split("=", 1) for part in dsn.split())["dbname"]
    return str(cluster.socket_dsn_for(name))


class Bell:
    """A feed subscriber the test thread can wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rings: list[tuple[int, int]] = []

    def __call__(self, mailbox_id: int, modseq: int) -> None:
        with self.cond:
            self.rings.append((mailbox_id, modseq))
            self.cond.notify_all()

    def wait_for(self, condition: Callable[[list[tuple[int, int]]], bool],
                 timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: condition(self.rings), timeout)

    def clear(self) -> None:
        with self.cond:
            self.rings.clear()


def subscribe(backend: MailBackend, mailbox_id: int, bell: Bell) -> Callable[[], None]:
    async def go() -> Callable[[], None]:
        return backend.feed.subscribe(mailbox_id, bell)

    return run(go)

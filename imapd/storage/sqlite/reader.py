"""A reader thread for the SQLite engine's large reads (threaded mode).

Most reads are a few indexed queries and run inline on the reactor thread
(``reads``). Reads whose cost grows with the mailbox would stall every
session for their duration: measured on a 100,000-message mailbox (2 KB
messages, tmpfs, a shared 2-core box), ``fetch_flags`` of every message
took ~190 ms, ``fetch_records`` of every message ~510 ms and ``status``
~20 ms, against ~0.2 ms for 100 UIDs. Those run here instead, on one
thread with its own connection (WAL: it never waits for the writer), and
their results come back through ``hop`` like the writer's. It also copies
large message bodies out to spool files (``reads.spool_body``), so its
connection is reopened after many blob opens (``schema.Connection``).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from typing import Any, Awaitable, Callable, TypeVar

from imapd.storage.sqlite.schema import Connection, read_transaction
from imapd.storage.hops import Hop, MakeWaiter, Waiter
from imapd.storage.sqlite.writer import mail_error

log = logging.getLogger(__name__)

T = TypeVar("T")
ReadFn = Callable[[sqlite3.Connection], T]


class ReadThread:
    """Runs read functions, each in its own read transaction, in order."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        hop: Hop,
        make_waiter: MakeWaiter,
        reconnect: Callable[[], Connection] | None = None,
    ) -> None:
        self._conn = conn
        self._reconnect = reconnect
        self._hop = hop
        self._make_waiter = make_waiter
        self._queue: queue.SimpleQueue[tuple[ReadFn[Any], Waiter[Any]] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._loop, name="sqlite-reader", daemon=True)
        self._thread.start()

    def run(self, fn: ReadFn[T]) -> Awaitable[T]:
        waiter: Waiter[T] = self._make_waiter()
        self._queue.put((fn, waiter))
        return waiter

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            fn, waiter = item
            self._recycle_if_due()
            try:
                with read_transaction(self._conn):
                    result = fn(self._conn)
            except Exception as error:
                failure = mail_error(error)
                self._hop(lambda w=waiter, e=failure: w.errback(e))  # type: ignore[misc]
            else:
                self._hop(lambda w=waiter, r=result: w.callback(r))  # type: ignore[misc]
        self._conn.close()

    def _recycle_if_due(self) -> None:
        conn = self._conn
        if self._reconnect is None or not isinstance(conn, Connection) or not conn.due_for_recycling:
            return
        try:
            fresh = self._reconnect()
        except Exception:
            log.exception("reopening the read connection failed; keeping the old one")
            return
        self._conn = fresh
        conn.close()

    def close(self) -> None:
        """Stop after the queued reads; quick (reads never wait on locks)."""
        self._queue.put(None)
        self._thread.join()

"""Watches of one mailbox share one catch-up read even when the engine reads
on other threads (PostgreSQL): every idler asks at once, while the first
read is still in flight, and must wait for it instead of reading again
(``MailService.changes_for``). Driven by asyncio: the engine's read really
suspends, and the runtime's Signal is an asyncio event."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Callable, TypeVar

from imapd.mail.backend import Changes, MailboxRef
from imapd.mail.errors import Unavailable
from imapd.mail.events import MessagesAdded
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.storage.memory import MemoryBackend

T = TypeVar("T")
U = "alice"
DATE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


class AsyncioSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


class AsyncioRuntime:
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_soon(self, fn: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_soon(fn)

    def signal(self) -> AsyncioSignal:
        return AsyncioSignal()

    async def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)


class SlowReads(MemoryBackend):
    """``changes_since`` takes a few loop turns, like a pool thread's round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.fail_next = False

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        self.reads += 1
        for _ in range(3):
            await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next = False
            raise Unavailable("mail store unavailable")
        return await super().changes_since(ref, modseq, uidnext)


async def _scenario(fail_first: bool, retry_failed: bool = False) -> tuple[SlowReads, list[Any]]:
    backend = SlowReads()
    service = MailService(backend, AsyncioRuntime())
    watches = [await service.open(U, "INBOX", False) for _ in range(20)]
    await service.deliver(U, "INBOX", [AppendItem(b"Subject: x\r\n\r\n.\r\n", (), DATE)])
    assert all(w.rang for w in watches)
    backend.reads = 0
    backend.fail_next = fail_first
    results = await asyncio.gather(*(w.catch_up() for w in watches), return_exceptions=True)
    if retry_failed:  # the store is back: the failed one catches up again
        failed = [w for w, r in zip(watches, results) if isinstance(r, Exception)]
        results += [await w.catch_up() for w in failed]
    return backend, results


def test_concurrent_catch_ups_of_one_mailbox_share_one_read() -> None:
    backend, results = asyncio.run(_scenario(fail_first=False))
    assert backend.reads == 1  # before: one read per watch (20)
    added = [r for r in results if isinstance(r, list) and r and isinstance(r[0], MessagesAdded)]
    assert len(added) == 20
    # \\Recent in exactly one of them (RFC 3501 §2.3.2).
    assert sum(len(r[0].recent) for r in added) == 1


def test_a_failed_shared_read_leaves_the_waiters_to_read_themselves() -> None:
    backend, results = asyncio.run(_scenario(fail_first=True, retry_failed=True))
    failed = [r for r in results if isinstance(r, Unavailable)]
    assert len(failed) == 1  # only the reader whose read failed
    assert backend.reads == 2  # the waiters shared the second read, and so did the retry
    # The message the APPEND claimed for the first watch is recent there,
    # once its catch-up succeeds: in exactly one session.
    assert sum(len(r[0].recent) for r in results if isinstance(r, list) and r) == 1

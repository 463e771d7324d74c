"""A MailBackend wrapper whose every call really yields to the reactor.

The contract (``imapd.mail.backend``) says every call may really await: a
thread, a socket. A backend that happens never to await hides code above it
that relies on "this coroutine does not yield" for atomicity (issue 12: the
old contract suite, run against such a wrapper, failed 116 of 118 tests).
``YieldingBackend`` proxies each coroutine method of an inner backend and
awaits ``sleep(0)`` before and after the inner call, so other coroutines on
the reactor run in between: a read-check-write spread over two backend calls
then races for real, as it would on a network database.

    backend = YieldingBackend(inner, lambda s: deferLater(reactor, s, lambda: None))

``feed`` is the inner backend's feed, unchanged (rings are synchronous calls
on the reactor thread, there is nothing to await). ``inner`` stays reachable
for tests that look at engine specifics.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Sequence

from imapd.mail.backend import (
    ChangeFeed, Changes, MailBackend, MailboxEntry, MailboxRef, QuotaInfo, TreePlan,
)
from imapd.mail.flags import FlagOp
from imapd.mail.records import (
    AppendItem, AppendResult, CopyResult, FlagState, MailboxSnapshot, MailboxStatus,
    MessageBody, MessageRecord, StoreResult,
)

Sleep = Callable[[float], Awaitable[None]]


class YieldingBackend:
    """``inner`` with a turn of the reactor before and after every call."""

    def __init__(self, inner: MailBackend, sleep: Sleep) -> None:
        self.inner = inner
        self.feed: ChangeFeed = inner.feed
        self._sleep = sleep

    async def _turn(self) -> None:
        await self._sleep(0)

    # --- users and trees ------------------------------------------------------

    async def ensure_user(
        self, user: str, defaults: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        await self._turn()
        await self.inner.ensure_user(user, defaults)
        await self._turn()

    async def mailboxes(self, user: str) -> list[MailboxEntry]:
        await self._turn()
        result = await self.inner.mailboxes(user)
        await self._turn()
        return result

    async def lookup(self, user: str, name: str) -> MailboxEntry | None:
        await self._turn()
        result = await self.inner.lookup(user, name)
        await self._turn()
        return result

    async def edit_tree(self, user: str, plan: TreePlan) -> None:
        await self._turn()
        await self.inner.edit_tree(user, plan)
        await self._turn()

    async def subscriptions(self, user: str) -> list[str]:
        await self._turn()
        result = await self.inner.subscriptions(user)
        await self._turn()
        return result

    async def set_subscribed(self, user: str, name: str, subscribed: bool) -> None:
        await self._turn()
        await self.inner.set_subscribed(user, name, subscribed)
        await self._turn()

    async def delete_account(self, user: str) -> bool:
        await self._turn()
        result = await self.inner.delete_account(user)
        await self._turn()
        return result

    async def rename_account(self, old: str, new: str) -> bool:
        await self._turn()
        result = await self.inner.rename_account(old, new)
        await self._turn()
        return result

    # --- one mailbox ----------------------------------------------------------

    async def status(self, ref: MailboxRef) -> MailboxStatus:
        await self._turn()
        result = await self.inner.status(ref)
        await self._turn()
        return result

    async def snapshot(self, ref: MailboxRef) -> tuple[MailboxSnapshot, int]:
        await self._turn()
        result = await self.inner.snapshot(ref)
        await self._turn()
        return result

    async def claim_recent(self, ref: MailboxRef, uidnext: int) -> tuple[int, int] | None:
        await self._turn()
        result = await self.inner.claim_recent(ref, uidnext)
        await self._turn()
        return result

    async def append(
        self, ref: MailboxRef, items: Sequence[AppendItem], claim: bool = False
    ) -> AppendResult:
        await self._turn()
        result = await self.inner.append(ref, items, claim)
        await self._turn()
        return result

    async def fetch_records(
        self, ref: MailboxRef, uids: Sequence[int] | None = None, with_meta: bool = False
    ) -> list[MessageRecord]:
        await self._turn()
        result = await self.inner.fetch_records(ref, uids, with_meta)
        await self._turn()
        return result

    async def sort_facts(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        await self._turn()
        result = await self.inner.sort_facts(ref, uids)
        await self._turn()
        return result

    async def fetch_flags(
        self, ref: MailboxRef, uids: Sequence[int] | None = None
    ) -> list[FlagState]:
        await self._turn()
        result = await self.inner.fetch_flags(ref, uids)
        await self._turn()
        return result

    async def read_message(
        self, ref: MailboxRef, uid: int, offset: int = 0, length: int | None = None
    ) -> bytes | None:
        await self._turn()
        result = await self.inner.read_message(ref, uid, offset, length)
        await self._turn()
        return result

    async def read_messages(self, ref: MailboxRef, uids: Sequence[int]) -> dict[int, bytes]:
        await self._turn()
        result = await self.inner.read_messages(ref, uids)
        await self._turn()
        return result

    async def open_message(self, ref: MailboxRef, uid: int) -> MessageBody | None:
        await self._turn()
        result = await self.inner.open_message(ref, uid)
        await self._turn()
        return result

    async def store_flags(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        op: FlagOp,
        flags: Sequence[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        await self._turn()
        result = await self.inner.store_flags(ref, uids, op, flags, unchangedsince)
        await self._turn()
        return result

    async def expunge(self, ref: MailboxRef, uids: Sequence[int] | None = None) -> list[int]:
        await self._turn()
        result = await self.inner.expunge(ref, uids)
        await self._turn()
        return result

    async def store_and_expunge(
        self, ref: MailboxRef, uids: Sequence[int], flags: Sequence[str],
        expunge: Sequence[int],
    ) -> list[int]:
        await self._turn()
        result = await self.inner.store_and_expunge(ref, uids, flags, expunge)
        await self._turn()
        return result

    async def copy(
        self,
        ref: MailboxRef,
        uids: Sequence[int],
        target: MailboxRef,
        move: bool = False,
        claim: bool = False,
    ) -> CopyResult:
        await self._turn()
        result = await self.inner.copy(ref, uids, target, move, claim)
        await self._turn()
        return result

    async def text_candidates(
        self, ref: MailboxRef, scope: str, folded: str
    ) -> frozenset[int] | None:
        await self._turn()
        result = await self.inner.text_candidates(ref, scope, folded)
        await self._turn()
        return result

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        await self._turn()
        result = await self.inner.changes_since(ref, modseq, uidnext)
        await self._turn()
        return result

    async def quota(self, user: str) -> QuotaInfo:
        await self._turn()
        result = await self.inner.quota(user)
        await self._turn()
        return result

    async def set_quota(self, user: str, storage: int | None, messages: int | None) -> None:
        await self._turn()
        await self.inner.set_quota(user, storage, messages)
        await self._turn()

    async def close(self) -> None:
        await self._turn()
        await self.inner.close()
        await self._turn()


def reactor_sleep() -> Sleep:
    """``sleep`` on the test reactor (tests/support/reactor_thread.py)."""
    from twisted.internet.task import deferLater

    from tests.support.reactor_thread import reactor

    the_reactor = reactor()

    async def sleep(seconds: float) -> None:
        await deferLater(the_reactor, seconds, lambda: None)

    return sleep


def _conforms(backend: YieldingBackend) -> MailBackend:
    """mypy checks here that the wrapper is a MailBackend."""
    return backend

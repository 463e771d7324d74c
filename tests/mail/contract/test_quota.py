"""The mail contract, quota (RFC 9208): resources STORAGE and MESSAGE of the
quota root "" (the user's account), enforced at APPEND, MULTIAPPEND, COPY
and MOVE by every engine, exact after expunges and under concurrency."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.mail.backend import QuotaInfo
from imapd.mail.errors import Cannot, OverQuota
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from tests.mail.contract.conftest import (
    U, Site, deliver, make_service, refused, settle,
)
from tests.support.reactor_thread import on_reactor

BOXES = ("INBOX", "A", "B")


async def stored(service: MailService, user: str = U) -> tuple[int, int]:
    """(bytes, messages) summed over the user's mailboxes through STATUS."""
    size = count = 0
    for info in await service.list_mailboxes(user, "", "*"):
        status = await service.status(user, info.name)
        size += status.size
        count += status.messages
    return size, count


async def test_no_limits_by_default_and_usage_counts(service: MailService) -> None:
    assert await service.quota("nobody") == QuotaInfo(0, None, 0, None)
    await deliver(service, "INBOX", b"12345")
    await deliver(service, "INBOX", b"abc")
    assert await service.quota(U) == QuotaInfo(8, None, 2, None)


async def test_set_quota_reads_back_and_none_removes(service: MailService) -> None:
    await service.set_quota(U, 100, 7)
    assert await service.quota(U) == QuotaInfo(0, 100, 0, 7)
    await service.set_quota(U, None, 7)
    assert await service.quota(U) == QuotaInfo(0, None, 0, 7)
    await service.set_quota(U, None, None)
    assert await service.quota(U) == QuotaInfo(0, None, 0, None)
    await refused(Cannot, service.set_quota(U, -1, None))


async def test_append_over_storage_is_refused_and_stores_nothing(service: MailService) -> None:
    await service.set_quota(U, 10, None)
    await deliver(service, "INBOX", b"123456")
    await refused(OverQuota, deliver(service, "INBOX", b"12345"))
    status = await service.status(U, "INBOX")
    assert (status.messages, status.uidnext) == (1, 2)
    await deliver(service, "INBOX", b"1234")  # exactly to the limit
    assert (await service.quota(U)).storage_used == 10


async def test_message_limit(service: MailService) -> None:
    await service.set_quota(U, None, 2)
    await deliver(service, "INBOX", b"a")
    await deliver(service, "INBOX", b"b")
    await refused(OverQuota, deliver(service, "INBOX", b""))
    assert (await service.quota(U)).messages_used == 2


async def test_multiappend_is_all_or_nothing(service: MailService) -> None:
    await service.set_quota(U, 10, None)
    items = [AppendItem(b"1234"), AppendItem(b"1234"), AppendItem(b"1234")]
    await refused(OverQuota, service.deliver(U, "INBOX", items))
    assert await service.quota(U) == QuotaInfo(0, 10, 0, None)
    assert (await service.status(U, "INBOX")).uidnext == 1
    await service.deliver(U, "INBOX", items[:2])
    assert (await service.quota(U)).storage_used == 8


async def test_copy_counts_again_move_within_the_account_does_not(service: MailService) -> None:
    await service.create_mailbox(U, "A")
    await deliver(service, "INBOX", b"123456")
    await deliver(service, "INBOX", b"1234")
    await service.set_quota(U, 15, None)
    watch = await service.open(U, "INBOX", readonly=False)
    await refused(OverQuota, watch.copy([1, 2], "A"))
    assert (await service.status(U, "A")).messages == 0
    assert (await watch.copy([2], "A")).pairs == ((2, 1),)
    assert (await service.quota(U)).storage_used == 14
    await service.set_quota(U, 14, 3)  # full on both resources
    assert len((await watch.move([1], "A")).pairs) == 1
    assert await service.quota(U) == QuotaInfo(14, 14, 3, 3)
    await refused(OverQuota, watch.copy([2], "INBOX"))


async def test_expunge_frees_usage(service: MailService) -> None:
    await service.set_quota(U, 10, None)
    await deliver(service, "INBOX", b"1234567890")
    await refused(OverQuota, deliver(service, "INBOX", b"x"))
    watch = await service.open(U, "INBOX", readonly=False)
    await watch.store_flags([1], FlagOp.ADD, ["\\Deleted"])
    await watch.expunge()
    assert (await service.quota(U)).storage_used == 0
    await deliver(service, "INBOX", b"x")


async def test_deleting_a_mailbox_frees_usage(service: MailService) -> None:
    await service.create_mailbox(U, "A")
    await deliver(service, "A", b"12345")
    await service.delete_mailbox(U, "A")
    assert (await service.quota(U)).storage_used == 0


async def test_users_are_separate(service: MailService) -> None:
    await service.set_quota(U, 3, None)
    await deliver(service, "INBOX", b"12345", user="bob")
    await deliver(service, "INBOX", b"123")
    assert (await service.quota("bob")).storage_used == 5


async def test_two_processes_filling_the_last_bytes_exactly_one_wins(site: Site) -> None:
    """Two backend instances (two processes or frontends) append at once
    the message that would fill the quota, into different mailboxes (no
    mailbox lock orders them): exactly one commits."""
    first, second = make_service(await site.open()), make_service(await site.open())
    for box in BOXES[1:]:
        await first.create_mailbox(U, box)
    await first.set_quota(U, 100, None)
    await deliver(first, "INBOX", b"x" * 40)
    for _ in range(3):
        outcomes = await settle([deliver(first, "INBOX", b"y" * 30),
                                 deliver(second, "A", b"z" * 30),
                                 deliver(second, "B", b"w" * 30)])
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, OverQuota)]
        assert (len(winners), len(losers)) == (2, 1), outcomes
        assert (await first.quota(U)).storage_used == 100 == (await stored(second))[0]
        for box in BOXES:
            watch = await first.open(U, box, readonly=False)
            uids = [r.uid for r in await watch.fetch_records() if r.size == 30]
            await watch.store_flags(uids, FlagOp.ADD, ["\\Deleted"])
            await watch.expunge()
            watch.close()


# --- usage is always the sum of stored sizes (hypothesis) --------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.sampled_from(BOXES), st.lists(st.integers(0, 40), min_size=1,
                                                                   max_size=3)),
    st.tuples(st.sampled_from(["copy", "move"]), st.sampled_from(BOXES), st.sampled_from(BOXES),
              st.integers(1, 4)),
    st.tuples(st.just("expunge"), st.sampled_from(BOXES), st.integers(1, 4)),
), min_size=1, max_size=12)


async def _apply(service: MailService, op: tuple[Any, ...]) -> None:
    try:
        if op[0] == "append":
            await service.deliver(U, op[1], [AppendItem(b"m" * n) for n in op[2]])
            return
        watch = await service.open(U, op[1], readonly=False)
        uids = [r.uid for r in await watch.fetch_records()][:op[-1]]
        if op[0] == "expunge":
            await watch.store_flags(uids, FlagOp.ADD, ["\\Deleted"])
            await watch.expunge()
        elif op[0] == "copy":
            await watch.copy(uids, op[2])
        else:
            await watch.move(uids, op[2])
    except OverQuota:
        pass


async def _check_sequence(service: MailService, ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        await _apply(service, op)
        info = await service.quota(U)
        assert (info.storage_used, info.messages_used) == await stored(service)
        assert info.storage_used <= 200 and info.messages_used <= 12


# The profile's suppressions (too_slow: the shared CI box) plus the fixture
# check: one store per test on purpose (state carries over, see below).
_SUPPRESSED = [*(settings.default.suppress_health_check if settings.default else ()),
               HealthCheck.function_scoped_fixture]


@settings(max_examples=15, deadline=None, suppress_health_check=_SUPPRESSED)
@given(ops=OPS)
def test_usage_is_the_sum_of_stored_sizes(service: MailService, ops: list[tuple[Any, ...]]) -> None:
    """State carries over between examples (one store per test): the
    invariant holds from any reachable state, not only from empty."""

    async def run() -> None:
        if (await service.quota(U)).storage_limit is None:
            for box in BOXES[1:]:
                await service.create_mailbox(U, box)
            await service.set_quota(U, 200, 12)
        await _check_sequence(service, ops)

    on_reactor(run, timeout=120.0)


@pytest.mark.parametrize("size", [0, 1])
async def test_zero_limit(service: MailService, size: int) -> None:
    await service.set_quota(U, 0, None)
    if size:
        await refused(OverQuota, deliver(service, "INBOX", b"x"))
    else:
        await deliver(service, "INBOX", b"")  # 0 bytes fit in a 0-byte quota

"""The mail contract, POP3's UPDATE state (RFC 1939 §6) on every engine:
``MailBackend.store_and_expunge`` through ``MailboxWatch``: ``\\Seen`` on
the retrieved messages and the expunge of exactly the marked ones as one
change (one MODSEQ, one durable commit), heard by every other watch as
STORE plus EXPUNGE would be (RFC 7162 §3.1, §3.2.5.2)."""

from __future__ import annotations

import threading
from typing import Any, Iterator

import pytest

from imapd.core import telemetry
from imapd.mail.events import FlagsChanged, MessagesExpunged
from imapd.mail.errors import InvalidFlag, ReadOnly
from imapd.mail.flags import FlagOp
from imapd.mail.records import FlagState
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from tests.mail.contract.conftest import (
    Kind, Site, U, fill, flags_by_uid, make_service, refused,
)


class Commits(telemetry.NullTelemetry):
    """Counts store commits (``Telemetry.committed``), from any thread."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        with self._lock:
            self.count += 1


@pytest.fixture
def commits() -> Iterator[Commits]:
    counter = Commits()
    previous = telemetry.install(counter)
    try:
        yield counter
    finally:
        telemetry.install(previous)


async def rw(service: MailService) -> MailboxWatch:
    return await service.open(U, "INBOX", readonly=False)


async def highest(service: MailService) -> int:
    return (await service.status(U, "INBOX")).highestmodseq


async def test_flags_and_removes_exactly_the_given_uids_under_one_modseq(
        service: MailService) -> None:
    await fill(service, 5)
    watch = await rw(service)
    # Flagged \Deleted by an IMAP client, not marked by POP3: it stays.
    await watch.store_flags([4], FlagOp.ADD, ["\\Deleted"])
    mark = await highest(service)
    # UID 9 does not exist; UID 3 is in both lists: removed, not flagged.
    assert await watch.store_and_expunge([1, 3], ["\\Seen"], [2, 3, 9]) == [2, 3]
    assert await flags_by_uid(watch) == {1: ("\\Seen",), 4: ("\\Deleted",), 5: ()}
    assert await highest(service) == mark + 1
    changed = await watch.changes_since(mark)
    assert changed == [FlagState(1, ("\\Seen",), mark + 1)]
    assert await watch.expunged_since(mark) == [2, 3]
    assert await watch.read_message(2) is None


async def test_a_call_that_changes_nothing_takes_no_modseq(service: MailService) -> None:
    await fill(service, 2)
    watch = await rw(service)
    await watch.store_flags([1], FlagOp.ADD, ["\\Seen"])
    mark = await highest(service)
    assert await watch.store_and_expunge([1], ["\\Seen"], [7]) == []
    assert await watch.store_and_expunge([], ["\\Seen"], []) == []
    assert await highest(service) == mark


async def test_other_watches_hear_the_flags_and_the_expunge_at_one_modseq(
        service: MailService) -> None:
    await fill(service, 3)
    pop = await rw(service)
    imap = await rw(service)
    assert await imap.catch_up() == []
    await pop.store_and_expunge([1], ["\\Seen"], [3])
    assert imap.rang, "the ring comes before the call returns"
    events = await imap.catch_up()
    assert [type(e) for e in events] == [MessagesExpunged, FlagsChanged]
    gone, flagged = events
    assert isinstance(gone, MessagesExpunged) and isinstance(flagged, FlagsChanged)
    assert gone.uids == (3,)
    assert flagged.states == (FlagState(1, ("\\Seen",), gone.modseq),)
    assert imap.highestmodseq == gone.modseq == await highest(service)


async def test_another_instance_sees_the_update(site: Site) -> None:
    one = make_service(await site.open())
    two = make_service(await site.open())
    await fill(one, 2)
    far = await two.open(U, "INBOX", readonly=True)
    await (await rw(one)).store_and_expunge([2], ["\\Seen"], [1])
    events = await far.catch_up()
    assert [type(e) for e in events] == [MessagesExpunged, FlagsChanged]
    assert await flags_by_uid(far) == {2: ("\\Seen",)}


async def test_refuses_recent_and_read_only(service: MailService) -> None:
    await fill(service, 1)
    await refused(InvalidFlag, (await rw(service)).store_and_expunge([1], ["\\Recent"], []))
    examined = await service.open(U, "INBOX", readonly=True)
    await refused(ReadOnly, examined.store_and_expunge([1], ["\\Seen"], [1]))
    assert await flags_by_uid(examined) == {1: ()}


async def test_is_one_commit(service: MailService, kind: Kind, commits: Commits) -> None:
    """The point of the call: POP3's QUIT pays one commit (one sync), not
    three (\\Seen, \\Deleted, expunge). The memory engine has no commits."""
    await fill(service, 4)
    watch = await rw(service)
    before = commits.count
    assert await watch.store_and_expunge([1, 2], ["\\Seen"], [3, 4]) == [3, 4]
    expected: dict[str, Any] = {"memory": 0, "sqlite": 1, "postgres": 1}
    assert commits.count - before == expected[kind.engine]

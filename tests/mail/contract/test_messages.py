"""The mail contract, part 2: messages through ``MailService.deliver`` and a
``MailboxWatch`` (RFC 3501 §6.3.11, §6.4; RFC 7162 MODSEQ; RFC 4315 UIDs;
RFC 6851 MOVE; RFC 3502 MULTIAPPEND)."""

from __future__ import annotations

import datetime
import os

import pytest

from imapd.mail.errors import InvalidFlag, NoSuchMailbox, ReadOnly, TargetMissing
from imapd.mail.events import MailboxDeleted
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.mail.watch import MailboxWatch
from tests.mail.contract.conftest import U, deliver, fill, flags_by_uid, refused

TZ = datetime.timezone(datetime.timedelta(hours=-7, minutes=-30))
WHEN = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=TZ)


async def rw(service: MailService, name: str = "INBOX") -> MailboxWatch:
    return await service.open(U, name, readonly=False)


async def highest(service: MailService, name: str = "INBOX") -> int:
    return (await service.status(U, name)).highestmodseq


# --- APPEND ------------------------------------------------------------------

async def test_deliver_returns_uidvalidity_and_ascending_uids(service: MailService) -> None:
    validity = (await service.status(U, "INBOX")).uidvalidity
    results = [await deliver(service, "INBOX", b"m") for _ in range(3)]
    assert [r.uidvalidity for r in results] == [validity] * 3
    assert [r.uid for r in results] == [1, 2, 3]
    assert (await service.status(U, "INBOX")).uidnext == 4


async def test_deliver_keeps_exact_bytes_size_date_flags_and_analysis(service: MailService) -> None:
    raw = b"From: a\r\nX: \x00\xff\xfe bare\nlf\r\n\r\nbody\r\n" + os.urandom(3000)
    result = await deliver(service, "INBOX", raw, ["\\Seen", "$Label1", "\\draft"], internal_date=WHEN)
    watch = await rw(service)
    assert await watch.read_message(result.uid) == raw
    (record,) = await watch.fetch_records([result.uid], with_meta=True)
    assert record.size == len(raw)
    assert record.internal_date == WHEN and record.internal_date.utcoffset() == TZ.utcoffset(None)
    assert record.flags == ("\\Seen", "\\Draft", "$Label1")
    assert record.meta != b""  # deliver stored the message analysis
    assert (await watch.fetch_records([result.uid]))[0].meta == b""


async def test_deliver_default_internal_date_is_now(service: MailService) -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    uid = (await deliver(service, "INBOX", b"m")).uid
    (record,) = await (await rw(service)).fetch_records([uid])
    assert record.internal_date.utcoffset() is not None
    assert before <= record.internal_date <= datetime.datetime.now(datetime.timezone.utc)


async def test_deliver_empty_message(service: MailService) -> None:
    uid = (await deliver(service, "INBOX", b"")).uid
    watch = await rw(service)
    assert await watch.read_message(uid) == b""
    assert (await watch.fetch_records())[0].size == 0


@pytest.mark.parametrize("flag", ["\\Recent", "\\recent", "\\Unknown", "bad(kw", "sp ace", "", "ü"])
async def test_deliver_refuses_bad_flags(service: MailService, flag: str) -> None:
    await refused(InvalidFlag, deliver(service, "INBOX", b"m", [flag]))
    assert (await service.status(U, "INBOX")).uidnext == 1


async def test_deliver_to_missing_mailbox_is_target_missing(service: MailService) -> None:
    await refused(TargetMissing, deliver(service, "Nope", b"m"))


async def test_deliver_many_is_all_or_nothing(service: MailService) -> None:
    items = [AppendItem(b"a"), AppendItem(b"b", ("\\Seen",)), AppendItem(b"c", ("\\Recent",))]
    await refused(InvalidFlag, service.deliver(U, "INBOX", items))
    status = await service.status(U, "INBOX")
    assert (status.messages, status.uidnext, status.highestmodseq) == (0, 1, 1)
    result = await service.deliver(U, "INBOX", items[:2])
    assert result.uids == (1, 2)
    assert await highest(service) == 2  # one call, one MODSEQ


async def test_deliver_without_items(service: MailService) -> None:
    assert (await service.deliver(U, "INBOX", [])).uids == ()
    await refused(TargetMissing, service.deliver(U, "nope", []))


# --- keywords ----------------------------------------------------------------

async def test_keywords_are_case_insensitive_and_keep_first_spelling(service: MailService) -> None:
    await deliver(service, "INBOX", b"m", ["$Work"])
    await deliver(service, "INBOX", b"m", ["$WORK", "$work", "Other"])
    watch = await rw(service)
    assert await flags_by_uid(watch) == {1: ("$Work",), 2: ("$Work", "Other")}
    assert set(watch.snapshot.keywords) == {"$Work", "Other"}
    await watch.store_flags([1, 2], FlagOp.REMOVE, ["$WoRk"])
    assert await flags_by_uid(watch) == {1: (), 2: ("Other",)}


# --- STORE and MODSEQ ---------------------------------------------------------

async def test_store_modes(service: MailService) -> None:
    await fill(service, 3)
    watch = await rw(service)
    await watch.store_flags([1, 2], FlagOp.ADD, ["\\Seen", "k1"])
    await watch.store_flags([2, 3], FlagOp.ADD, ["\\Flagged"])
    await watch.store_flags([2], FlagOp.REMOVE, ["\\Seen", "k1", "absent"])
    await watch.store_flags([3], FlagOp.REPLACE, ["\\Answered", "k2"])
    assert await flags_by_uid(watch) == {
        1: ("\\Seen", "k1"), 2: ("\\Flagged",), 3: ("\\Answered", "k2")}
    await watch.store_flags([3], FlagOp.REPLACE, [])
    assert (await flags_by_uid(watch))[3] == ()


async def test_only_changed_messages_get_a_new_modseq(service: MailService) -> None:
    await fill(service, 3)
    watch = await rw(service)
    await watch.store_flags([1], FlagOp.ADD, ["\\Seen"])
    before = {r.uid: r.modseq for r in await watch.fetch_records()}
    top = await highest(service)
    result = await watch.store_flags([1, 2, 3, 99], FlagOp.ADD, ["\\Seen"])
    assert result.changed == {2, 3}
    states = {s.uid: s for s in result.states}
    assert set(states) == {1, 2, 3}
    assert states[1].modseq == before[1]
    assert states[2].modseq == states[3].modseq == top + 1
    assert all(s.flags == ("\\Seen",) for s in result.states)
    assert await highest(service) == top + 1
    # A STORE that changes nothing assigns no MODSEQ at all.
    nothing = await watch.store_flags([1, 2, 3], FlagOp.ADD, ["\\Seen"])
    assert nothing.changed == frozenset()
    assert await highest(service) == top + 1


async def test_every_kind_of_change_raises_highestmodseq(service: MailService) -> None:
    seen = [await highest(service)]
    await fill(service, 2)
    seen.append(await highest(service))
    watch = await rw(service)
    await watch.store_flags([1], FlagOp.ADD, ["\\Deleted"])
    seen.append(await highest(service))
    await watch.expunge()
    seen.append(await highest(service))
    await watch.copy([2], "INBOX")
    seen.append(await highest(service))
    assert seen == sorted(set(seen)) and seen[0] == 1


async def test_unchangedsince(service: MailService) -> None:
    await fill(service, 3)
    watch = await rw(service)
    await watch.store_flags([2], FlagOp.ADD, ["\\Flagged"])
    modseqs = {r.uid: r.modseq for r in await watch.fetch_records()}
    limit = modseqs[3]  # each delivery had its own MODSEQ: 1 < 3 < 2 now
    assert modseqs[1] < limit < modseqs[2]
    result = await watch.store_flags([1, 2, 3], FlagOp.ADD, ["\\Seen"], unchangedsince=limit)
    assert result.modified == (2,)
    assert {s.uid for s in result.states} == {1, 3}
    assert await flags_by_uid(watch) == {1: ("\\Seen",), 2: ("\\Flagged",), 3: ("\\Seen",)}
    zero = await watch.store_flags([1], FlagOp.ADD, ["x"], unchangedsince=0)
    assert zero.modified == (1,) and zero.states == ()


async def test_store_refuses_recent_and_readonly(service: MailService) -> None:
    await fill(service, 1)
    await refused(InvalidFlag, (await rw(service)).store_flags([1], FlagOp.ADD, ["\\Recent"]))
    await refused(InvalidFlag, (await rw(service)).store_flags([1], FlagOp.ADD, ["\\Bogus"]))
    ro = await service.open(U, "INBOX", readonly=True)
    assert ro.readonly
    await refused(ReadOnly, ro.store_flags([1], FlagOp.ADD, ["\\Seen"]))
    await refused(ReadOnly, ro.expunge())
    await refused(ReadOnly, ro.move([1], "INBOX"))
    assert (await ro.copy([1], "INBOX")).pairs == ((1, 2),)
    assert await flags_by_uid(ro) == {1: (), 2: ()}


async def test_changes_since(service: MailService) -> None:
    await fill(service, 4)
    watch = await rw(service)
    mark = await highest(service)
    await watch.store_flags([3, 1], FlagOp.ADD, ["\\Seen"])
    changes = await watch.changes_since(mark)
    assert [(c.uid, c.flags) for c in changes] == [(1, ("\\Seen",)), (3, ("\\Seen",))]
    assert all(c.modseq == mark + 1 for c in changes)
    assert await watch.changes_since(mark + 1) == []
    assert [c.uid for c in await watch.changes_since(0)] == [1, 2, 3, 4]


# --- EXPUNGE -----------------------------------------------------------------

async def test_expunge_removes_only_deleted(service: MailService) -> None:
    await fill(service, 5)
    watch = await rw(service)
    await watch.store_flags([2, 4, 5], FlagOp.ADD, ["\\Deleted"])
    assert await watch.expunge([4, 5, 1]) == [4, 5]
    assert sorted(await flags_by_uid(watch)) == [1, 2, 3]
    assert await watch.expunge() == [2]
    assert await watch.expunge() == []
    assert await watch.read_message(2) is None


async def test_expunged_since_remembers_history(service: MailService) -> None:
    await fill(service, 4)
    watch = await rw(service)
    start = await highest(service)
    await watch.store_flags([1, 3], FlagOp.ADD, ["\\Deleted"])
    await watch.expunge([3])
    middle = await highest(service)
    await watch.expunge()
    assert await watch.expunged_since(start) == [1, 3]
    assert await watch.expunged_since(middle) == [1]
    assert await watch.expunged_since(await highest(service)) == []


async def test_uids_are_not_reused_after_expunging_the_last(service: MailService) -> None:
    await fill(service, 3)
    watch = await rw(service)
    await watch.store_flags([2, 3], FlagOp.ADD, ["\\Deleted"])
    await watch.expunge()
    assert (await deliver(service, "INBOX", b"again")).uid == 4


# --- COPY and MOVE -----------------------------------------------------------

async def test_copy_keeps_bytes_flags_date_and_analysis_with_new_uids(service: MailService) -> None:
    await service.create_mailbox(U, "Dest")
    await deliver(service, "Dest", b"already there")
    await deliver(service, "INBOX", b"Subject: one\r\n\r\none", ["\\Seen", "$Kw"], internal_date=WHEN)
    await deliver(service, "INBOX", b"two", [], internal_date=WHEN)
    watch = await rw(service)
    source_meta = (await watch.fetch_records([1], with_meta=True))[0].meta
    result = await watch.copy([2, 1, 77], "Dest")
    assert result.uidvalidity == (await service.status(U, "Dest")).uidvalidity
    assert result.pairs == ((1, 2), (2, 3))
    dest = await service.open(U, "Dest", readonly=True)
    records = {r.uid: r for r in await dest.fetch_records(with_meta=True)}
    assert records[2].flags == ("\\Seen", "$Kw") and records[2].meta == source_meta
    assert records[3].internal_date == WHEN
    assert await dest.read_message(2) == b"Subject: one\r\n\r\none"
    assert (await service.status(U, "INBOX")).messages == 2
    await refused(TargetMissing, watch.copy([1], "Missing"))
    assert (await watch.copy([55], "Dest")).pairs == ()


async def test_copy_to_a_placeholder_is_target_missing(service: MailService) -> None:
    await service.create_mailbox(U, "p/q")
    await service.delete_mailbox(U, "p")
    await fill(service, 1)
    watch = await rw(service)
    await refused(TargetMissing, watch.copy([1], "p"))
    await refused(TargetMissing, watch.move([1], "p"))
    assert sorted(await flags_by_uid(watch)) == [1]


async def test_copy_respells_keywords_for_the_target(service: MailService) -> None:
    await service.create_mailbox(U, "Dest")
    await deliver(service, "Dest", b"x", ["$LABEL"])
    await deliver(service, "INBOX", b"y", ["$label"])
    await (await rw(service)).copy([1], "Dest")
    assert await flags_by_uid(await rw(service, "Dest")) == {1: ("$LABEL",), 2: ("$LABEL",)}


async def test_copy_survives_expunge_of_source(service: MailService) -> None:
    await service.create_mailbox(U, "Dest")
    await deliver(service, "INBOX", b"shared body")
    watch = await rw(service)
    await watch.copy([1], "Dest")
    await watch.store_flags([1], FlagOp.ADD, ["\\Deleted"])
    await watch.expunge()
    assert await (await rw(service, "Dest")).read_message(1) == b"shared body"


async def test_move_is_copy_plus_expunge(service: MailService) -> None:
    await service.create_mailbox(U, "Dest")
    await fill(service, 3)
    watch = await rw(service)
    mark = await highest(service)
    result = await watch.move([1, 3], "Dest")
    assert result.pairs == ((1, 1), (3, 2))
    assert sorted(await flags_by_uid(watch)) == [2]
    assert await watch.expunged_since(mark) == [1, 3]
    assert await (await rw(service, "Dest")).read_message(2) == b"message 2\r\n"
    await refused(TargetMissing, watch.move([2], "Missing"))
    assert sorted(await flags_by_uid(watch)) == [2]


async def test_move_within_the_same_mailbox_renumbers(service: MailService) -> None:
    await fill(service, 2)
    watch = await rw(service)
    assert (await watch.move([1], "INBOX")).pairs == ((1, 3),)
    assert sorted(await flags_by_uid(watch)) == [2, 3]


# --- reading -----------------------------------------------------------------

async def test_read_ranges(service: MailService) -> None:
    raw = bytes(range(256)) * 40
    uid = (await deliver(service, "INBOX", raw)).uid
    watch = await rw(service)
    assert await watch.read_message(uid, 10, 20) == raw[10:30]
    assert await watch.read_message(uid, 10_000) == raw[10_000:]
    assert await watch.read_message(uid, len(raw) - 5, 100) == raw[-5:]
    assert await watch.read_message(uid, len(raw) + 5, 10) == b""
    assert await watch.read_message(uid, 0, 0) == b""
    assert await watch.read_message(999) is None


@pytest.mark.parametrize("size", [5_000, 3 * 1024 * 1024 + 17])
async def test_open_message_streams_exact_bytes(service: MailService, size: int) -> None:
    raw = os.urandom(size)
    uid = (await deliver(service, "INBOX", raw)).uid
    watch = await rw(service)
    body = await watch.open_message(uid)
    assert body is not None and body.size == size
    chunks = list(body.chunks())
    assert b"".join(chunks) == raw
    if size > 1024 * 1024:
        assert len(chunks) > 1
    assert await watch.open_message(uid + 1) is None


async def test_stream_is_a_snapshot_that_survives_expunge(service: MailService) -> None:
    raw = os.urandom(2 * 1024 * 1024)
    uid = (await deliver(service, "INBOX", raw, ["\\Deleted"])).uid
    watch = await rw(service)
    body = await watch.open_message(uid)
    assert body is not None
    chunks = body.chunks()
    first = next(chunks)
    await watch.expunge()
    assert await watch.read_message(uid) is None
    assert first + b"".join(chunks) == raw
    body.close()


async def test_fetch_records_subsets(service: MailService) -> None:
    await service.deliver(U, "INBOX", [AppendItem(b"m%d" % i) for i in range(1200)])
    watch = await rw(service)
    await watch.store_flags(list(range(1, 1201, 2)), FlagOp.ADD, ["\\Deleted"])
    await watch.expunge()
    wanted = list(range(1, 1201, 3))  # large and sparse: mixes present and expunged
    got = [r.uid for r in await watch.fetch_records(wanted)]
    assert got == [u for u in wanted if u % 2 == 0]
    assert [r.uid for r in await watch.fetch_records([1000, 2, 4, 4])] == [2, 4, 1000]
    assert await watch.fetch_records([]) == []
    assert len(await watch.fetch_records()) == 600


async def test_fetch_flags_matches_records(service: MailService) -> None:
    await fill(service, 5)
    watch = await rw(service)
    await watch.store_flags([2, 4], FlagOp.ADD, ["\\Answered", "kw"])
    records = await watch.fetch_records()
    states = await watch.fetch_flags()
    assert [(s.uid, s.flags, s.modseq) for s in states] == [
        (r.uid, r.flags, r.modseq) for r in records]
    assert [s.uid for s in await watch.fetch_flags([4, 2, 9])] == [2, 4]
    assert states[1].flags == ("\\Answered", "kw")


# --- STATUS ------------------------------------------------------------------

async def test_status_counts(service: MailService) -> None:
    await deliver(service, "INBOX", b"12345", ["\\Seen"])
    await deliver(service, "INBOX", b"123")
    await deliver(service, "INBOX", b"1", ["\\Deleted"])
    status = await service.status(U, "INBOX")
    assert (status.messages, status.unseen, status.size, status.uidnext, status.recent) == (
        3, 2, 9, 4, 3)
    assert status.name == "INBOX"
    assert status.item("UIDNEXT") == 4 and status.item("HIGHESTMODSEQ") == status.highestmodseq
    assert (status.deleted, status.deleted_size) == (1, 1)
    await service.open(U, "INBOX", readonly=True)
    assert (await service.status(U, "INBOX")).recent == 3  # EXAMINE claims nothing
    await rw(service)
    assert (await service.status(U, "INBOX")).recent == 0


# --- a watch whose mailbox went away --------------------------------------------

async def test_operations_on_a_deleted_mailbox_are_nonexistent(service: MailService) -> None:
    await service.create_mailbox(U, "Tmp")
    await deliver(service, "Tmp", b"m")
    watch = await rw(service, "Tmp")
    await service.delete_mailbox(U, "Tmp")
    await service.create_mailbox(U, "Tmp")
    await deliver(service, "Tmp", b"a message of the new mailbox")
    # The watch's ref names the old incarnation: never the new mailbox's messages.
    for call in (watch.fetch_records(), watch.expunge(), watch.read_message(1),
                 watch.store_flags([1], FlagOp.ADD, ["\\Seen"]), watch.copy([1], "INBOX")):
        await refused(NoSuchMailbox, call)
    assert await watch.catch_up() == [MailboxDeleted()]
    assert watch.deleted
    assert (await service.status(U, "Tmp")).messages == 1

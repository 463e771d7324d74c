"""The MailStore contract, part 2: messages (RFC 3501 §6.3.11, §6.4;
RFC 7162 MODSEQ; RFC 4315 UIDs; RFC 6851 MOVE)."""

from __future__ import annotations

import datetime
import os

import pytest

from imapd.core.errors import ErrorKind, ImapError
from imapd.mail.events import Selection
from imapd.mail.flags import FlagOp
from imapd.mail.interface import MailStore
from imapd.mail.records import AppendItem
from tests.storage.sqlite.helpers import code_of, error_of, run

U = "alice"
TZ = datetime.timezone(datetime.timedelta(hours=-7, minutes=-30))
WHEN = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=TZ)


def fill(store: MailStore, count: int, mailbox: str = "INBOX") -> list[int]:
    return [run(store.append(U, mailbox, b"message %d\r\n" % i)).uid for i in range(count)]


def rw(store: MailStore, mailbox: str = "INBOX") -> Selection:
    return run(store.select(U, mailbox, readonly=False))


def flags_by_uid(store: MailStore, sel: Selection) -> dict[int, tuple[str, ...]]:
    return {r.uid: r.flags for r in run(store.fetch_records(sel))}


# --- APPEND ------------------------------------------------------------------

def test_append_returns_uidvalidity_and_ascending_uids(store: MailStore) -> None:
    validity = run(store.status(U, "INBOX")).uidvalidity
    results = [run(store.append(U, "INBOX", b"m")) for _ in range(3)]
    assert [r.uidvalidity for r in results] == [validity] * 3
    assert [r.uid for r in results] == [1, 2, 3]
    assert run(store.status(U, "INBOX")).uidnext == 4


def test_append_keeps_exact_bytes_size_date_flags_and_meta(store: MailStore) -> None:
    raw = b"From: a\r\nX: \x00\xff\xfe bare\nlf\r\n\r\nbody\r\n" + os.urandom(3000)
    result = run(store.append(U, "INBOX", raw, ["\\Seen", "$Label1", "\\draft"], WHEN, b"META\x00"))
    sel = rw(store)
    assert run(store.read_message(sel, result.uid)) == raw
    (record,) = run(store.fetch_records(sel, [result.uid], with_meta=True))
    assert record.size == len(raw)
    assert record.internal_date == WHEN and record.internal_date.utcoffset() == TZ.utcoffset(None)
    assert record.flags == ("\\Seen", "\\Draft", "$Label1")
    assert record.meta == b"META\x00"
    assert run(store.fetch_records(sel, [result.uid]))[0].meta == b""


def test_append_default_internal_date_is_now(store: MailStore) -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    uid = run(store.append(U, "INBOX", b"m")).uid
    (record,) = run(store.fetch_records(rw(store), [uid]))
    assert before <= record.internal_date <= datetime.datetime.now(datetime.timezone.utc)


def test_append_empty_message(store: MailStore) -> None:
    uid = run(store.append(U, "INBOX", b"")).uid
    sel = rw(store)
    assert run(store.read_message(sel, uid)) == b""
    assert run(store.fetch_records(sel))[0].size == 0


@pytest.mark.parametrize("flag", ["\\Recent", "\\recent", "\\Unknown", "bad(kw", "sp ace", "", "ü"])
def test_append_refuses_bad_flags_as_bad(store: MailStore, flag: str) -> None:
    error = error_of(store.append(U, "INBOX", b"m", [flag]))
    assert error.kind is ErrorKind.BAD
    assert run(store.status(U, "INBOX")).uidnext == 1


def test_append_to_missing_mailbox_is_trycreate(store: MailStore) -> None:
    assert code_of(store.append(U, "Nope", b"m")) == "TRYCREATE"


def test_append_many_is_all_or_nothing(store: MailStore) -> None:
    items = [AppendItem(b"a"), AppendItem(b"b", ("\\Seen",)), AppendItem(b"c", ("\\Recent",))]
    with pytest.raises(ImapError):
        run(store.append_many(U, "INBOX", items))
    status = run(store.status(U, "INBOX"))
    assert (status.messages, status.uidnext, status.highestmodseq) == (0, 1, 1)
    result = run(store.append_many(U, "INBOX", items[:2]))
    assert result.uids == (1, 2)
    assert run(store.status(U, "INBOX")).highestmodseq == 2


def test_append_many_without_items(store: MailStore) -> None:
    assert run(store.append_many(U, "INBOX", [])).uids == ()
    assert code_of(store.append_many(U, "nope", [])) == "TRYCREATE"


# --- keywords ----------------------------------------------------------------

def test_keywords_are_case_insensitive_and_keep_first_spelling(store: MailStore) -> None:
    run(store.append(U, "INBOX", b"m", ["$Work"]))
    run(store.append(U, "INBOX", b"m", ["$WORK", "$work", "Other"]))
    sel = rw(store)
    assert flags_by_uid(store, sel) == {1: ("$Work",), 2: ("$Work", "Other")}
    assert sel.snapshot.keywords == ("Other", "$Work") or set(sel.snapshot.keywords) == {"$Work", "Other"}
    run(store.store_flags(sel, [1, 2], FlagOp.REMOVE, ["$WoRk"]))
    assert flags_by_uid(store, sel) == {1: (), 2: ("Other",)}


# --- STORE and MODSEQ ---------------------------------------------------------

def test_store_modes(store: MailStore) -> None:
    fill(store, 3)
    sel = rw(store)
    run(store.store_flags(sel, [1, 2], FlagOp.ADD, ["\\Seen", "k1"]))
    run(store.store_flags(sel, [2, 3], FlagOp.ADD, ["\\Flagged"]))
    run(store.store_flags(sel, [2], FlagOp.REMOVE, ["\\Seen", "k1", "absent"]))
    run(store.store_flags(sel, [3], FlagOp.REPLACE, ["\\Answered", "k2"]))
    assert flags_by_uid(store, sel) == {
        1: ("\\Seen", "k1"), 2: ("\\Flagged",), 3: ("\\Answered", "k2")}
    run(store.store_flags(sel, [3], FlagOp.REPLACE, []))
    assert flags_by_uid(store, sel)[3] == ()


def test_only_changed_messages_get_a_new_modseq(store: MailStore) -> None:
    fill(store, 3)
    sel = rw(store)
    run(store.store_flags(sel, [1], FlagOp.ADD, ["\\Seen"]))
    before = {r.uid: r.modseq for r in run(store.fetch_records(sel))}
    highest = run(store.status(U, "INBOX")).highestmodseq
    result = run(store.store_flags(sel, [1, 2, 3, 99], FlagOp.ADD, ["\\Seen"]))
    assert result.changed == {2, 3}
    states = {s.uid: s for s in result.states}
    assert set(states) == {1, 2, 3}
    assert states[1].modseq == before[1]
    assert states[2].modseq == states[3].modseq == highest + 1
    assert all(s.flags == ("\\Seen",) for s in result.states)
    assert run(store.status(U, "INBOX")).highestmodseq == highest + 1
    # A STORE that changes nothing assigns no MODSEQ at all.
    nothing = run(store.store_flags(sel, [1, 2, 3], FlagOp.ADD, ["\\Seen"]))
    assert nothing.changed == frozenset()
    assert run(store.status(U, "INBOX")).highestmodseq == highest + 1


def test_every_kind_of_change_raises_highestmodseq(store: MailStore) -> None:
    seen = [run(store.status(U, "INBOX")).highestmodseq]
    fill(store, 2)
    seen.append(run(store.status(U, "INBOX")).highestmodseq)
    sel = rw(store)
    run(store.store_flags(sel, [1], FlagOp.ADD, ["\\Deleted"]))
    seen.append(run(store.status(U, "INBOX")).highestmodseq)
    run(store.expunge(sel))
    seen.append(run(store.status(U, "INBOX")).highestmodseq)
    run(store.copy(sel, [2], "INBOX"))
    seen.append(run(store.status(U, "INBOX")).highestmodseq)
    assert seen == sorted(set(seen)) and seen[0] >= 1


def test_unchangedsince(store: MailStore) -> None:
    fill(store, 3)
    sel = rw(store)
    run(store.store_flags(sel, [2], FlagOp.ADD, ["\\Flagged"]))
    modseqs = {r.uid: r.modseq for r in run(store.fetch_records(sel))}
    limit = modseqs[3]  # each append had its own MODSEQ: 1 < 3 < 2 now
    assert modseqs[1] < limit < modseqs[2]
    result = run(store.store_flags(sel, [1, 2, 3], FlagOp.ADD, ["\\Seen"], unchangedsince=limit))
    assert result.modified == (2,)
    assert {s.uid for s in result.states} == {1, 3}
    assert flags_by_uid(store, sel) == {1: ("\\Seen",), 2: ("\\Flagged",), 3: ("\\Seen",)}
    zero = run(store.store_flags(sel, [1], FlagOp.ADD, ["x"], unchangedsince=0))
    assert zero.modified == (1,) and zero.states == ()


def test_store_refuses_recent_and_readonly(store: MailStore) -> None:
    fill(store, 1)
    assert error_of(store.store_flags(rw(store), [1], FlagOp.ADD, ["\\Recent"])).kind is ErrorKind.BAD
    ro = run(store.select(U, "INBOX", readonly=True))
    assert code_of(store.store_flags(ro, [1], FlagOp.ADD, ["\\Seen"])) == "READ-ONLY"
    assert code_of(store.expunge(ro)) == "READ-ONLY"
    assert code_of(store.move(ro, [1], "INBOX")) == "READ-ONLY"
    assert run(store.copy(ro, [1], "INBOX")).pairs == ((1, 2),)


def test_changes_since(store: MailStore) -> None:
    fill(store, 4)
    sel = rw(store)
    mark = run(store.status(U, "INBOX")).highestmodseq
    run(store.store_flags(sel, [3, 1], FlagOp.ADD, ["\\Seen"]))
    changes = run(store.changes_since(sel, mark))
    assert [(c.uid, c.flags) for c in changes] == [(1, ("\\Seen",)), (3, ("\\Seen",))]
    assert all(c.modseq == mark + 1 for c in changes)
    assert run(store.changes_since(sel, mark + 1)) == []
    assert [c.uid for c in run(store.changes_since(sel, 0))] == [1, 2, 3, 4]


# --- EXPUNGE -----------------------------------------------------------------

def test_expunge_removes_only_deleted(store: MailStore) -> None:
    fill(store, 5)
    sel = rw(store)
    run(store.store_flags(sel, [2, 4, 5], FlagOp.ADD, ["\\Deleted"]))
    assert run(store.expunge(sel, [4, 5, 1])) == [4, 5]
    assert sorted(flags_by_uid(store, sel)) == [1, 2, 3]
    assert run(store.expunge(sel)) == [2]
    assert run(store.expunge(sel)) == []
    assert run(store.read_message(sel, 2)) is None


def test_expunged_since_remembers_history(store: MailStore) -> None:
    fill(store, 4)
    sel = rw(store)
    start = run(store.status(U, "INBOX")).highestmodseq
    run(store.store_flags(sel, [1, 3], FlagOp.ADD, ["\\Deleted"]))
    run(store.expunge(sel, [3]))
    middle = run(store.status(U, "INBOX")).highestmodseq
    run(store.expunge(sel))
    assert run(store.expunged_since(sel, start)) == [1, 3]
    assert run(store.expunged_since(sel, middle)) == [1]
    assert run(store.expunged_since(sel, run(store.status(U, "INBOX")).highestmodseq)) == []


def test_uids_are_not_reused_after_expunging_the_last(store: MailStore) -> None:
    fill(store, 3)
    sel = rw(store)
    run(store.store_flags(sel, [2, 3], FlagOp.ADD, ["\\Deleted"]))
    run(store.expunge(sel))
    assert run(store.append(U, "INBOX", b"again")).uid == 4


# --- COPY and MOVE -----------------------------------------------------------

def test_copy_keeps_bytes_flags_and_date_with_new_uids(store: MailStore) -> None:
    run(store.create_mailbox(U, "Dest"))
    run(store.append(U, "Dest", b"already there"))
    run(store.append(U, "INBOX", b"one", ["\\Seen", "$Kw"], WHEN, b"meta1"))
    run(store.append(U, "INBOX", b"two", [], WHEN))
    sel = rw(store)
    result = run(store.copy(sel, [2, 1, 77], "Dest"))
    assert result.uidvalidity == run(store.status(U, "Dest")).uidvalidity
    assert result.pairs == ((1, 2), (2, 3))
    dest = run(store.select(U, "Dest", readonly=True))
    records = {r.uid: r for r in run(store.fetch_records(dest, with_meta=True))}
    assert records[2].flags == ("\\Seen", "$Kw") and records[2].meta == b"meta1"
    assert records[3].internal_date == WHEN
    assert run(store.read_message(dest, 2)) == b"one"
    assert run(store.status(U, "INBOX")).messages == 2
    assert code_of(store.copy(sel, [1], "Missing")) == "TRYCREATE"
    assert run(store.copy(sel, [55], "Dest")).pairs == ()


def test_copy_respells_keywords_for_the_target(store: MailStore) -> None:
    run(store.create_mailbox(U, "Dest"))
    run(store.append(U, "Dest", b"x", ["$LABEL"]))
    run(store.append(U, "INBOX", b"y", ["$label"]))
    run(store.copy(rw(store), [1], "Dest"))
    assert flags_by_uid(store, rw(store, "Dest")) == {1: ("$LABEL",), 2: ("$LABEL",)}


def test_copy_survives_expunge_of_source(store: MailStore) -> None:
    run(store.create_mailbox(U, "Dest"))
    run(store.append(U, "INBOX", b"shared body"))
    sel = rw(store)
    run(store.copy(sel, [1], "Dest"))
    run(store.store_flags(sel, [1], FlagOp.ADD, ["\\Deleted"]))
    run(store.expunge(sel))
    assert run(store.read_message(rw(store, "Dest"), 1)) == b"shared body"


def test_move_is_copy_plus_expunge(store: MailStore) -> None:
    run(store.create_mailbox(U, "Dest"))
    fill(store, 3)
    sel = rw(store)
    mark = run(store.status(U, "INBOX")).highestmodseq
    result = run(store.move(sel, [1, 3], "Dest"))
    assert result.pairs == ((1, 1), (3, 2))
    assert sorted(flags_by_uid(store, sel)) == [2]
    assert run(store.expunged_since(sel, mark)) == [1, 3]
    assert run(store.read_message(rw(store, "Dest"), 2)) == b"message 2\r\n"
    assert code_of(store.move(sel, [2], "Missing")) == "TRYCREATE"
    assert sorted(flags_by_uid(store, sel)) == [2]


def test_move_within_the_same_mailbox_renumbers(store: MailStore) -> None:
    fill(store, 2)
    sel = rw(store)
    assert run(store.move(sel, [1], "INBOX")).pairs == ((1, 3),)
    assert sorted(flags_by_uid(store, sel)) == [2, 3]


# --- reading -----------------------------------------------------------------

def test_read_ranges(store: MailStore) -> None:
    raw = bytes(range(256)) * 40
    uid = run(store.append(U, "INBOX", raw)).uid
    sel = rw(store)
    assert run(store.read_message(sel, uid, 10, 20)) == raw[10:30]
    assert run(store.read_message(sel, uid, 10_000)) == raw[10_000:]
    assert run(store.read_message(sel, uid, len(raw) - 5, 100)) == raw[-5:]
    assert run(store.read_message(sel, uid, len(raw) + 5, 10)) == b""
    assert run(store.read_message(sel, uid, 0, 0)) == b""
    assert run(store.read_message(sel, 999)) is None


@pytest.mark.parametrize("size", [5_000, 3 * 1024 * 1024 + 17])
def test_open_message_streams_exact_bytes(store: MailStore, size: int) -> None:
    raw = os.urandom(size)
    uid = run(store.append(U, "INBOX", raw)).uid
    sel = rw(store)
    body = run(store.open_message(sel, uid))
    assert body is not None and body.size == size
    chunks = list(body.chunks())
    assert b"".join(chunks) == raw
    if size > 1024 * 1024:
        assert len(chunks) > 1
    assert run(store.open_message(sel, uid + 1)) is None


def test_stream_is_a_snapshot_that_survives_expunge(store: MailStore) -> None:
    raw = os.urandom(2 * 1024 * 1024)
    uid = run(store.append(U, "INBOX", raw, ["\\Deleted"])).uid
    sel = rw(store)
    body = run(store.open_message(sel, uid))
    assert body is not None
    chunks = body.chunks()
    first = next(chunks)
    run(store.expunge(sel))
    assert run(store.read_message(sel, uid)) is None
    assert first + b"".join(chunks) == raw


def test_fetch_records_subsets(store: MailStore) -> None:
    run(store.append_many(U, "INBOX", [AppendItem(b"m%d" % i) for i in range(1200)]))
    sel = rw(store)
    run(store.store_flags(sel, list(range(1, 1201, 2)), FlagOp.ADD, ["\\Deleted"]))
    run(store.expunge(sel))
    wanted = list(range(1, 1201, 3))  # large and sparse: mixes present and expunged
    got = [r.uid for r in run(store.fetch_records(sel, wanted))]
    assert got == [u for u in wanted if u % 2 == 0]
    assert [r.uid for r in run(store.fetch_records(sel, [1000, 2, 4, 4]))] == [2, 4, 1000]
    assert run(store.fetch_records(sel, [])) == []
    assert len(run(store.fetch_records(sel))) == 600


def test_fetch_flags_matches_records(store: MailStore) -> None:
    fill(store, 5)
    sel = rw(store)
    run(store.store_flags(sel, [2, 4], FlagOp.ADD, ["\\Answered", "kw"]))
    records = run(store.fetch_records(sel))
    states = run(store.fetch_flags(sel))
    assert [(s.uid, s.flags, s.modseq) for s in states] == [
        (r.uid, r.flags, r.modseq) for r in records]
    assert [s.uid for s in run(store.fetch_flags(sel, [4, 2, 9]))] == [2, 4]
    assert states[1].flags == ("\\Answered", "kw")


# --- STATUS ------------------------------------------------------------------

def test_status_counts(store: MailStore) -> None:
    run(store.append(U, "INBOX", b"12345", ["\\Seen"]))
    run(store.append(U, "INBOX", b"123"))
    run(store.append(U, "INBOX", b"1", ["\\Deleted"]))
    status = run(store.status(U, "INBOX"))
    assert (status.messages, status.unseen, status.size, status.uidnext, status.recent) == (
        3, 2, 9, 4, 3)
    assert status.item("UIDNEXT") == 4 and status.item("HIGHESTMODSEQ") == status.highestmodseq
    rw(store)
    assert run(store.status(U, "INBOX")).recent == 0


# --- deleted selections --------------------------------------------------------

def test_operations_on_a_deleted_selection_are_nonexistent(store: MailStore) -> None:
    run(store.create_mailbox(U, "Tmp"))
    run(store.append(U, "Tmp", b"m"))
    sel = rw(store, "Tmp")
    run(store.delete_mailbox(U, "Tmp"))
    run(store.create_mailbox(U, "Tmp"))
    assert sel.deleted
    for coro in (store.fetch_records(sel), store.expunge(sel),
                 store.store_flags(sel, [1], FlagOp.ADD, ["\\Seen"]), store.copy(sel, [1], "INBOX")):
        assert code_of(coro) == "NONEXISTENT"

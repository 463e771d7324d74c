"""The MailStore contract, part 3: change delivery to selections, \\Recent,
several store instances on one data directory (as several processes), and
restarts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import pytest

from imapd.mail.events import (
    ChangeEvent, FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged,
    Selection,
)
from imapd.mail.flags import FlagOp
from imapd.mail.interface import MailStore
from imapd.mail.records import AppendItem, FlagState
from tests.storage.sqlite.conftest import Opener
from tests.storage.sqlite.helpers import run

U = "alice"


class Recorder:
    """Collects the event batches delivered to one selection."""

    def __init__(self, selection: Selection) -> None:
        self.batches: list[list[ChangeEvent]] = []
        selection.listener = self.receive

    def receive(self, events: Sequence[ChangeEvent]) -> None:
        self.batches.append(list(events))

    def take(self) -> list[ChangeEvent]:
        events = [e for batch in self.batches for e in batch]
        self.batches.clear()
        return events


def select(store: MailStore, readonly: bool = False, name: str = "INBOX") -> tuple[Selection, Recorder]:
    sel = run(store.select(U, name, readonly))
    return sel, Recorder(sel)


# --- delivery within one process ----------------------------------------------

def test_every_selection_gets_additions_including_the_appender(store: MailStore) -> None:
    a, rec_a = select(store)
    b, rec_b = select(store, readonly=True)
    run(store.append(U, "INBOX", b"m"))
    assert rec_a.take() == [MessagesAdded((1,), frozenset({1}))]
    # Read-only selections see unclaimed messages as recent but claim nothing.
    assert rec_b.take() == [MessagesAdded((1,), frozenset())]
    run(store.append_many(U, "INBOX", [AppendItem(b"x"), AppendItem(b"y")]))
    assert rec_a.take() == [MessagesAdded((2, 3), frozenset({2, 3}))]
    assert rec_b.take() == [MessagesAdded((2, 3), frozenset())]


def test_flag_changes_are_own_for_the_origin_only(store: MailStore) -> None:
    run(store.append(U, "INBOX", b"m"))
    a, rec_a = select(store)
    b, rec_b = select(store)
    result = run(store.store_flags(a, [1], FlagOp.ADD, ["\\Seen"]))
    modseq = result.states[0].modseq
    assert rec_b.take() == [FlagsChanged((FlagState(1, ("\\Seen",), modseq),))]
    assert rec_a.take() == [FlagsChanged((FlagState(1, ("\\Seen",), modseq),), own=True)]


def test_own_change_over_an_unseen_change_is_reported_as_foreign(
    opener: Opener, data_dir: Path
) -> None:
    """If another process changed the message and this session has not been
    told yet, its own STORE result must not hide the other change."""
    one, two = opener(data_dir), opener(data_dir)
    run(one.append(U, "INBOX", b"m"))
    sel, rec = select(one)
    other = run(two.select(U, "INBOX", False))
    run(two.store_flags(other, [1], FlagOp.ADD, ["\\Flagged"]))
    run(one.store_flags(sel, [1], FlagOp.ADD, ["\\Seen"]))
    events = rec.take()
    assert len(events) == 1 and isinstance(events[0], FlagsChanged)
    assert not events[0].own and events[0].states[0].flags == ("\\Flagged", "\\Seen")
    run(one.close())
    run(two.close())


def test_expunge_reaches_every_selection_including_origin(store: MailStore) -> None:
    for _ in range(3):
        run(store.append(U, "INBOX", b"m", ["\\Deleted"]))
    a, rec_a = select(store)
    b, rec_b = select(store)
    run(store.expunge(a, [1, 3]))
    for rec in (rec_a, rec_b):
        (event,) = rec.take()
        assert isinstance(event, MessagesExpunged) and event.uids == (1, 3)


def test_move_and_copy_deliver_to_both_mailboxes(store: MailStore) -> None:
    run(store.create_mailbox(U, "Dest"))
    run(store.append(U, "INBOX", b"m"))
    src, rec_src = select(store)
    dst, rec_dst = select(store, name="Dest")
    run(store.copy(src, [1], "Dest"))
    assert rec_src.take() == [] and rec_dst.take() == [MessagesAdded((1,), frozenset({1}))]
    run(store.move(src, [1], "Dest"))
    assert [type(e) for e in rec_src.take()] == [MessagesExpunged]
    assert rec_dst.take() == [MessagesAdded((2,), frozenset({2}))]


def test_rename_and_delete_reach_selections(store: MailStore) -> None:
    run(store.create_mailbox(U, "a/b"))
    sel, rec = select(store, name="a/b")
    run(store.rename_mailbox(U, "a", "z"))
    assert rec.take() == [MailboxRenamed("z/b")] and sel.name == "z/b"
    run(store.append(U, "z/b", b"still works"))
    assert isinstance(rec.take()[0], MessagesAdded)
    run(store.delete_mailbox(U, "z/b"))
    assert rec.take() == [MailboxDeleted()] and sel.deleted


def test_rename_inbox_expunges_in_inbox_selections(store: MailStore) -> None:
    run(store.append(U, "INBOX", b"m"))
    sel, rec = select(store)
    run(store.rename_mailbox(U, "INBOX", "Old"))
    (event,) = rec.take()
    assert isinstance(event, MessagesExpunged) and event.uids == (1,)
    assert not sel.deleted


def test_closed_selection_gets_nothing(store: MailStore) -> None:
    sel, rec = select(store)
    sel.close()
    run(store.append(U, "INBOX", b"m"))
    assert rec.take() == []


# --- \Recent --------------------------------------------------------------------

def test_recent_belongs_to_the_first_read_write_selection(store: MailStore) -> None:
    run(store.append(U, "INBOX", b"1"))
    run(store.append(U, "INBOX", b"2"))
    examine = run(store.select(U, "INBOX", readonly=True))
    assert examine.snapshot.recent == {1, 2}
    first = run(store.select(U, "INBOX", readonly=False))
    assert first.snapshot.recent == {1, 2}
    second = run(store.select(U, "INBOX", readonly=False))
    assert second.snapshot.recent == frozenset()
    assert run(store.select(U, "INBOX", readonly=True)).snapshot.recent == frozenset()
    first.close()
    # Once claimed, a message is never recent again, even after its owner left.
    assert run(store.select(U, "INBOX", readonly=False)).snapshot.recent == frozenset()
    assert run(store.status(U, "INBOX")).recent == 0


def test_new_message_is_recent_in_exactly_one_selection(store: MailStore) -> None:
    recorders = [select(store)[1] for _ in range(3)]
    run(store.append(U, "INBOX", b"m"))
    owners = [r for r in recorders if any(
        isinstance(e, MessagesAdded) and 1 in e.recent for e in r.take())]
    assert len(owners) == 1


def test_recent_claimed_once_across_instances(opener: Opener, data_dir: Path) -> None:
    one, two = opener(data_dir), opener(data_dir)
    _, rec_one = select(one)
    _, rec_two = select(two)
    run(two.append(U, "INBOX", b"from two"))
    run(one.poll_changes())
    run(two.poll_changes())
    recent = [e.recent for r in (rec_one, rec_two) for e in r.take() if isinstance(e, MessagesAdded)]
    assert sorted(len(r) for r in recent) == [0, 1]
    # Appended by a process with no read-write selection: claimed at poll.
    solo = opener(data_dir)
    run(solo.append(U, "INBOX", b"from solo"))
    run(one.poll_changes())
    run(two.poll_changes())
    recent = [e.recent for r in (rec_one, rec_two) for e in r.take() if isinstance(e, MessagesAdded)]
    assert sorted(len(r) for r in recent) == [0, 1]
    for s in (one, two, solo):
        run(s.close())


# --- several instances on one data directory -----------------------------------

def test_changes_cross_instances_only_after_poll(opener: Opener, data_dir: Path) -> None:
    one, two = opener(data_dir), opener(data_dir)
    run(one.append(U, "INBOX", b"first"))
    sel_two, rec_two = select(two)
    assert list(sel_two.snapshot.uids) == [1]
    sel_one = run(one.select(U, "INBOX", False))
    run(one.append(U, "INBOX", b"second"))
    assert rec_two.take() == []
    run(two.poll_changes())
    assert [type(e) for e in rec_two.take()] == [MessagesAdded]
    run(one.store_flags(sel_one, [1], FlagOp.ADD, ["\\Deleted"]))
    run(one.expunge(sel_one))
    run(two.poll_changes())
    assert [type(e) for e in rec_two.take()] == [MessagesExpunged]
    run(two.poll_changes())
    assert rec_two.take() == []
    run(one.rename_mailbox(U, "INBOX", "Moved"))
    run(one.create_mailbox(U, "X"))
    sel_x, rec_x = select(two, name="X")
    run(one.delete_mailbox(U, "X"))
    run(two.poll_changes())
    assert rec_x.take() == [MailboxDeleted()]
    run(one.close())
    run(two.close())


def test_concurrent_writers_from_threads(opener: Opener, data_dir: Path) -> None:
    opener(data_dir)  # create the schema once
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            s = opener(data_dir)
            uids = [run(s.append(U, "INBOX", b"w%d-%d" % (n, i))).uid for i in range(20)]
            results.append(uids)
            run(s.close())
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    all_uids = sorted(u for r in results for u in r)
    assert all_uids == list(range(1, 81))
    for uids in results:
        assert uids == sorted(uids)


# --- restart -------------------------------------------------------------------

def test_reopen_keeps_everything_and_continues_counters(opener: Opener, data_dir: Path) -> None:
    first = opener(data_dir)
    for i in range(3):
        run(first.append(U, "INBOX", b"body %d" % i, ["kw%d" % i], meta=b"m%d" % i))
    sel = run(first.select(U, "INBOX", False))
    run(first.store_flags(sel, [3], FlagOp.ADD, ["\\Deleted"]))
    run(first.expunge(sel))
    before = run(first.status(U, "INBOX"))
    records = run(first.fetch_records(sel, with_meta=True))
    run(first.close())

    second = opener(data_dir)
    after = run(second.status(U, "INBOX"))
    assert after == before
    sel2 = run(second.select(U, "INBOX", False))
    assert run(second.fetch_records(sel2, with_meta=True)) == records
    assert run(second.read_message(sel2, 2)) == b"body 1"
    assert run(second.expunged_since(sel2, 0)) == [3]
    assert run(second.append(U, "INBOX", b"new")).uid == 4
    run(second.store_flags(sel2, [1], FlagOp.ADD, ["\\Seen"]))
    assert run(second.status(U, "INBOX")).highestmodseq == before.highestmodseq + 2
    run(second.close())


def test_store_is_in_wal_mode_with_full_sync(store: MailStore) -> None:
    conn = getattr(store, "conn", None)
    if conn is None:
        pytest.skip("not an SQLite backend")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_change_queries_use_the_modseq_index(store: MailStore) -> None:
    """Synchronising a selection must cost O(changes), not O(mailbox)."""
    conn = getattr(store, "conn", None)
    if conn is None:
        pytest.skip("not an SQLite backend")
    from imapd.storage.sqlite.messages import changed_rows, expunged_since
    plans: list[str] = []
    conn.set_trace_callback(plans.append)
    changed_rows(conn, 1, 5)
    expunged_since(conn, 1, 5)
    conn.set_trace_callback(None)
    for statement in plans:
        detail = " ".join(str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
        assert "_by_modseq" in detail, detail

"""The SELECT UID-list cache and its derivation (``uidcache``) behind
``SqliteBackend.snapshot``: after any sequence of changes, by this backend
or another process's, a snapshot holds exactly the UIDs the database holds;
an uncached list derived from UIDNEXT and the expunge history is exact or
refused (RFC 3501 §2.3.1.1: UIDs ascend and are never reused)."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

from imapd.mail.backend import AddMailbox, MailboxRef, RemoveMailbox, RenameMailbox, TransferMessages
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.storage.sqlite import SqliteBackend
from imapd.storage.sqlite import mailboxes as boxes
from imapd.storage.sqlite.uidcache import UidCache, derived_uids, read_all_uids
from tests.storage.sqlite.backend_helpers import USER, inline, run


def ref(backend: SqliteBackend, name: str) -> MailboxRef:
    run(backend.ensure_user(USER))
    entry = run(backend.lookup(USER, name))
    assert entry is not None
    return entry.ref


def truth(backend: SqliteBackend, name: str) -> list[int]:
    return [int(r[0]) for r in backend.conn.execute(
        "SELECT uid FROM messages JOIN mailboxes ON mailboxes.id=messages.mailbox_id "
        "WHERE mailboxes.name=? ORDER BY uid", (name,))]


def snapshot_uids(backend: SqliteBackend, name: str) -> list[int]:
    snapshot, _ = run(backend.snapshot(ref(backend, name)))
    return list(snapshot.uids)


def append(backend: SqliteBackend, name: str, count: int, deleted: bool = False) -> None:
    flags = ("\\Deleted",) if deleted else ()
    run(backend.append(ref(backend, name), [AppendItem(b"x", flags) for _ in range(count)]))


def add(backend: SqliteBackend, name: str) -> None:
    run(backend.edit_tree(USER, lambda rows: [AddMailbox(name)]))


def random_change(rng: random.Random, one: SqliteBackend, other: SqliteBackend) -> None:
    actor = rng.choice([one, other])  # another process shares the data directory
    roll = rng.random()
    if roll < 0.3:
        append(actor, "INBOX", rng.randint(1, 20), deleted=rng.random() < 0.3)
        return
    inbox = ref(actor, "INBOX")
    uids = snapshot_uids(actor, "INBOX")
    picked = rng.sample(uids, min(len(uids), rng.randint(1, 80))) if uids else []
    if roll < 0.5:
        run(actor.store_flags(inbox, picked, FlagOp.ADD, ["\\Deleted"]))
    elif roll < 0.65:
        run(actor.expunge(inbox))
    elif roll < 0.75:
        run(actor.copy(inbox, picked[:5], ref(actor, "Other"), move=True))
    elif roll < 0.85:
        run(actor.store_flags(inbox, picked, FlagOp.ADD, ["\\Seen"]))
    else:
        moved = snapshot_uids(actor, "Other")[:3]
        run(actor.copy(ref(actor, "Other"), moved, inbox))


def uncached(backend: SqliteBackend, name: str) -> tuple[list[int], array[int] | None]:
    row = boxes.find_by_id(backend.conn, ref(backend, name).id)
    assert row is not None
    return list(read_all_uids(backend.conn, row)), derived_uids(backend.conn, row)


def test_cached_uid_lists_follow_every_change(tmp_path: Path) -> None:
    one, other = inline(tmp_path), inline(tmp_path)
    one.uid_cache = UidCache(max_mailboxes=2, min_messages=0)
    other.uid_cache = UidCache(max_mailboxes=2, min_messages=0)
    try:
        add(one, "Other")
        append(one, "INBOX", 300)
        rng = random.Random(1234)
        derived = 0
        for _ in range(150):
            random_change(rng, one, other)
            for name in ("INBOX", "Other"):
                assert snapshot_uids(one, name) == truth(one, name)
                uids, quick = uncached(one, name)
                assert uids == truth(one, name)
                if quick is not None:
                    derived += 1
                    assert list(quick) == uids
        assert derived > 100  # the derivation is what usually answers
    finally:
        run(one.close())
        run(other.close())


def test_cache_survives_many_expunges_and_mailbox_recreation(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    backend.uid_cache = UidCache(min_messages=0)
    try:
        add(backend, "Box")
        append(backend, "Box", 500)
        append(backend, "Box", 200, deleted=True)
        assert snapshot_uids(backend, "Box") == list(range(1, 701))
        run(backend.expunge(ref(backend, "Box")))  # more removals than one-by-one handles
        assert snapshot_uids(backend, "Box") == list(range(1, 501))
        run(backend.edit_tree(USER, lambda rows: [RemoveMailbox("Box")]))
        add(backend, "Box")
        assert snapshot_uids(backend, "Box") == []
        append(backend, "Box", 3)
        assert snapshot_uids(backend, "Box") == [1, 2, 3]
        run(backend.edit_tree(USER, lambda rows: [
            AddMailbox("Old"), TransferMessages("INBOX", "Old")]))
        append(backend, "INBOX", 2)
        assert snapshot_uids(backend, "INBOX") == truth(backend, "INBOX")
        assert snapshot_uids(backend, "Old") == truth(backend, "Old")
    finally:
        run(backend.close())


def test_the_returned_list_is_the_callers_own(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    backend.uid_cache = UidCache(min_messages=0)
    try:
        append(backend, "INBOX", 5)
        snapshot, _ = run(backend.snapshot(ref(backend, "INBOX")))
        assert isinstance(snapshot.uids, array)
        snapshot.uids.pop()  # a careless caller must not change the next snapshot
        assert snapshot_uids(backend, "INBOX") == [1, 2, 3, 4, 5]
    finally:
        run(backend.close())


def test_transferred_gaps_are_not_history_so_rows_are_read(tmp_path: Path) -> None:
    """RENAME INBOX moves messages with their UIDs; the gaps left by earlier
    expunges are not in the new mailbox's history: the totals disagree."""
    backend = inline(tmp_path)
    try:
        append(backend, "INBOX", 5)
        append(backend, "INBOX", 2, deleted=True)
        append(backend, "INBOX", 5)
        run(backend.expunge(ref(backend, "INBOX")))
        run(backend.edit_tree(USER, lambda rows: [
            AddMailbox("Old"), TransferMessages("INBOX", "Old")]))
        uids, derived = uncached(backend, "Old")
        assert derived is None
        assert uids == truth(backend, "Old") == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
        assert snapshot_uids(backend, "Old") == uids
        uids, derived = uncached(backend, "INBOX")
        assert uids == [] and derived is None
    finally:
        run(backend.close())


def test_a_damaged_history_is_detected(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        append(backend, "INBOX", 4)
        append(backend, "INBOX", 2, deleted=True)
        append(backend, "INBOX", 4)
        run(backend.expunge(ref(backend, "INBOX")))
        box = ref(backend, "INBOX")
        row = boxes.find_by_id(backend.conn, box.id)
        assert row is not None
        expected = [1, 2, 3, 4, 7, 8, 9, 10]
        backend.conn.execute("DELETE FROM expunged WHERE mailbox_id=? AND uid=5", (row.id,))
        assert derived_uids(backend.conn, row) is None
        assert list(read_all_uids(backend.conn, row)) == expected
        backend.conn.execute("INSERT INTO expunged VALUES(?, 7, 99)", (row.id,))
        assert derived_uids(backend.conn, row) is None
        assert snapshot_uids(backend, "INBOX") == expected
    finally:
        run(backend.close())


def test_renamed_mailbox_keeps_its_cached_list(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    backend.uid_cache = UidCache(min_messages=0)
    try:
        add(backend, "A")
        append(backend, "A", 7)
        assert snapshot_uids(backend, "A") == list(range(1, 8))
        run(backend.edit_tree(USER, lambda rows: [RenameMailbox("A", "B")]))
        append(backend, "B", 1)
        assert snapshot_uids(backend, "B") == list(range(1, 9)) == truth(backend, "B")
    finally:
        run(backend.close())

"""The SELECT UID-list cache (``sqlite_uidcache``): after any sequence of
changes, by this store or another process's, a SELECT sees exactly the
UIDs the database holds."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.storage.sqlite.store import SqliteMailStore, open_store
from imapd.storage.sqlite.uidcache import UidCache
from tests.storage.sqlite.helpers import run

USER = "alice"


def truth(store: SqliteMailStore, name: str) -> list[int]:
    return [int(r[0]) for r in store.conn.execute(
        "SELECT uid FROM messages JOIN mailboxes ON mailboxes.id=messages.mailbox_id "
        "WHERE mailboxes.name=? ORDER BY uid", (name,))]


def selected_uids(store: SqliteMailStore, name: str) -> list[int]:
    selection = run(store.select(USER, name, readonly=True))
    try:
        return list(selection.snapshot.uids)
    finally:
        selection.close()


def append(store: SqliteMailStore, name: str, count: int, deleted: bool = False) -> None:
    flags = ("\\Deleted",) if deleted else ()
    run(store.append_many(USER, name, [AppendItem(b"x", flags) for _ in range(count)]))


def random_change(rng: random.Random, store: SqliteMailStore, other: SqliteMailStore) -> None:
    actor = rng.choice([store, other])  # another process shares the data directory
    roll = rng.random()
    if roll < 0.3:
        append(actor, "INBOX", rng.randint(1, 20), deleted=rng.random() < 0.3)
        return
    selection = run(actor.select(USER, "INBOX", readonly=False))
    try:
        uids = list(selection.snapshot.uids)
        picked = rng.sample(uids, min(len(uids), rng.randint(1, 80))) if uids else []
        if roll < 0.5:
            run(actor.store_flags(selection, picked, FlagOp.ADD, ["\\Deleted"]))
        elif roll < 0.65:
            run(actor.expunge(selection))
        elif roll < 0.75:
            run(actor.move(selection, picked[:5], "Other"))
        elif roll < 0.85:
            run(actor.store_flags(selection, picked, FlagOp.ADD, ["\\Seen"]))
        else:
            other_selection = run(actor.select(USER, "Other", readonly=False))
            try:
                moved = list(other_selection.snapshot.uids)[:3]
                run(actor.copy(other_selection, moved, "INBOX"))
            finally:
                other_selection.close()
    finally:
        selection.close()


def test_cached_uid_lists_follow_every_change(tmp_path: Path) -> None:
    store, other = open_store(tmp_path), open_store(tmp_path)
    store.uid_cache = UidCache(max_mailboxes=2, min_messages=0)
    other.uid_cache = UidCache(max_mailboxes=2, min_messages=0)
    try:
        run(store.create_mailbox(USER, "Other"))
        append(store, "INBOX", 300)
        rng = random.Random(1234)
        for _ in range(150):
            random_change(rng, store, other)
            for name in ("INBOX", "Other"):
                assert selected_uids(store, name) == truth(store, name)
    finally:
        run(store.close())
        run(other.close())


def test_cache_survives_many_expunges_and_mailbox_recreation(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.uid_cache = UidCache(min_messages=0)
    try:
        run(store.create_mailbox(USER, "Box"))
        append(store, "Box", 500, deleted=False)
        append(store, "Box", 200, deleted=True)
        assert selected_uids(store, "Box") == list(range(1, 701))
        selection = run(store.select(USER, "Box", readonly=False))
        run(store.expunge(selection))  # more removals than one-by-one handles
        selection.close()
        assert selected_uids(store, "Box") == list(range(1, 501))
        run(store.delete_mailbox(USER, "Box"))
        run(store.create_mailbox(USER, "Box"))
        assert selected_uids(store, "Box") == []
        append(store, "Box", 3)
        assert selected_uids(store, "Box") == [1, 2, 3]
        run(store.rename_mailbox(USER, "INBOX", "Old"))
        append(store, "INBOX", 2)
        assert selected_uids(store, "INBOX") == truth(store, "INBOX")
    finally:
        run(store.close())


def test_the_returned_list_is_the_callers_own(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.uid_cache = UidCache(min_messages=0)
    try:
        append(store, "INBOX", 5)
        selection = run(store.select(USER, "INBOX", readonly=True))
        uids = selection.snapshot.uids
        assert isinstance(uids, array)
        uids.pop()  # a careless caller must not change what the next SELECT sees
        selection.close()
        assert selected_uids(store, "INBOX") == [1, 2, 3, 4, 5]
    finally:
        run(store.close())

"""The uncached UID list (``sqlite_uidcache.read_all_uids``): derived from
UIDNEXT and the expunge history when the totals vouch for it, read row by
row otherwise, and always exactly what the database holds."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.storage.sqlite import mailboxes as boxes
from imapd.storage.sqlite.store import SqliteMailStore, open_store
from imapd.storage.sqlite.sync import recent_in
from imapd.storage.sqlite.uidcache import derived_uids, read_all_uids
from tests.storage.sqlite.helpers import run
from tests.storage.sqlite.test_uidcache import USER, append, random_change, truth


def mailbox_row(store: SqliteMailStore, name: str) -> boxes.MailboxRow:
    user_id = store._user_id(USER)
    row = boxes.find(store.conn, user_id, name)
    assert row is not None
    return row


def uncached(store: SqliteMailStore, name: str) -> tuple[list[int], array[int] | None]:
    row = mailbox_row(store, name)
    derived = derived_uids(store.conn, row)
    return list(read_all_uids(store.conn, row)), derived


def test_every_change_keeps_the_uncached_list_exact(tmp_path: Path) -> None:
    store, other = open_store(tmp_path), open_store(tmp_path)
    try:
        run(store.create_mailbox(USER, "Other"))
        append(store, "INBOX", 300)
        rng = random.Random(99)
        derived_count = 0
        for _ in range(120):
            random_change(rng, store, other)
            for name in ("INBOX", "Other"):
                uids, derived = uncached(store, name)
                assert uids == truth(store, name)
                if derived is not None:
                    derived_count += 1
                    assert list(derived) == uids
        assert derived_count > 100  # the derivation is what usually answers
    finally:
        run(store.close())
        run(other.close())


def test_a_fresh_mailbox_is_derived(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        append(store, "INBOX", 50)
        uids, derived = uncached(store, "INBOX")
        assert derived is not None and list(derived) == uids == list(range(1, 51))
        run(store.create_mailbox(USER, "Empty"))
        uids, derived = uncached(store, "Empty")
        assert derived is not None and uids == []
    finally:
        run(store.close())


def test_expunges_leave_gaps(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        append(store, "INBOX", 10)
        append(store, "INBOX", 3, deleted=True)
        append(store, "INBOX", 10)
        append(store, "INBOX", 1, deleted=True)
        selection = run(store.select(USER, "INBOX", readonly=False))
        run(store.expunge(selection))
        selection.close()
        uids, derived = uncached(store, "INBOX")
        expected = list(range(1, 11)) + list(range(14, 24))
        assert derived is not None and list(derived) == uids == expected
    finally:
        run(store.close())


def test_renamed_inbox_gaps_are_not_history_so_rows_are_read(tmp_path: Path) -> None:
    """RENAME INBOX moves messages with their UIDs; the gaps left by earlier
    expunges are not in the new mailbox's history: the totals disagree."""
    store = open_store(tmp_path)
    try:
        append(store, "INBOX", 5)
        append(store, "INBOX", 2, deleted=True)
        append(store, "INBOX", 5)
        selection = run(store.select(USER, "INBOX", readonly=False))
        run(store.expunge(selection))
        selection.close()
        run(store.rename_mailbox(USER, "INBOX", "Old"))
        uids, derived = uncached(store, "Old")
        assert derived is None
        assert uids == truth(store, "Old") == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
        uids, derived = uncached(store, "INBOX")
        assert uids == [] and derived is None  # all expunged: nothing to derive from
    finally:
        run(store.close())


def test_a_damaged_history_is_detected(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        append(store, "INBOX", 4)
        append(store, "INBOX", 2, deleted=True)
        append(store, "INBOX", 4)
        selection = run(store.select(USER, "INBOX", readonly=False))
        run(store.expunge(selection))
        selection.close()
        row = mailbox_row(store, "INBOX")
        expected = [1, 2, 3, 4, 7, 8, 9, 10]
        # History pruned: an expunged UID would come back.
        store.conn.execute("DELETE FROM expunged WHERE mailbox_id=? AND uid=5", (row.id,))
        assert derived_uids(store.conn, row) is None
        assert list(read_all_uids(store.conn, row)) == expected
        # A live UID recorded as expunged, another one missing: same count.
        store.conn.execute("INSERT INTO expunged VALUES(?, 7, 99)", (row.id,))
        assert derived_uids(store.conn, row) is None
        assert list(read_all_uids(store.conn, row)) == expected
    finally:
        run(store.close())


def test_mostly_expunged_mailboxes_are_read(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        append(store, "INBOX", 30, deleted=True)
        append(store, "INBOX", 5)
        selection = run(store.select(USER, "INBOX", readonly=False))
        run(store.expunge(selection))
        selection.close()
        uids, derived = uncached(store, "INBOX")
        assert derived is None  # 30 expunged UIDs for 5 messages
        assert uids == list(range(31, 36))
    finally:
        run(store.close())


@settings(max_examples=300)
@given(st.lists(st.integers(min_value=1, max_value=60), unique=True).map(sorted),
       st.integers(min_value=0, max_value=70), st.integers(min_value=0, max_value=70))
def test_recent_in_is_the_uids_in_the_range(uids: list[int], low: int, high: int) -> None:
    expected = frozenset(u for u in uids if low <= u <= high)
    assert recent_in(uids, low, high) == expected
    assert recent_in(array("I", uids), low, high) == expected

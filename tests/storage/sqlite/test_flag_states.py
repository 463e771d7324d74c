"""``sqlite_messages.flag_states`` (the read behind ``fetch_flags``, one
packed flag column per row) returns what decoding the stored columns one by
one returns, for any flags and any UID selection."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.storage.sqlite import messages as msgs
from imapd.mail.records import AppendItem, FlagState
from imapd.storage.sqlite.store import open_store
from tests.storage.sqlite.helpers import run

SYSTEM = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
KEYWORDS = ("$Work", "$work", "Junk", "NonJunk", "$Label1", "a.b", "x-y")


def reference(conn: object, mailbox_id: int, uids: list[int] | None) -> list[FlagState]:
    rows = msgs.uid_filtered(
        conn,  # type: ignore[arg-type]
        "SELECT uid, sysflags, keywords, modseq FROM messages WHERE mailbox_id=?",
        mailbox_id, uids)
    return [FlagState(r[0], msgs.decode_flags(r[1], r[2]), r[3]) for r in rows]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(SYSTEM + KEYWORDS), unique=True, max_size=5),
             min_size=1, max_size=40),
    st.one_of(
        st.none(),
        st.lists(st.integers(min_value=1, max_value=45), max_size=30),
        st.tuples(st.integers(min_value=1, max_value=45), st.integers(min_value=0, max_value=45))
        .map(lambda t: list(range(t[0], t[0] + t[1]))),
    ),
    st.sets(st.integers(min_value=1, max_value=40), max_size=10),
)
def test_flag_states_match_the_columns(
    flags: list[list[str]], uids: list[int] | None, expunged: set[int],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp))
        try:
            run(store.append_many("u", "INBOX", [AppendItem(b"x\r\n", tuple(f)) for f in flags]))
            row = store.conn.execute("SELECT id FROM mailboxes WHERE name='INBOX'").fetchone()
            mailbox_id = int(row[0])
            store.conn.executemany(
                "DELETE FROM messages WHERE mailbox_id=? AND uid=?",
                [(mailbox_id, uid) for uid in expunged])
            for limit in (msgs._IN_LIST_LIMIT, 0):  # IN list, and range + filter
                msgs._IN_LIST_LIMIT, saved = limit, msgs._IN_LIST_LIMIT
                try:
                    states = msgs.flag_states(store.conn, mailbox_id, uids)
                finally:
                    msgs._IN_LIST_LIMIT = saved
                assert states == reference(store.conn, mailbox_id, uids)
                assert all(type(s) is FlagState for s in states)
                assert [s.uid for s in states] == sorted(s.uid for s in states)
        finally:
            run(store.close())


def test_keywords_keep_their_spelling_and_order(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        run(store.append_many("u", "INBOX", [
            AppendItem(b"x\r\n", ("Junk", "\\Seen", "$Work")),
            AppendItem(b"y\r\n", ()),
            AppendItem(b"z\r\n", ("\\Flagged", "\\Answered")),
        ]))
        selection = run(store.select("u", "INBOX", readonly=True))
        states = run(store.fetch_flags(selection))
        assert [(s.uid, s.flags) for s in states] == [
            (1, ("\\Seen", "Junk", "$Work")),
            (2, ()),
            (3, ("\\Answered", "\\Flagged")),
        ]
        selection.close()
    finally:
        run(store.close())

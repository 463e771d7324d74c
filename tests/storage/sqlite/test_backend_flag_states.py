"""``SqliteBackend.fetch_flags`` (one packed flag column per row, see
``messages.flag_states``) returns what decoding the stored columns one by
one returns, for any flags and any UID selection, in both read paths (an
IN list, and a range filtered in Python)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem, FlagState
from imapd.storage.rows import decode_flags
from imapd.storage.sqlite import messages as msgs
from tests.storage.sqlite.backend_helpers import inline, run

SYSTEM = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
KEYWORDS = ("$Work", "$work", "Junk", "NonJunk", "$Label1", "a.b", "x-y")


def reference(conn: object, mailbox_id: int, uids: list[int] | None) -> list[FlagState]:
    rows = msgs.uid_filtered(
        conn,  # type: ignore[arg-type]
        "SELECT uid, sysflags, keywords, modseq FROM messages WHERE mailbox_id=?",
        mailbox_id, uids)
    return [FlagState(r[0], decode_flags(r[1], r[2]), r[3]) for r in rows]


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
def test_fetch_flags_match_the_columns(
    flags: list[list[str]], uids: list[int] | None, expunged: set[int],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        backend = inline(Path(tmp))
        try:
            run(backend.ensure_user("u"))
            entry = run(backend.lookup("u", "INBOX"))
            assert entry is not None
            run(backend.append(entry.ref, [AppendItem(b"x\r\n", tuple(f)) for f in flags]))
            run(backend.store_flags(entry.ref, sorted(expunged), FlagOp.ADD, ["\\Deleted"]))
            run(backend.expunge(entry.ref, sorted(expunged)))
            for limit in (msgs._IN_LIST_LIMIT, 0):  # IN list, and range + filter
                msgs._IN_LIST_LIMIT, saved = limit, msgs._IN_LIST_LIMIT
                try:
                    states = run(backend.fetch_flags(entry.ref, uids))
                finally:
                    msgs._IN_LIST_LIMIT = saved
                assert states == reference(backend.conn, entry.id, uids)
                assert all(type(s) is FlagState for s in states)
                assert [s.uid for s in states] == sorted(s.uid for s in states)
                assert not {s.uid for s in states} & expunged
        finally:
            run(backend.close())


def test_keywords_keep_their_spelling_and_order(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("u"))
        entry = run(backend.lookup("u", "INBOX"))
        assert entry is not None
        run(backend.append(entry.ref, [
            AppendItem(b"x\r\n", ("Junk", "\\Seen", "$Work")),
            AppendItem(b"y\r\n", ()),
            AppendItem(b"z\r\n", ("\\Flagged", "\\Answered", "junk")),
        ]))
        states = run(backend.fetch_flags(entry.ref))
        assert [(s.uid, s.flags) for s in states] == [
            (1, ("\\Seen", "Junk", "$Work")),
            (2, ()),
            (3, ("\\Answered", "\\Flagged", "Junk")),  # the mailbox's first spelling
        ]
    finally:
        run(backend.close())

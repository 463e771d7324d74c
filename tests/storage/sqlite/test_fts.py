"""The SQLite full-text index (``imapd.storage.sqlite.fts``, schema v4).

The property: for any mailbox and any search string, the index's candidates
include every message the exact evaluation (``imapd.message.searchtext``
under ``i;unicode-casemap``, RFC 5051) matches, so a SEARCH that confirms
only the candidates answers exactly what scanning every message answers;
``text_matches`` calls sure only exact matches (all of TEXT's).
Then the lifecycle: rows appear with the APPEND, copies share them, expunge
removes them (deferred: ``test_fts_gone``), mail stored before v4 is a candidate until reindexed.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
import tempfile
from pathlib import Path
from typing import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.mail.backend import AddMailbox
from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from imapd.message import analyze
from imapd.message.casemap import fold
from imapd.message.searchtext import folded_header_texts, searchable_text
from imapd.storage.sqlite import fts
from imapd.storage.sqlite.schema import DB_FILENAME
from tests.storage.sqlite.backend_helpers import inline, run

WORDS = ("apple", "Straße", "ÄPFEL", "café", "cafe\u0301", "ﬁle", "ΣΟΦΙΑ", "σοφία", "zebra",
         'qu"ote', "hello world", "Ｆｕｌｌ", "DŽungla", "x", "日本語テキスト", "needle")
FIELDS = ("SUBJECT", "FROM", "TO", "CC", "BCC", "x-tag", "from", "Subject")


def _encoded_word(text: str, how: int) -> str:
    if how == 0:
        return text
    if how == 1:
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="
    return "=?utf-8?q?" + binascii.b2a_qp(text.encode(), header=True).decode().replace(
        "?", "=3F").replace(" ", "_") + "?="


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
    subject = _encoded_word(draw(words), draw(st.integers(0, 2)))
    display = _encoded_word(draw(words), draw(st.integers(0, 2)))
    user = draw(st.sampled_from(("bob", "needle", "Apple.Pie")))
    sender = draw(st.sampled_from((f'"{display}" <{user}@example.org>',
                                   f"{user} @ example.org (comment {display})",
                                   f"{user}@example.org")))
    header = f"From: {sender}\r\nTo: {draw(words)} <to@h.example>\r\nSubject: {subject}\r\n"
    if draw(st.booleans()):
        header += f"X-Tag: {draw(words)}\r\n"
    body = draw(words).encode("utf-8")
    encoding = draw(st.sampled_from(("7bit", "base64", "quoted-printable")))
    if encoding == "base64":
        body = base64.encodebytes(body)
    elif encoding == "quoted-printable":
        body = binascii.b2a_qp(body)
    part = (f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}"
            "\r\n\r\n").encode() + body + b"\r\n"
    if draw(st.booleans()):
        attached = base64.encodebytes(draw(words).encode())
        header += "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n"
        return (header.encode() + b"\r\n--B\r\n" + part + b"--B\r\nContent-Type: "
                b"application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + attached + b"--B--\r\n")
    return header.encode("utf-8") + part  # the part's fields join the message header


def _needles() -> st.SearchStrategy[str]:
    whole = st.sampled_from(WORDS + ("bob@example.org", "to@h", "EXAMPLE", "needle"))
    sliced = st.tuples(st.sampled_from(WORDS), st.integers(0, 6), st.integers(3, 9)).map(
        lambda t: t[0][t[1]:t[1] + t[2]])
    return st.one_of(whole, sliced).map(lambda s: s.upper() if len(s) % 2 else s)


def _exact(raw: bytes, scope: str, field: str | None, needle: str) -> bool:
    info = analyze(raw)
    if scope in ("TEXT", "BODY"):
        return fold(needle) in searchable_text(raw, info, scope)
    assert field is not None
    return any(fold(needle) in value for value in folded_header_texts(raw, info, field))


@settings(max_examples=60, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=12), st.lists(_needles(), min_size=1, max_size=6))
def test_candidates_include_every_exact_match(raws: list[bytes], needles: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        backend = inline(Path(tmp))
        try:
            run(backend.ensure_user("u"))
            entry = run(backend.lookup("u", "INBOX"))
            assert entry is not None
            uids = run(backend.append(entry.ref, [AppendItem(raw) for raw in raws])).uids
            for needle in needles:
                for scope, field in [("TEXT", None), ("BODY", None)] + [
                        ("HEADER", f) for f in FIELDS]:
                    found = run(backend.text_candidates(entry.ref, scope, fold(needle)))
                    exact = {uid for uid, raw in zip(uids, raws)
                             if _exact(raw, scope, field, needle)}
                    if len(fold(needle)) < fts.MIN_NEEDLE:
                        assert found is None
                        continue
                    assert found is not None
                    # Indexed SEARCH (candidates confirmed) == unindexed SEARCH.
                    assert {uid for uid in found if uid in exact} == exact, (scope, field, needle)
                    # What ``text_matches`` calls sure matches, and nothing
                    # else outside ``maybe``; TEXT is decided in SQL outright.
                    answer = run(backend.text_matches(entry.ref, scope, fold(needle)))
                    assert answer is not None
                    sure, maybe = answer
                    assert sure <= exact and exact <= sure | maybe, (scope, field, needle)
                    if scope == "TEXT":
                        assert (sure, maybe) == (exact, frozenset()), needle
        finally:
            run(backend.close())


RARE = b"From: a@b.example\r\nSubject: hello\r\n\r\nthe word quokka is rare\r\n"
PLAIN = b"From: a@b.example\r\nSubject: hello\r\n\r\nnothing to see\r\n"


def test_rare_word_is_narrowed_to_its_message_and_copies(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("u"))
        inbox = run(backend.lookup("u", "INBOX"))
        assert inbox is not None
        run(backend.edit_tree("u", lambda tree: [AddMailbox("Other")]))
        other = run(backend.lookup("u", "Other"))
        assert other is not None
        uids = run(backend.append(inbox.ref, [AppendItem(PLAIN), AppendItem(RARE),
                                              AppendItem(PLAIN)])).uids
        assert run(backend.text_candidates(inbox.ref, "TEXT", fold("Quokka"))) == {uids[1]}
        assert run(backend.text_candidates(inbox.ref, "BODY", fold("QUOKKA"))) == {uids[1]}
        assert run(backend.text_candidates(inbox.ref, "HEADER", fold("quokka"))) == frozenset()
        assert run(backend.text_candidates(inbox.ref, "HEADER", fold("HELLO"))) == set(uids)
        assert run(backend.text_candidates(inbox.ref, "TEXT", fold("qu"))) is None  # < 3
        run(backend.copy(inbox.ref, [uids[1]], other.ref))
        assert run(backend.text_candidates(other.ref, "TEXT", fold("quokka"))) == {1}
        # Expunge in INBOX: the copy still finds it; expunge the copy: row gone.
        run(backend.store_flags(inbox.ref, [uids[1]], FlagOp.ADD, ["\\Deleted"]))
        run(backend.expunge(inbox.ref))
        assert run(backend.text_candidates(inbox.ref, "TEXT", fold("quokka"))) == frozenset()
        assert run(backend.text_candidates(other.ref, "TEXT", fold("quokka"))) == {1}
        run(backend.store_flags(other.ref, [1], FlagOp.ADD, ["\\Deleted"]))
        run(backend.expunge(other.ref))
    finally:
        run(backend.close())
    conn = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    try:
        # The body went; its index row goes with the deferred purge (the
        # writer thread runs it; inline mode leaves it to us).
        assert fts.purge_gone(conn) == 1
        rows = conn.execute("SELECT rowid FROM body_fts WHERE body_fts MATCH ?",
                            (fts._query("QUOKKA"),)).fetchall()
        assert rows == []
        assert conn.execute("SELECT count(*) FROM body_fts").fetchone()[0] == 2
    finally:
        conn.close()


def test_unindexed_bodies_are_candidates_until_reindexed(tmp_path: Path) -> None:
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("u"))
        inbox = run(backend.lookup("u", "INBOX"))
        assert inbox is not None
        uids = run(backend.append(inbox.ref, [AppendItem(PLAIN), AppendItem(RARE)])).uids
    finally:
        run(backend.close())
    # As a store upgraded from v3 looks: bodies without index rows.
    conn = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    conn.execute("DELETE FROM body_fts")
    conn.execute("INSERT INTO body_unindexed(body_id) SELECT id FROM bodies")
    conn.close()
    backend = inline(tmp_path)
    try:
        assert run(backend.text_candidates(inbox.ref, "TEXT", fold("quokka"))) == set(uids)
    finally:
        run(backend.close())
    conn = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    seen: list[tuple[int, int]] = []
    try:
        assert fts.reindex(conn, lambda done, total: seen.append((done, total))) == 2
        assert seen[-1] == (2, 2)
        assert conn.execute("SELECT count(*) FROM body_unindexed").fetchone() == (0,)
    finally:
        conn.close()
    backend = inline(tmp_path)
    try:
        assert run(backend.text_candidates(inbox.ref, "TEXT", fold("quokka"))) == {uids[1]}
    finally:
        run(backend.close())


def _vm_steps(conn: sqlite3.Connection, query: Callable[[], object]) -> int:
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        query()
    finally:
        conn.set_progress_handler(None, 1)
    return steps[0]


def test_text_confirmation_costs_the_matches_not_the_mailbox(tmp_path: Path) -> None:
    """``fts.matches`` runs the FTS5 lookup once, as ``candidates`` does, and
    not once per message of the mailbox (a plan that scales with the
    mailbox made SEARCH TEXT take a second at 2,000 messages): its SQLite
    VM steps stay within a small constant of ``candidates``'s."""
    backend = inline(tmp_path)
    try:
        run(backend.ensure_user("u"))
        inbox = run(backend.lookup("u", "INBOX"))
        assert inbox is not None
        run(backend.append(inbox.ref, [AppendItem(PLAIN)] * 400 + [AppendItem(RARE)]))
    finally:
        run(backend.close())
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    try:
        needle = fold("quokka")
        found = fts.matches(conn, inbox.ref.id, "TEXT", needle)
        assert found is not None and len(found[0]) == 1 and not found[1]
        narrowed = _vm_steps(conn, lambda: fts.candidates(conn, inbox.ref.id, "TEXT", needle))
        confirmed = _vm_steps(conn, lambda: fts.matches(conn, inbox.ref.id, "TEXT", needle))
        assert confirmed < 2 * narrowed + 100, (confirmed, narrowed)
    finally:
        conn.close()

"""SEARCH over the store's full-text index answers exactly what scanning
every message answers (RFC 3501 §6.4.4 under ``i;unicode-casemap``,
RFC 5051): random criteria mixing string keys with AND / OR / NOT and flag
keys, run on an SQLite mailbox with the index, then with the index switched
off (``text_candidates`` and ``text_matches`` answering None, as an engine
without one does)."""

from __future__ import annotations

import base64
import random
from typing import Iterator
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.commands import search_eval
from imapd.storage.sqlite.backend import SqliteBackend
from tests.imap.commands.harness import Client, MailServer

WORDS = ("apple", "Straße", "ÄPFEL", "café", "ﬁle", "ΣΟΦΙΑ", "σοφία", "zebra", "quokka",
         "Ｆｕｌｌ", "日本語", "needle", "hello world")


def _message(rng: random.Random) -> bytes:
    def words() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))

    subject = words()
    if rng.random() < 0.4:
        subject = "=?utf-8?b?" + base64.b64encode(subject.encode()).decode() + "?="
    user = rng.choice(("bob", "needle", "apple.pie"))
    header = (f"From: {words()} <{user}@example.org>\r\nTo: to@h.example\r\n"
              f"Subject: {subject}\r\n")
    if rng.random() < 0.5:
        header += f"X-Tag: {words()}\r\n"
    body = words().encode()
    if rng.random() < 0.5:
        header += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
        body = base64.encodebytes(body)
    return header.encode() + b"\r\n" + body + b"\r\n"


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    server = MailServer(tmp_path_factory.mktemp("search-index"))
    rng = random.Random(18)
    for i in range(40):
        server.append("INBOX", _message(rng), ["\\Seen"] if i % 3 else [])
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    yield client
    server.close()


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_needle = st.one_of(
    st.sampled_from(WORDS + ("example.org", "NEEDLE@", "ab", "")),
    st.tuples(st.sampled_from(WORDS), st.integers(0, 5), st.integers(1, 7)).map(
        lambda t: t[0][t[1]:t[1] + t[2]]),
).map(_quoted)
_string_key = st.one_of(
    st.tuples(st.sampled_from(("TEXT", "BODY", "SUBJECT", "FROM", "TO")), _needle).map(" ".join),
    _needle.map(lambda n: f"HEADER X-Tag {n}"),
)
_criteria = st.recursive(
    st.one_of(_string_key, st.sampled_from(("SEEN", "UNSEEN", "ALL", "1:20"))),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"({t[0]} {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"OR {t[0]} {t[1]}"),
        inner.map(lambda k: f"NOT {k}"),
    ),
    max_leaves=4,
)


async def _no_index(*args: object) -> None:
    return None


@settings(max_examples=80, deadline=None)
@given(_criteria)
def test_indexed_search_equals_unindexed_search(mailbox: Client, criteria: str) -> None:
    looked_up: list[object] = []
    narrowing = search_eval.index_narrowing

    async def counting(*args: object) -> object:
        looked_up.append(args)
        return await narrowing(*args)  # type: ignore[arg-type]

    with mock.patch("imapd.imap.commands.search.index_narrowing", counting):
        indexed = mailbox.ok(f"a UID SEARCH {criteria}")
    assert looked_up  # the hook was asked
    with mock.patch.object(SqliteBackend, "text_candidates", _no_index), \
            mock.patch.object(SqliteBackend, "text_matches", _no_index):
        scanned = mailbox.ok(f"b UID SEARCH {criteria}")
    assert indexed[0].startswith(b"* SEARCH")
    assert indexed[0] == scanned[0], criteria


def test_rare_word_reads_only_its_candidates(mailbox: Client) -> None:
    """The index keeps SEARCH from loading the other messages' records."""
    calls: list[int] = []
    real = SqliteBackend.fetch_records

    async def counting(self: SqliteBackend, ref: object, uids: object = None,
                       with_meta: bool = False) -> object:
        calls.append(len(uids) if isinstance(uids, list) else -1)
        return await real(self, ref, uids, with_meta)  # type: ignore[arg-type]

    with mock.patch.object(SqliteBackend, "fetch_records", counting):
        mailbox.ok('r SEARCH BODY "quokka"')
    assert calls and max(calls) < 40  # never the whole mailbox


def test_text_matches_confirmed_by_the_index_are_not_read(mailbox: Client) -> None:
    """SEARCH TEXT's candidates are confirmed in SQL (the index holds the
    very text TEXT compares): no message is read, the answer is the scan's."""
    reads: list[int] = []
    real = SqliteBackend.read_message

    async def counting(self: SqliteBackend, ref: object, uid: int, *args: object) -> object:
        reads.append(uid)
        return await real(self, ref, uid, *args)  # type: ignore[arg-type]

    with mock.patch.object(SqliteBackend, "read_message", counting):
        indexed = mailbox.ok('t UID SEARCH TEXT "quokka"')
    assert reads == []
    with mock.patch.object(SqliteBackend, "text_candidates", _no_index), \
            mock.patch.object(SqliteBackend, "text_matches", _no_index):
        scanned = mailbox.ok('u UID SEARCH TEXT "quokka"')
    assert indexed[0] == scanned[0] and len(indexed[0]) > len(b"* SEARCH")

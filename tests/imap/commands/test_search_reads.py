"""SEARCH confirms its undecided candidates' bytes in batches (issue 18):
``MailBackend.read_messages`` for up to ``READ_BATCH`` small messages at a
time, ``read_message`` for one of ``READ_ALONE_SIZE`` or more; on
PostgreSQL one call per message (two queries and a thread hop) was most of
a 1,000-candidate SEARCH BODY. The answer is the same as before (RFC 3501
§6.4.4)."""

from __future__ import annotations

import math
from typing import Iterator
from unittest import mock

import pytest

from imapd.imap.commands import search
from imapd.storage.sqlite.backend import SqliteBackend
from tests.imap.commands.harness import Client, MailServer

SMALL = 150
BIG = (20, 90)  # indexes of the messages of READ_ALONE_SIZE or more


def _message(i: int) -> bytes:
    word = "needle" if i % 3 == 0 else "hay"
    filler = b"x" * search.READ_ALONE_SIZE if i in BIG else b""
    return (f"Subject: message {i}\r\n\r\n{word} {i}\r\n").encode() + filler + b"\r\n"


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    server = MailServer(tmp_path_factory.mktemp("search-reads"))
    for i in range(SMALL + len(BIG)):
        server.append("INBOX", _message(i))
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    yield client
    server.close()


async def _no_index(*args: object) -> None:
    return None


def test_body_reads_candidates_in_batches(mailbox: Client) -> None:
    """Without the index every message is a candidate that needs its bytes:
    ceil(small / READ_BATCH) batched reads plus one read per big message,
    not one read per message."""
    singles: list[int] = []
    batches: list[int] = []
    one, many = SqliteBackend.read_message, SqliteBackend.read_messages

    async def read_message(self: SqliteBackend, ref: object, uid: int, *args: object) -> object:
        singles.append(uid)
        return await one(self, ref, uid, *args)  # type: ignore[arg-type]

    async def read_messages(self: SqliteBackend, ref: object, uids: list[int]) -> object:
        batches.append(len(uids))
        return await many(self, ref, uids)  # type: ignore[arg-type]

    with mock.patch.object(SqliteBackend, "text_candidates", _no_index), \
            mock.patch.object(SqliteBackend, "text_matches", _no_index), \
            mock.patch.object(SqliteBackend, "read_message", read_message), \
            mock.patch.object(SqliteBackend, "read_messages", read_messages, create=True):
        lines = mailbox.ok('b SEARCH BODY "needle"')
    total = SMALL + len(BIG)
    expected = [i + 1 for i in range(total) if i % 3 == 0]
    assert lines[0] == b"* SEARCH " + " ".join(map(str, expected)).encode()
    assert sorted(singles) == [i + 1 for i in BIG]
    assert len(batches) == math.ceil(SMALL / search.READ_BATCH)
    assert sum(batches) == SMALL and max(batches) <= search.READ_BATCH

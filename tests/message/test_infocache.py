"""The memo of decoded message analyses (``imapd.message.infocache``)."""

from __future__ import annotations

import sys
import threading

import pytest

from imapd.message import MessageInfo, analyze
from imapd.message.infocache import MAX_ENTRY_BYTES, InfoCache


def _meta(subject: str, body: bytes = b"hello\r\n") -> bytes:
    raw = f"Subject: {subject}\r\nFrom: a@example.org\r\n\r\n".encode() + body
    return analyze(raw).to_bytes()


def test_decodes_like_from_bytes_and_reuses_the_object() -> None:
    cache = InfoCache()
    meta = _meta("one")
    first = cache.decode(meta)
    assert first == MessageInfo.from_bytes(meta)
    assert first.envelope_data.subject == b"one"
    # An equal key (a fresh bytes object, as each store read makes) hits.
    assert cache.decode(bytes(bytearray(meta))) is first
    assert len(cache) == 1


def test_distinct_analyses_never_share_an_entry() -> None:
    cache = InfoCache()
    assert cache.decode(_meta("one")).envelope_data.subject == b"one"
    assert cache.decode(_meta("two")).envelope_data.subject == b"two"
    assert cache.decode(_meta("one")).envelope_data.subject == b"one"


def test_stays_within_its_byte_budget_dropping_the_least_recently_used() -> None:
    metas = [_meta(f"message {n}") for n in range(10)]
    budget = sum(len(m) for m in metas[:4])
    cache = InfoCache(budget_bytes=budget)
    kept = cache.decode(metas[0])
    for meta in metas[1:]:
        cache.decode(metas[0])  # keeps the first one recently used
        cache.decode(meta)
        assert cache.held_bytes <= budget
    assert cache.decode(metas[0]) is kept
    assert len(cache) < 10
    fresh = InfoCache(budget_bytes=budget)
    older = fresh.decode(metas[1])
    for meta in metas[2:]:
        fresh.decode(meta)
    assert fresh.decode(metas[1]) is not older  # dropped, decoded again


def test_large_analyses_are_not_kept() -> None:
    many_parts = b"".join(
        b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(400)
    )
    raw = (b"Subject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           + many_parts + b"--b--\r\n")
    meta = analyze(raw).to_bytes()
    assert len(meta) > MAX_ENTRY_BYTES
    cache = InfoCache()
    assert cache.decode(meta) == MessageInfo.from_bytes(meta)
    assert len(cache) == 0 and cache.held_bytes == 0


def test_foreign_data_raises_and_is_not_remembered() -> None:
    cache = InfoCache()
    with pytest.raises(ValueError):
        cache.decode(b'{"v": 999}')
    assert len(cache) == 0


def _metas(count: int) -> list[bytes]:
    return [analyze(b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n)).to_bytes() for n in range(count)]


def test_threads_sharing_the_memo_never_break_it() -> None:
    """The reactor thread (FETCH, SEARCH) and the indexing thread (FTS
    texts at APPEND) decode through the one process-wide memo; a budget
    that evicts on almost every miss makes the threads' moves, inserts and
    evictions interleave."""
    metas = _metas(40)
    cache = InfoCache(budget_bytes=len(metas[0]) * 8)
    errors: list[BaseException] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible

    def hammer(offset: int) -> None:
        try:
            for n in range(20_000):
                cache.decode(metas[(n * 7 + offset) % len(metas)])
        except BaseException as error:  # noqa: BLE001 - the failure under test
            errors.append(error)

    try:
        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert cache.held_bytes == sum(len(m) for m in cache._entries)  # noqa: SLF001
    assert cache.held_bytes <= len(metas[0]) * 8 + max(map(len, metas))

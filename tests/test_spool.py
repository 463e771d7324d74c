"""imapd.core.spool: a spooled literal reads like the bytes it holds (the
methods the message model and the store use), and its file is anonymous
and released on close."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.core.spool import SpooledLiteral, SpoolWriter, message_bytes
from tests.support.spool import spool_handles


def spooled(data: bytes, directory: Path | None = None, pieces: int = 3) -> SpooledLiteral:
    writer = SpoolWriter(len(data), directory)
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        writer.write(data[start:start + step])
    return writer.finish()


small = st.binary(min_size=1, max_size=300)
needle = st.binary(min_size=0, max_size=3)
position = st.integers(-320, 320) | st.none()


@settings(max_examples=300, deadline=None)
@given(data=small, sub=needle, start=st.integers(-320, 320), end=position)
def test_reads_like_bytes(data: bytes, sub: bytes, start: int, end: int | None) -> None:
    literal = spooled(data)
    try:
        assert len(literal) == len(data)
        assert literal.count(sub, start, end) == data.count(sub, start, end)
        if sub:  # mmap's own find: it differs from bytes only for b"" past the end
            stop = len(data) if end is None else end
            assert literal.find(sub, start, stop) == data.find(sub, start, stop)
        assert literal.startswith(sub, start, end) == data.startswith(sub, start, end)
        assert literal.endswith(sub, start, end) == data.endswith(sub, start, end)
        assert literal[start:end] == data[start:end]
        assert literal[len(data) // 2] == data[len(data) // 2]
        assert bytes(literal) == data and message_bytes(literal) == data
        assert literal == data and data == literal and not literal != data
        assert literal != data + b"x" and literal != data[:-1]
    finally:
        literal.close()


def test_count_of_one_octet_crosses_internal_steps() -> None:
    data = (b"line\r\n" * 400_000)[:2_300_001]  # more than two 1 MiB steps
    literal = spooled(data)
    try:
        assert literal.count(b"\n") == data.count(b"\n")
        assert literal.count(b"\n", 5, 2_100_000) == data.count(b"\n", 5, 2_100_000)
        assert literal == data
    finally:
        literal.close()


def test_buffer_protocol_users_take_it() -> None:
    literal = spooled(b"Subject: hi\r\n\r\nbody\x00bytes")
    try:
        assert re.compile(rb"body.bytes").search(literal) is not None
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t(x BLOB)")
        conn.execute("INSERT INTO t VALUES (?)", (literal,))
        assert conn.execute("SELECT x FROM t").fetchone()[0] == bytes(literal)
        with memoryview(literal) as view:
            assert view.nbytes == len(literal)
    finally:
        literal.close()


def test_file_is_anonymous_and_closed_with_the_literal(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    writer = SpoolWriter(5, spool)
    assert list(spool.iterdir()) == []  # no name in the directory
    assert len(spool_handles(spool)) == 1
    writer.write(b"hello")
    literal = writer.finish()
    assert list(spool.iterdir()) == []
    assert spool_handles(spool)  # the mapping keeps the file
    literal.close()
    assert spool_handles(spool) == []
    abandoned = SpoolWriter(5, spool)
    abandoned.write(b"he")
    abandoned.close()
    assert spool_handles(spool) == []


def test_writer_refuses_wrong_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SpoolWriter(0, tmp_path)
    writer = SpoolWriter(3, tmp_path)
    with pytest.raises(ValueError):
        writer.write(b"four")
    writer.write(b"ab")
    with pytest.raises(ValueError):
        writer.finish()
    assert spool_handles(tmp_path) == []


def test_close_while_a_view_is_exported_is_deferred_to_the_last_reference(tmp_path: Path) -> None:
    literal = spooled(b"some octets", tmp_path)
    view = memoryview(literal)
    literal.close()  # cannot unmap yet: no error, the map stays valid
    assert bytes(view[:4]) == b"some"
    view.release()
    literal.close()
    assert literal.closed
    del literal
    assert spool_handles(tmp_path) == []

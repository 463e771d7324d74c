"""A 20 MB message round trip: APPEND, partial reads, streaming; stored in
``CHUNK`` pieces so that neither way holds the message in memory twice
(Python-level allocations measured with tracemalloc: a piece at a time)."""

from __future__ import annotations

import os
import tracemalloc

from imapd.mail.records import AppendItem
from imapd.storage.postgres import messages as msgs
from tests.storage.postgres.helpers import close, inbox, open_pg, run

SIZE = 20 * 1024 * 1024
# Python-level memory beyond the message itself, either way: a few pieces.
BOUND = 4 * msgs.CHUNK


def test_twenty_megabytes_round_trip_in_pieces(postgres_dsn: str) -> None:
    backend = open_pg(postgres_dsn)
    try:
        ref = inbox(backend)
        raw = os.urandom(SIZE)
        tracemalloc.start()
        try:
            result = run(lambda: backend.append(ref, [AppendItem(raw, ("\\Seen",), meta=b"m")]))
            _, append_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            body = run(lambda: backend.open_message(ref, result.uid))
            assert body is not None and body.size == SIZE
            _, open_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            matched = 0
            for chunk in body.chunks():
                assert chunk == raw[matched:matched + len(chunk)]
                matched += len(chunk)
            _, stream_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert matched == SIZE
        assert append_peak < BOUND, append_peak
        assert open_peak < BOUND, open_peak
        assert stream_peak < BOUND + 2 * 256 * 1024, stream_peak
        # Ranges across chunk boundaries, clipped at the end.
        start = msgs.CHUNK - 10
        assert run(lambda: backend.read_message(ref, result.uid, start, 100)) == raw[start:start + 100]
        assert run(lambda: backend.read_message(ref, result.uid, SIZE - 5, 100)) == raw[-5:]
        assert run(lambda: backend.read_message(ref, result.uid, SIZE + 5, 10)) == b""
        records = run(lambda: backend.fetch_records(ref, [result.uid], with_meta=True))
        assert records[0].size == SIZE and records[0].meta == b"m"
    finally:
        close(backend)


def test_spooled_literal_append(postgres_dsn: str) -> None:
    """A large APPEND arrives as a ``SpooledLiteral`` (a memory map of a
    spool file, imapd.core.spool): stored piece by piece like bytes, small
    and large ones in one MULTIAPPEND."""
    from imapd.core.spool import SpoolWriter

    def spooled(data: bytes) -> object:
        writer = SpoolWriter(len(data))
        writer.write(data)
        return writer.finish()

    big, small = os.urandom(3 * msgs.CHUNK + 17), b"small one\r\n"
    literals = [spooled(big), spooled(small)]
    backend = open_pg(postgres_dsn)
    try:
        ref = inbox(backend)
        items = [AppendItem(literal) for literal in literals]  # type: ignore[arg-type]
        result = run(lambda: backend.append(ref, items))
        assert run(lambda: backend.read_message(ref, result.uids[0])) == big
        assert run(lambda: backend.read_message(ref, result.uids[1])) == small
        assert run(lambda: backend.append(ref, [items[1]])).uids == (3,)  # all small: pipelined
        assert run(lambda: backend.read_message(ref, 3)) == small
    finally:
        close(backend)
        for literal in literals:
            literal.close()  # type: ignore[attr-defined]

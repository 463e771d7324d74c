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

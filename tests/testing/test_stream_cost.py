"""The cost of one big chunk of many lines stays linear (imapd.testing.stream).

A server's answer to ``FETCH 1:*`` arrives as one write of hundreds of
thousands of lines (and after COMPRESS the wiretap cannot cut it smaller).
The line search once copied the rest of the chunk for every line: 32,000
lines took 1.2 s, 200,000 took 14 s and 400,000 would take about a minute. Linear, they take
about a second even on a loaded machine; the bound leaves a wide margin.
"""

from __future__ import annotations

import time

from imapd.testing.stream import Line, ServerStream

LINES = 400_000


def test_one_chunk_of_many_lines_is_split_in_linear_time() -> None:
    chunk = b"* 1 FETCH (FLAGS (\\Seen))\r\n" * LINES
    started = time.process_time()
    events = ServerStream().feed(chunk)
    spent = time.process_time() - started
    assert len(events) == LINES and all(isinstance(e, Line) and e.first for e in events)
    assert spent < 15.0, f"{LINES} lines took {spent:.1f} s of CPU"

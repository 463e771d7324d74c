"""ESORT (RFC 5267 §3): ``SORT RETURN (...)`` answers with one ESEARCH whose
MIN/MAX are the first/last message in sort order and whose ALL keeps that
order; PARTIAL (§4.4) picks positions of the sorted result. Byte-exact."""

from __future__ import annotations

import pytest

from tests.imap.commands.harness import Client, MailServer


def sized(n: int) -> bytes:
    """Message n: larger for smaller n (SIZE sorts 5, 4, 3, 2, 1)."""
    return f"Subject: m{n}\r\n\r\n".encode() + b"x" * (100 - 10 * n) + b"\r\n"


@pytest.fixture
def five(server: MailServer, client: Client) -> Client:
    server.append_many("INBOX", [sized(n) for n in range(1, 6)])
    client.ok("s SELECT INBOX")
    return client


def test_esort_in_sort_order(five: Client) -> None:
    five.transcript("""
        C: a SORT RETURN (MIN MAX COUNT ALL) (SIZE) US-ASCII 2:5
        S: * ESEARCH (TAG "a") MIN 5 MAX 2 COUNT 4 ALL 5,4,3,2
        S: a OK SORT completed
        C: b SORT RETURN () (REVERSE SIZE) UTF-8 ALL
        S: * ESEARCH (TAG "b") ALL 1:5
        S: b OK SORT completed
        C: c UID SORT RETURN (COUNT PARTIAL 4:2) (SIZE) UTF-8 ALL
        S: * ESEARCH (TAG "c") UID COUNT 5 PARTIAL (2:4 4,3,2)
        S: c OK UID SORT completed
        C: d SORT RETURN (MIN COUNT) (ARRIVAL) UTF-8 SUBJECT nothing
        S: * ESEARCH (TAG "d") COUNT 0
        S: d OK SORT completed
        C: e SORT (SIZE) UTF-8 ALL
        S: * SORT 5 4 3 2 1
        S: e OK SORT completed
    """)


@pytest.mark.parametrize("options", ["SAVE", "UPDATES", "PARTIAL 1:*", "MIN"])
def test_unsupported_sort_return_options_are_bad(five: Client, options: str) -> None:
    """SAVE is not offered for SORT (UPDATE and CONTEXT are, CONTEXT=SORT:
    test_context_sort.py); a RETURN list must be followed by the sort
    criteria."""
    suffix = "" if options == "MIN" else " (ARRIVAL)"
    out = five.command(f"a SORT RETURN ({options}){suffix} UTF-8 ALL")
    assert out.startswith(b"a BAD "), out

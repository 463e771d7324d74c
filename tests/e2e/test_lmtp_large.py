"""A 20 MB LMTP delivery, DATA and BDAT, over a real socket to the server
process: its private memory (``RssAnon``) grows no more than for an IMAP
APPEND of the same message (``test_large_messages_e2e``: < 8 MiB once
SQLite's page cache is warm), the message being spooled in batches in a
worker thread; no spool file is left behind."""

from __future__ import annotations

import re
import smtplib
import sys
from typing import Iterator

import pytest

from tests.e2e.test_large_messages_e2e import SIZE, Sampler, wait_for_no_spool_files
from tests.support.server import LOOPBACK_ENDPOINT, RunningServer, running_server
from tests.support.spool import big_message
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MESSAGE = big_message(SIZE)
LMTP_LINE = re.compile(r"listening on LMTP (\[[^\]]+\]|[^\s:]+):(\d+)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    args = ["--lmtp", LOOPBACK_ENDPOINT]
    with running_server(tmp_path_factory.mktemp("e2e-lmtp-large"), {"alice": "pw"}, args) as s:
        yield s


def deliver(server: RunningServer, framing: str) -> tuple[int, bytes]:
    port = int(wait_until(lambda: LMTP_LINE.search(server.log()), "the LMTP listener").group(2))
    client = smtplib.LMTP(server.host, port, timeout=60)
    client.ehlo_or_helo_if_needed = lambda: None  # type: ignore[method-assign]
    client.docmd("LHLO", "e2e.test")
    client.mail("big@example.org", [f"SIZE={SIZE}"])
    client.rcpt("alice")
    if framing == "DATA":
        reply = client.data(MESSAGE)
    else:
        half = SIZE // 2
        client.send(b"BDAT %d\r\n" % half + MESSAGE[:half] + b"BDAT %d LAST\r\n" % (SIZE - half))
        client.send(MESSAGE[half:])
        assert client.getreply()[0] == 250
        reply = client.getreply()
    client.quit()
    return reply


def test_a_20_mb_delivery_is_not_held_in_memory(server: RunningServer) -> None:
    # Two deliveries first fill SQLite's page cache up to its fixed cap, as
    # in the APPEND test (cold, the first one grows the process by ~24 MiB
    # and the second by ~13 MiB, APPEND alike); the measured ones then show
    # what one more delivery costs.
    for framing in ("DATA", "BDAT"):
        assert deliver(server, framing)[0] == 250
    for framing in ("DATA", "BDAT"):
        sampler = Sampler(server)
        code, text = deliver(server, framing)
        growth = sampler.stop()
        assert code == 250, text
        assert growth < 8, f"server grew {growth:.1f} MiB for a {framing} delivery"
    assert wait_for_no_spool_files(server) == []

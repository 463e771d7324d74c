"""``imapd serve --workers 2 --lmtp ...`` with real processes: the parent
binds the LMTP endpoints (loopback TCP and a UNIX socket) and both workers
accept on them; every delivery lands exactly once; the socket keeps the
operator's mode while workers start, and goes when the server stops."""

from __future__ import annotations

import imaplib
import os
import re
import smtplib
import stat
from pathlib import Path

from tests.support.server import LOOPBACK_ENDPOINT, running_server
from tests.support.waiting import wait_until

LMTP_TCP = re.compile(r"listening on LMTP (\[[^\]]+\]|[^\s:/]+):(\d+) \(2 workers\)")
COUNT = 6  # deliveries per endpoint, one connection each


def send(where: str, port: int, subject: str) -> None:
    client = smtplib.LMTP(where, port, timeout=30)
    client.ehlo_or_helo_if_needed = lambda: None  # type: ignore[method-assign]
    assert client.docmd("LHLO", "workers.test")[0] == 250
    refused = client.sendmail("s@example.org", ["alice"], f"Subject: {subject}\r\n\r\nx\r\n")
    assert refused == {}
    client.quit()


def subjects(host: str, port: int) -> list[str]:
    client = imaplib.IMAP4(host, port)
    client.login("alice", "wonderland")
    client.select("INBOX", readonly=True)
    typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    client.logout()
    assert typ == "OK"
    return sorted(item[1].decode().split(":", 1)[1].strip() for item in data
                  if isinstance(item, tuple))


def test_lmtp_on_two_workers_delivers_each_message_once(tmp_path: Path) -> None:
    sock = tmp_path / "lmtp.sock"
    args = ["--workers", "2", "--lmtp", LOOPBACK_ENDPOINT, "--lmtp", f"unix:{sock}:mode=660"]
    with running_server(tmp_path, {"alice": "wonderland"}, args) as server:
        match = wait_until(lambda: LMTP_TCP.search(server.log()), "the parent's LMTP line")
        assert server.log().count("sharing LMTP") == 4  # 2 workers x 2 endpoints
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660  # not Twisted's 0666
        for number in range(COUNT):
            send(server.host, int(match.group(2)), f"tcp {number}")
            send(str(sock), 0, f"unix {number}")
        expected = sorted([f"tcp {n}" for n in range(COUNT)] + [f"unix {n}" for n in range(COUNT)])
        assert subjects(server.host, server.port) == expected
    assert not sock.exists()  # the parent removed the socket it bound
    assert "Traceback" not in server.log()

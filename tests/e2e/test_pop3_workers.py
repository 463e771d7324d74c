"""``imapd serve --workers 2 --pop3 ... --pop3s ...`` with real processes:
the parent binds the POP3 endpoints and both workers accept on them; a
session on one worker deletes what another session (on either worker)
then no longer sees."""

from __future__ import annotations

import imaplib
import poplib
import re
import ssl
from pathlib import Path

from tests.support.server import LOOPBACK_ENDPOINT, running_server
from tests.support.waiting import wait_until

POP3 = re.compile(r"listening on POP3 (\[[^\]]+\]|[^\s:/]+):(\d+) \(2 workers\)")
POP3S = re.compile(r"listening on POP3S (\[[^\]]+\]|[^\s:/]+):(\d+) \(2 workers\)")
SESSIONS = 8  # enough connections that both workers take some


def test_pop3_and_pop3s_on_two_workers(tmp_path: Path) -> None:
    args = ["--workers", "2", "--pop3", LOOPBACK_ENDPOINT,
            "--pop3s", "ssl:0:interface=127.0.0.1"]
    with running_server(tmp_path, {"alice": "wonderland"}, args) as server:
        plain = int(wait_until(lambda: POP3.search(server.log()), "the POP3 line").group(2))
        tls = int(wait_until(lambda: POP3S.search(server.log()), "the POP3S line").group(2))
        assert server.log().count("sharing POP3 ") + server.log().count("sharing POP3S") == 4
        imap = imaplib.IMAP4(server.host, server.port)
        imap.login("alice", "wonderland")
        for number in range(SESSIONS):
            imap.append("INBOX", None, None, f"Subject: {number}\r\n\r\nx\r\n".encode())
        imap.logout()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        for number in range(SESSIONS):
            client = (poplib.POP3(server.host, plain, timeout=30) if number % 2 else
                      poplib.POP3_SSL(server.host, tls, context=context, timeout=30))
            client.user("alice")
            client.pass_("wonderland")
            assert client.stat()[0] == SESSIONS - number
            client.dele(1)
            assert client.quit().startswith(b"+OK")
    assert "Traceback" not in server.log()

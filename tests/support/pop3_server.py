"""A real ``imapd serve --pop3 --pop3s`` for the POP3 end-to-end tests
(tests/e2e/test_pop3*.py), and the IMAP side they put mail in and check
with: one store seen from both protocols."""

from __future__ import annotations

import contextlib
import imaplib
import re
from pathlib import Path
from typing import Iterator

from tests.support.server import LOOPBACK_ENDPOINT, RunningServer, running_server
from tests.support.waiting import wait_until

POP3_LINE = re.compile(r"listening on POP3 (\[[^\]]+\]|[^\s:]+):(\d+)")
POP3S_LINE = re.compile(r"listening on POP3S (\[[^\]]+\]|[^\s:]+):(\d+)")


@contextlib.contextmanager
def pop3_server(directory: Path, users: dict[str, str]) -> Iterator[RunningServer]:
    """IMAP, POP3 and POP3S (implicit TLS, RFC 8314) on loopback ports."""
    args = ["--pop3", LOOPBACK_ENDPOINT, "--pop3s", "ssl:0:interface=127.0.0.1"]
    with running_server(directory, users, args) as server:
        yield server


def port(server: RunningServer, pattern: re.Pattern[str]) -> int:
    """The port of the listener whose log line ``pattern`` matches."""
    return int(wait_until(lambda: pattern.search(server.log()), "the listener").group(2))


def imap_login(server: RunningServer, user: str, password: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(server.host, server.port)
    client.login(user, password)
    return client


def append(server: RunningServer, user: str, password: str, messages: list[bytes]) -> None:
    """APPEND ``messages`` to the user's INBOX over IMAP, each acknowledged."""
    client = imap_login(server, user, password)
    try:
        for message in messages:
            typ, data = client.append("INBOX", None, None, message)
            assert typ == "OK", data
    finally:
        client.logout()

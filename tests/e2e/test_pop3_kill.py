"""POP3's UPDATE state (RFC 1939 §6) against SIGKILL: ``+OK`` to QUIT
means committed and synced, and QUIT is one commit, so a server killed
while a QUIT is in flight leaves that maildrop either untouched or fully
updated (``\\Seen`` on what was retrieved, exactly the marked messages
gone), never half of it. Checked over IMAP after a restart on the same
data directory."""

from __future__ import annotations

import imaplib
import re
from pathlib import Path

from tests.support.pop3_server import POP3_LINE, append, imap_login, pop3_server, port
from tests.support.raw import RawClient

USERS = {"acked": "acked-pw", "flying": "flying-pw"}
MESSAGES = [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(1, 6)]
FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
UID = re.compile(rb"UID (\d+)")
UNTOUCHED = {uid: frozenset[str]() for uid in range(1, 6)}
UPDATED = {1: frozenset({"\\Seen"}), 2: frozenset({"\\Seen"})}


def inbox(client: imaplib.IMAP4) -> dict[int, frozenset[str]]:
    """UID -> flags (without \\Recent), read-only (EXAMINE)."""
    typ, data = client.select("INBOX", readonly=True)
    assert typ == "OK", data
    typ, items = client.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", items
    found: dict[int, frozenset[str]] = {}
    for item in items:
        line = item if isinstance(item, bytes) else b""
        flags, uid = FLAGS.search(line), UID.search(line)
        if flags and uid:
            found[int(uid.group(1))] = frozenset(flags.group(1).decode().split()) - {"\\Recent"}
    return found


def update(client: RawClient, user: str) -> None:
    """Log in, RETR 1 and 2, DELE 3 to 5; QUIT is the caller's."""
    client.line()  # greeting
    client.send(b"USER %s\r\nPASS %s\r\n" % (user.encode(), USERS[user].encode()))
    assert client.line().startswith(b"+OK") and client.line().startswith(b"+OK")
    for command in (b"RETR 1", b"RETR 2"):
        client.send(command + b"\r\n")
        assert client.line().startswith(b"+OK")
        while client.line() != b".\r\n":
            pass
    for number in (3, 4, 5):
        client.send(b"DELE %d\r\n" % number)
        assert client.line().startswith(b"+OK")


def test_quit_is_durable_at_ok_and_all_or_nothing_under_sigkill(tmp_path: Path) -> None:
    with pop3_server(tmp_path, USERS) as first:
        pop3_port = port(first, POP3_LINE)
        for user, password in USERS.items():
            append(first, user, password, MESSAGES)
        acked = RawClient(first.host, pop3_port)
        flying = RawClient(first.host, pop3_port)
        update(acked, "acked")
        update(flying, "flying")
        acked.send(b"QUIT\r\n")
        assert acked.line() == b"+OK Logging out\r\n"
        flying.send(b"QUIT\r\n")  # the kill races this one's commit
        first.process.kill()  # SIGKILL: no shutdown code runs
        first.process.wait()
        acked.close()
        flying.close()
    with pop3_server(tmp_path, {}) as second:
        for user, password in USERS.items():
            client = imap_login(second, user, password)
            try:
                found = inbox(client)
            finally:
                client.logout()
            assert found in ([UPDATED] if user == "acked" else [UNTOUCHED, UPDATED]), (user, found)

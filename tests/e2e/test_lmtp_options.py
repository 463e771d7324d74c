"""The LMTP operator options on a running ``imapd serve --lmtp``: the
subaddress separator, the SIZE limit LHLO announces and enforces, the
recipient limit (RFC 5321 §4.5.3.1.8: 452 past it, the transaction goes
on), and ``imapd deliver`` reading the same separator."""

from __future__ import annotations

import imaplib
import re
import smtplib
import subprocess
from pathlib import Path

from tests.support.server import (
    LOOPBACK_ENDPOINT, RunningServer, imapd_command, running_server, subprocess_env,
)
from tests.support.waiting import wait_until

LMTP_LINE = re.compile(r"listening on LMTP (\[[^\]]+\]|[^\s:]+):(\d+)")
USERS = {"alice": "wonderland"}
OPTIONS = ["--lmtp", LOOPBACK_ENDPOINT, "--lmtp-separator", "-", "--lmtp-max-message", "2000",
           "--lmtp-max-recipients", "100"]


def lmtp(server: RunningServer) -> tuple[smtplib.LMTP, bytes]:
    match = wait_until(lambda: LMTP_LINE.search(server.log()), "the LMTP listener")
    client = smtplib.LMTP(server.host, int(match.group(2)), timeout=30)
    code, text = client.docmd("LHLO", "opts.test")
    assert code == 250
    return client, text


def count(server: RunningServer, mailbox: str) -> int:
    client = imaplib.IMAP4(server.host, server.port)
    client.login("alice", USERS["alice"])
    typ, data = client.select(mailbox, readonly=True)
    client.logout()
    assert typ == "OK", data
    return int(data[0] or b"0")


def test_separator_size_and_recipient_limits(tmp_path: Path) -> None:
    with running_server(tmp_path, USERS, OPTIONS) as server:
        client = imaplib.IMAP4(server.host, server.port)
        client.login("alice", USERS["alice"])
        client.create("lists")
        client.logout()
        smtp, extensions = lmtp(server)
        assert b"\nSIZE 2000" in extensions
        assert smtp.sendmail("s@example.org", ["alice-lists@example.org"],
                             b"Subject: minus\r\n\r\nx\r\n") == {}
        assert count(server, "lists") == 1
        # '+' is no separator now: "alice+lists" is nobody.
        smtp.mail("s@example.org")
        assert smtp.rcpt("alice+lists@example.org")[0] == 550
        smtp.rset()
        smtp.mail("s@example.org")
        replies = [smtp.rcpt("alice@example.org")[0] for _ in range(101)]
        assert replies == [250] * 100 + [452]
        code, _ = smtp.data(b"Subject: many\r\n\r\n" + b"y" * 3000 + b"\r\n")
        assert code == 552  # past --lmtp-max-message, for each of the 100
        smtp.quit()
        assert count(server, "INBOX") == 0
        deliver = subprocess.run(
            imapd_command("deliver", "--data", str(server.data_dir), "-a", "alice-lists",
                          "--lmtp-separator", "-"),
            input=b"Subject: lda\n\nz\n", capture_output=True, env=subprocess_env(), timeout=60)
        assert deliver.returncode == 0, deliver.stderr
        assert count(server, "lists") == 2

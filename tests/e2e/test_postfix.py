"""A real Postfix delivers to imapd (issue 15): mail submitted to a private
Postfix instance's smtpd (tests/support/postfix.py) reaches imapd

* over LMTP (``virtual_transport = lmtp:unix:...`` into ``imapd serve
  --lmtp``), and
* through local(8)'s ``mailbox_command`` running ``imapd deliver`` as the
  recipient's unix account (over a PostgreSQL store: that account cannot
  open a root-owned SQLite data directory, and a shared store is how a
  site gives the LDA access without one),

and is read back over IMAP byte for byte: exactly what was submitted,
after the trace header fields Postfix and imapd prepend. A recipient imapd
does not know is not delivered: Postfix turns imapd's refusal (LMTP 550
5.1.1, ``deliver`` exit 67 EX_NOUSER) into a bounce to the sender, who is
an imapd user here, so the bounce is read back too. The main.cf settings are
the ones docs/delivery.md shows."""

from __future__ import annotations

import imaplib
import re
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.frontends import add_user, store_url
from tests.support.pinned_skips import Pin
from tests.support.postfix import (
    LMTP_DOMAIN, LOCAL_DOMAIN, MISSING, NOT_ROOT, Postfix, ensure_unix_user, imapd_launcher, lmtp_settings,
    mailbox_command_settings, require_postfix, running_postfix,
)
from tests.support.postgres import MISSING as PG_MISSING
from tests.support.postgres import postgres_cluster, postgres_dsn  # noqa: F401 (fixtures)
from tests.support.server import RunningServer, running_server
from tests.support.waiting import wait_until

PINNED_SKIPS = (
    Pin.exact(MISSING, "tests/support/postfix.py runs Debian's postfix; .ci/run installs it", in_ci=False),
    Pin.exact(NOT_ROOT, "Postfix's master starts as root; CI runs as root", in_ci=False),
    Pin.exact(PG_MISSING, "the mailbox_command test uses the PostgreSQL test cluster; .ci/run installs it",
              in_ci=False),
)

USERS = {"alice": "wonderland", "bob": "builder", "carol": "wine"}
# Complete header (From, Date, Message-ID) so that Postfix's cleanup adds
# none; dot-leading lines (RFC 5321 §4.5.2 transparency on both hops), a
# lone "." line and 8-bit UTF-8 that must pass through unchanged.
MESSAGE = (b"From: Carol <carol@example.org>\r\nTo: alice@example.org\r\nSubject: through Postfix\r\n"
           b"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMessage-ID: <pf-1@example.org>\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           b".leading dot\r\n..two dots\r\n.\r\n8-bit: \xc3\xa9t\xc3\xa9 \xe2\x82\xac\r\nend\r\n")
FIELD = re.compile(rb"[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")  # one header field with its folded lines


def mailbox(server: RunningServer, user: str, password: str, name: str = "INBOX") -> list[bytes]:
    """Every message of ``user``'s mailbox ``name``, as BODY[] bytes."""
    client = imaplib.IMAP4(server.host, server.port)
    try:
        client.login(user, password)
        typ, data = client.select(name, readonly=True)
        assert typ == "OK", data
        count = int(data[0] or b"0")
        if count == 0:
            return []
        typ, fetched = client.fetch(f"1:{count}", "(BODY.PEEK[])")
        assert typ == "OK", fetched
        return [item[1] for item in fetched if isinstance(item, tuple)]
    finally:
        client.logout()


def wait_for_mail(server: RunningServer, postfix: Postfix, user: str, password: str, count: int) -> list[bytes]:
    """Poll ``user``'s INBOX until it holds ``count`` messages (Postfix
    delivers asynchronously); a timeout shows the Postfix log."""
    def probe() -> list[bytes] | None:
        got = mailbox(server, user, password)
        return got if len(got) >= count else None
    try:
        found = wait_until(probe, f"{count} message(s) for {user}", interval=0.2)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\n{postfix.log()}") from None
    assert len(found) == count, postfix.log()
    return found


def split_trace(stored: bytes, fields: int) -> tuple[list[bytes], bytes]:
    """The first ``fields`` header fields of ``stored`` and what follows them."""
    head: list[bytes] = []
    rest = stored
    for _ in range(fields):
        match = FIELD.match(rest)
        assert match is not None, stored[:500]
        head.append(match.group(0))
        rest = rest[match.end():]
    return head, rest


def bounce_for(bounces: list[bytes], rcpt: str, reason: bytes) -> bytes:
    """The Postfix non-delivery report that names ``rcpt`` and imapd's ``reason``."""
    found = [b for b in bounces if rcpt.encode() in b and reason in b]
    assert found, bounces
    return found[0]


@pytest.fixture
def lmtp_pair(tmp_path: Path) -> Iterator[tuple[Postfix, RunningServer]]:
    with running_postfix(lmtp_settings()) as postfix:
        args = ["--lmtp", f"unix:{postfix.lmtp_socket}:mode=666"]
        with running_server(tmp_path, USERS, args) as server:
            # Postfix defers a delivery it cannot connect for minutes: wait for the socket.
            wait_until(lambda: "listening on LMTP unix:" in server.log(), "imapd's LMTP socket")
            yield postfix, server


def test_postfix_delivers_over_lmtp_byte_for_byte(lmtp_pair: tuple[Postfix, RunningServer]) -> None:
    postfix, server = lmtp_pair
    sender = f"carol@{LMTP_DOMAIN}"
    rcpts = [f"alice@{LMTP_DOMAIN}", f"nobody@{LMTP_DOMAIN}", f"bob@{LMTP_DOMAIN}"]
    assert postfix.submit(sender, rcpts, MESSAGE) == {}  # imapd decides, at LMTP RCPT
    for user in ("alice", "bob"):
        [stored] = wait_for_mail(server, postfix, user, USERS[user], 1)
        head, rest = split_trace(stored, 4)
        assert rest == MESSAGE, postfix.log()
        assert head[:2] == [f"Return-Path: <{sender}>\r\n".encode(),
                            f"Delivered-To: {user}@{LMTP_DOMAIN}\r\n".encode()]
        assert head[2].startswith(b"Received: from mx.imapd.test (unix)\r\n") and b"with LMTP" in head[2]
        assert head[3].startswith(b"Received: from ") and b"by mx.imapd.test (Postfix) with ESMTP" in head[3]
    [bounce] = wait_for_mail(server, postfix, "carol", USERS["carol"], 1)
    bounce_for([bounce], "nobody@lmtp.test", b"550 5.1.1 <nobody@lmtp.test> User unknown")
    assert "to=<nobody@lmtp.test>" in postfix.log() and "status=bounced" in postfix.log()


# local(8) delivers to unix accounts: these are created if missing (and
# kept). The first two are imapd users too; the third is not (deliver exits
# 67, EX_NOUSER, and Postfix bounces).
LOCAL_USERS = {"imapd-pf-alice": "wonderland", "imapd-pf-carol": "wine"}
NOT_IN_IMAPD = "imapd-pf-bob"


@pytest.fixture
def local_pair(tmp_path: Path, postgres_dsn: str) -> Iterator[tuple[Postfix, RunningServer]]:
    require_postfix()  # skip before creating accounts (root only)
    url = store_url(postgres_dsn)
    for name in (*LOCAL_USERS, NOT_IN_IMAPD):
        ensure_unix_user(name)
    for name, password in LOCAL_USERS.items():
        add_user(url, None, name, password)
    with imapd_launcher(NOT_IN_IMAPD) as imapd:
        command = f'{imapd} deliver --store {url} -f "$SENDER" -a "$RECIPIENT"'
        with running_postfix(mailbox_command_settings(command)) as postfix:
            with running_server(tmp_path, {}, ["--store", url]) as server:
                yield postfix, server


def test_postfix_delivers_through_mailbox_command_byte_for_byte(
        local_pair: tuple[Postfix, RunningServer]) -> None:
    postfix, server = local_pair
    sender = f"imapd-pf-carol@{LOCAL_DOMAIN}"
    rcpts = [f"imapd-pf-alice@{LOCAL_DOMAIN}", f"no-such-account@{LOCAL_DOMAIN}",
             f"{NOT_IN_IMAPD}@{LOCAL_DOMAIN}"]
    refused = postfix.submit(sender, rcpts, MESSAGE)
    assert list(refused) == [f"no-such-account@{LOCAL_DOMAIN}"] and refused[rcpts[1]][0] == 550
    [stored] = wait_for_mail(server, postfix, "imapd-pf-alice", LOCAL_USERS["imapd-pf-alice"], 1)
    head, rest = split_trace(stored, 4)
    assert rest == MESSAGE, postfix.log()
    # local(8) prepends Return-Path (so deliver's -f adds none), X-Original-To
    # and Delivered-To; the mbox "From " line it sends first is dropped.
    assert head[:3] == [f"Return-Path: <{sender}>\r\n".encode(),
                        f"X-Original-To: {rcpts[0]}\r\n".encode(), f"Delivered-To: {rcpts[0]}\r\n".encode()]
    assert head[3].startswith(b"Received: from ") and b"by mx.imapd.test (Postfix) with ESMTP" in head[3]
    [bounce] = wait_for_mail(server, postfix, "imapd-pf-carol", LOCAL_USERS["imapd-pf-carol"], 1)
    # deliver's exit 67 (EX_NOUSER) is a permanent failure: Postfix bounces with its stderr.
    bounce_for([bounce], f"{NOT_IN_IMAPD}@{LOCAL_DOMAIN}", f"imapd deliver: {NOT_IN_IMAPD}@{LOCAL_DOMAIN}: user unknown".encode())


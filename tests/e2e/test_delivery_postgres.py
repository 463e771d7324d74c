"""Delivery on the PostgreSQL engine (issue 15: "works on every storage
backend"): two ``imapd serve`` frontends over one database, LMTP on one
of them, ``imapd deliver --store`` from outside; the mail is read back
byte for byte through the other frontend, whose IDLE session sees it at
once (RFC 2177) as ``\\Recent`` for that session alone; quota holds
across processes; while PostgreSQL is down a delivery is answered
``451 4.3.0`` (the MTA keeps the mail and retries), never 250, and after
the restart the same delivery is stored once.
"""

from __future__ import annotations

import re
import smtplib
import subprocess
from pathlib import Path

from tests.e2e.frontends import Frontend, add_user, frontends, store_url
from tests.support.pinned_skips import Pin
from tests.support.postgres import MISSING, Cluster, postgres_cluster, postgres_dsn  # noqa: F401 (fixtures)
from tests.support.raw import RawClient
from tests.support.server import LOOPBACK_ENDPOINT, imapd_command, run_cli, subprocess_env
from tests.support.waiting import wait_until

PINNED_SKIPS = (Pin.exact(MISSING, "PostgreSQL binaries are a CI dependency (.ci/run)", in_ci=False),)
LMTP_LINE = re.compile(r"listening on LMTP (\[[^\]]+\]|[^\s:]+):(\d+)")
PASSWORD = "wonderland"
MESSAGE = (b"From: s@example.org\r\nSubject: over postgres\r\n\r\n.dot first\r\n"
           b"8-bit \xc3\xa9\r\n")


def lmtp(front: Frontend) -> smtplib.LMTP:
    match = wait_until(lambda: LMTP_LINE.search(front.log()), "the LMTP listener")
    client = smtplib.LMTP(front.host, int(match.group(2)), timeout=30)
    assert client.docmd("LHLO", "pg.test")[0] == 250
    return client


def login(front: Frontend, user: str) -> RawClient:
    client = RawClient(front.host, front.port, timeout=30)
    client.line()
    client.send(b"a LOGIN %s %s\r\n" % (user.encode(), PASSWORD.encode()))
    assert client.until_tagged(b"a")[-1].startswith(b"a OK")
    return client


def bodies(front: Frontend, user: str) -> list[bytes]:
    """Every message of ``user``'s INBOX, BODY[] octets, read with a raw
    client (the literal's exact bytes)."""
    client = login(front, user)
    client.send(b"b EXAMINE INBOX\r\n")
    if b"* 0 EXISTS\r\n" in client.until_tagged(b"b"):
        client.close()
        return []
    client.send(b"c FETCH 1:* BODY.PEEK[]\r\n")
    found: list[bytes] = []
    while True:
        line = client.line()
        if line.startswith(b"c "):
            assert line.startswith(b"c OK"), line
            break
        if line.startswith(b"* ") and b"FETCH" in line:
            size = int(line[line.rindex(b"{") + 1:line.rindex(b"}")])
            found.append(_read(client, size))
            client.line()  # the closing ")"
    client.close()
    return found


def _read(client: RawClient, size: int) -> bytes:
    """A literal of ``size`` octets (our messages end with CRLF)."""
    data = b""
    while len(data) < size:
        data += client.line()
    assert len(data) == size
    return data


def delivered_by_lmtp(front: Frontend) -> bool:
    """One LMTP delivery to alice; False on a 4xx (the store not back yet)."""
    client = lmtp(front)
    try:
        client.sendmail("s@example.org", ["alice"], MESSAGE)
    except smtplib.SMTPResponseException as error:
        assert 400 <= error.smtp_code < 500, error
        return False
    except smtplib.SMTPRecipientsRefused as error:
        assert all(400 <= code < 500 for code, _ in error.recipients.values()), error
        return False
    finally:
        client.close()
    return True


def deliver(store: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(imapd_command("deliver", "--store", store, "--data", str(workdir / "lda"),
                                        *args), input=MESSAGE, capture_output=True,
                          env=subprocess_env(), timeout=60)


def test_lmtp_and_deliver_over_postgres(tmp_path: Path, postgres_dsn: str) -> None:
    url = store_url(postgres_dsn)
    for user in ("alice", "bob"):
        add_user(url, None, user, PASSWORD)
    run_cli("user", "quota", "bob", "--storage", "10", "--store", url)
    with frontends(tmp_path, url, 2, extra=("--lmtp", LOOPBACK_ENDPOINT)) as (a, b):
        idler = login(b, "alice")
        idler.send(b"s SELECT INBOX\r\ni IDLE\r\n")
        idler.until_tagged(b"s")
        assert idler.line().startswith(b"+ ")
        client = lmtp(a)
        client.mail("s@example.org", ["BODY=8BITMIME"])
        assert client.rcpt("alice@example.org")[0] == 250
        assert client.rcpt("bob@example.org")[0] == 250
        assert client.rcpt("nobody@example.org")[0] == 550
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        client.send(MESSAGE.replace(b"\r\n.dot", b"\r\n..dot") + b".\r\n")
        # RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
        assert client.getreply()[0] == 250
        assert client.getreply() == (552, b"5.2.2 Mailbox full (over quota)")
        client.quit()
        assert idler.line() == b"* 1 EXISTS\r\n"  # pushed from the other frontend
        idler.send(b"DONE\r\n")
        idler.until_tagged(b"i")
        idler.send(b"f FETCH 1 FLAGS\r\n")
        assert b"\\Recent" in idler.until_tagged(b"f")[0]
        idler.close()

        done = deliver(url, tmp_path, "-f", "lda@example.org", "-a", "alice")
        assert done.returncode == 0, done.stderr
        stored = bodies(b, "alice")
        assert len(stored) == 2
        assert stored[0].startswith(b"Return-Path: <s@example.org>\r\n"
                                    b"Delivered-To: alice@example.org\r\n")
        assert stored[0].endswith(MESSAGE)
        assert stored[1] == b"Return-Path: <lda@example.org>\r\n" + MESSAGE
        assert bodies(a, "bob") == []
        assert deliver(url, tmp_path, "-a", "nobody").returncode == 67  # EX_NOUSER


def test_delivery_while_postgres_is_down_is_temporary(
        tmp_path: Path, postgres_cluster: Cluster, postgres_dsn: str) -> None:
    url = store_url(postgres_dsn)
    add_user(url, None, "alice", PASSWORD)
    with frontends(tmp_path, url, 1, extra=("--lmtp", LOOPBACK_ENDPOINT)) as (front,):
        client = lmtp(front)  # resolve the port while the log is fresh
        client.quit()
        postgres_cluster.stop("immediate")
        try:
            client = lmtp(front)
            client.mail("s@example.org")
            # The recipient lookup needs the database too: 451 there (the
            # connection goes on), or 451 after DATA. Never 250 after DATA.
            code, text = client.rcpt("alice")
            if code == 250:
                client.putcmd("DATA")
                assert client.getreply()[0] == 354
                client.send(MESSAGE + b".\r\n")
                code, text = client.getreply()
            assert (code, text[:5]) == (451, b"4.3.0"), text
            assert client.noop()[0] == 250
            client.quit()
            assert deliver(url, tmp_path, "-a", "alice").returncode == 75  # EX_TEMPFAIL
        finally:
            postgres_cluster.start()
        wait_until(lambda: delivered_by_lmtp(front), "a delivery after PostgreSQL came back")
        stored = bodies(front, "alice")
        assert len(stored) == 1 and stored[0].endswith(MESSAGE)
        assert "Traceback" not in front.log()

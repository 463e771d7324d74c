"""POP3 end to end: Python's ``poplib`` against a real ``imapd serve
--pop3`` (and ``--pop3s``), the mail put in and checked over IMAP: the
same store, seen from both protocols."""

from __future__ import annotations

import base64
import imaplib
import poplib
import ssl
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.pop3_server import POP3_LINE, POP3S_LINE, append, imap_login, pop3_server, port
from tests.support.server import LOOPBACK_ENDPOINT, RunningServer, running_server

USERS = {"alice": "wonderland", "bob": "builder", "carol": "c4rol", "dave": "d4ve"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with pop3_server(tmp_path_factory.mktemp("e2e-pop3"), USERS) as s:
        yield s


def imap(server: RunningServer, user: str) -> imaplib.IMAP4:
    return imap_login(server, user, USERS[user])


def put(server: RunningServer, user: str, messages: list[bytes]) -> None:
    append(server, user, USERS[user], messages)


def pop(server: RunningServer, user: str) -> poplib.POP3:
    client = poplib.POP3(server.host, port(server, POP3_LINE), timeout=30)
    client.user(user)
    client.pass_(USERS[user])
    return client


def imap_uids(server: RunningServer, user: str) -> list[int]:
    client = imap(server, user)
    try:
        client.select("INBOX", readonly=True)
        typ, data = client.uid("SEARCH", "ALL")
        assert typ == "OK"
        return [int(u) for u in (data[0] or b"").split()]
    finally:
        client.logout()


def test_stat_list_retr_uidl_dele_quit_with_imap_seeing_the_result(server: RunningServer) -> None:
    first = b"From: a@example.org\r\nSubject: one\r\n\r\n.dot line\r\nbody\r\n"
    second = b"From: b@example.org\r\nSubject: two\r\n\r\nsecond\r\n"
    put(server, "alice", [first, second])
    uids = imap_uids(server, "alice")
    client = pop(server, "alice")
    try:
        assert client.stat() == (2, len(first) + len(second))
        _, listing, _ = client.list()
        assert listing == [f"1 {len(first)}".encode(), f"2 {len(second)}".encode()]
        _, lines, octets = client.retr(1)
        # poplib drops line ends and undoes the byte-stuffing.
        assert b"\r\n".join(lines) + b"\r\n" == first
        _, ids, _ = client.uidl()
        assert [i.split()[0] for i in ids] == [b"1", b"2"]
        assert len({i.split()[1] for i in ids}) == 2
        assert client.dele(1).startswith(b"+OK")
        assert client.stat() == (1, len(second))
        assert client.quit().startswith(b"+OK")
    finally:
        client.close()
    assert imap_uids(server, "alice") == uids[1:]
    # The second session sees one message, under the same unique id.
    again = pop(server, "alice")
    try:
        assert again.stat() == (1, len(second))
        assert again.uidl(1).split()[2] == ids[1].split()[1]
    finally:
        again.quit()


def test_a_dropped_connection_deletes_nothing(server: RunningServer) -> None:
    put(server, "bob", [b"Subject: keep\r\n\r\nme\r\n"])
    before = imap_uids(server, "bob")
    client = pop(server, "bob")
    client.dele(1)
    client.close()  # no QUIT
    assert imap_uids(server, "bob") == before


def test_wrong_password_is_err_auth(server: RunningServer) -> None:
    client = poplib.POP3(server.host, port(server, POP3_LINE), timeout=30)
    try:
        client.user("alice")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.pass_("wrong")
    finally:
        client.quit()


def test_pop3s_implicit_tls(server: RunningServer) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = poplib.POP3_SSL(server.host, port(server, POP3S_LINE), context=context, timeout=30)
    try:
        client.user("alice")
        client.pass_(USERS["alice"])
        assert client.noop().startswith(b"+OK")
    finally:
        client.quit()


def idler(server: RunningServer, user: str) -> tuple[RawClient, int]:
    """An IMAP session IDLE on INBOX, and the message count it saw."""
    client = RawClient(server.host, server.port)
    client.line()
    client.send(b"a LOGIN %s %s\r\nb SELECT INBOX\r\n" % (user.encode(), USERS[user].encode()))
    selected = client.until_tagged(b"b")
    exists = next(int(l.split()[1]) for l in selected if l.endswith(b" EXISTS\r\n"))
    client.send(b"c IDLE\r\n")
    assert client.line().startswith(b"+ ")
    return client, exists


def test_an_idle_imap_session_sees_pop3_deletes_at_quit(server: RunningServer) -> None:
    put(server, "carol", [b"Subject: 1\r\n\r\na\r\n", b"Subject: 2\r\n\r\nb\r\n"])
    watcher, exists = idler(server, "carol")
    assert exists == 2
    client = pop(server, "carol")
    client.retr(1)
    client.dele(2)
    client.quit()
    # QUIT stores \\Seen and expunges in one commit: the idler hears one
    # batch, expunges first (no \\Deleted FETCH: the flag is never stored).
    # The idler SELECTed first, so the messages are \\Recent in its session.
    heard = [watcher.line(), watcher.line()]
    assert heard == [b"* 2 EXPUNGE\r\n", b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"]
    watcher.send(b"DONE\r\n")
    watcher.until_tagged(b"c")
    watcher.close()


def test_an_idle_imap_session_sees_nothing_when_pop3_drops(server: RunningServer) -> None:
    put(server, "dave", [b"Subject: 1\r\n\r\na\r\n"])
    watcher, exists = idler(server, "dave")
    client = pop(server, "dave")
    client.retr(1)
    client.dele(1)
    client.close()  # no QUIT
    # The next thing the idler hears is this marker delivery, nothing before it.
    put(server, "dave", [b"Subject: marker\r\n\r\nm\r\n"])
    assert watcher.line() == b"* %d EXISTS\r\n" % (exists + 1)
    watcher.send(b"DONE\r\n")
    watcher.until_tagged(b"c")
    watcher.close()


def test_stls_then_login(server: RunningServer) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = poplib.POP3(server.host, port(server, POP3_LINE), timeout=30)
    try:
        assert "STLS" in client.capa()
        client.stls(context)
        assert "STLS" not in client.capa()
        client.user("alice")
        client.pass_(USERS["alice"])
        assert client.noop().startswith(b"+OK")
    finally:
        client.quit()


def test_a_large_message_is_retrieved_byte_for_byte(server: RunningServer) -> None:
    lines = [b"Subject: big\r\n", b"\r\n"] + [
        b".%06d line that starts with a dot\r\n" % i if i % 3 == 0 else b"%06d plain\r\n" % i
        for i in range(120_000)]
    message = b"".join(lines)  # about 3.5 MB
    put(server, "bob", [message])
    client = pop(server, "bob")
    try:
        count, _ = client.stat()
        assert int(client.list(count).split()[2]) == len(message)
        _, got, _ = client.retr(count)
        assert b"\r\n".join(got) + b"\r\n" == message
    finally:
        client.quit()


def test_auth_plain_and_credentials_never_reach_the_log(tmp_path: Path) -> None:
    secret = "s3cret-Pa55"
    plain = base64.b64encode(f"\0alice\0{secret}".encode())
    args = ["--pop3", LOOPBACK_ENDPOINT, "--log-level", "debug"]
    with running_server(tmp_path, {"alice": secret}, args) as own:
        client = poplib.POP3(own.host, port(own, POP3_LINE), timeout=30)
        assert client._shortcmd("AUTH PLAIN " + plain.decode()).startswith(b"+OK")
        client.quit()
        client = poplib.POP3(own.host, port(own, POP3_LINE), timeout=30)
        client.user("alice")
        client.pass_(secret)
        client.quit()
        client = poplib.POP3(own.host, port(own, POP3_LINE), timeout=30)
        client.user("alice")
        with pytest.raises(poplib.error_proto):
            client.pass_(secret + "x")
        client.quit()
        log = own.log()
    assert "pop3 session" in log
    assert secret not in log and plain.decode() not in log

"""imapd.testing.server: a whole imapd in the test process, on loopback ports.

Real sockets and real clients (imaplib, poplib, smtplib.LMTP), as a test
kit user's suite would use them.
"""

from __future__ import annotations

import datetime
import imaplib
import os
import poplib
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest

from imapd.testing import reactor as kit
from imapd.testing.inspect import MailboxNotFound
from imapd.testing.server import ServerNotRunning, TestServer

MESSAGE = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"


def test_a_client_logs_in_and_sees_seeded_mail() -> None:
    with TestServer() as server:
        assert server.address[0] == "127.0.0.1" and server.address[1] > 0
        alice = server.add_user("alice", "wonder land")
        when = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
        assert alice.seed("INBOX", MESSAGE, MESSAGE, flags=["\\Seen", "$Label1"],
                          internal_date=when) == [1, 2]
        with imaplib.IMAP4(*server.address) as client:
            client.login("alice", "wonder land")
            client.select("INBOX")
            status, data = client.uid("FETCH", "2", "(FLAGS INTERNALDATE)")
            assert status == "OK"
            assert b"\\Seen" in data[0] and b"$Label1" in data[0]  # type: ignore[operator]
            assert b'"04-Mar-2021 05:06:07 +0000"' in data[0]  # type: ignore[operator]
            client.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
            client.logout()
        state = alice.mailbox("INBOX")
        assert state.uids == [1, 2] and state.exists == 2
        assert state.flags[1] == {"\\Seen", "$Label1", "\\Flagged"}
        assert state.messages[0].subject == "hello" and state.messages[0].raw == MESSAGE
        assert state.messages[1].internal_date == when
        assert "$Label1" in state.keywords


def test_seeding_creates_the_mailbox_and_folders_lists_it() -> None:
    with TestServer(options={"default_mailboxes": ()}) as server:
        server.add_user("alice", "pw")
        assert server.folders() == ["INBOX"]
        assert server.seed("alice", "Lists/imapd", MESSAGE) == [1]
        assert server.folders() == ["INBOX", "Lists", "Lists/imapd"]  # superiors too (§6.3.3)
        assert server.mailbox("Lists/imapd").exists == 1


def test_a_missing_mailbox_names_the_existing_ones() -> None:
    with TestServer(options={"default_mailboxes": ()}) as server:
        server.add_user("alice", "pw")
        server.create_mailbox("Work")
        with pytest.raises(MailboxNotFound, match="no mailbox 'Nope'; existing mailboxes: "
                                                  "'INBOX', 'Work'"):
            server.mailbox("Nope")


def test_which_user_must_be_said_when_there_are_several() -> None:
    with TestServer() as server:
        server.add_user("alice", "pw")
        server.add_user("bob", "pw2")
        with pytest.raises(ValueError, match="say which user: the server has 2 .alice, bob."):
            server.mailbox("INBOX")
        assert server.mailbox("INBOX", user="bob").exists == 0
        assert server.secrets == ["pw", "pw2"]


def test_unknown_options_and_backends_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown imapd option 'max_lines'"):
        TestServer(options={"max_lines": 10}).start()
    with pytest.raises(ValueError, match="unknown backend 'mysql'"):
        TestServer(backend="mysql")
    with pytest.raises(ServerNotRunning):
        TestServer().mailbox("INBOX", user="x")


def test_sqlite_backend_in_a_data_dir_it_removes_afterwards() -> None:
    server = TestServer(backend="sqlite").start()
    try:
        data_dir = server.data_dir
        assert data_dir is not None and data_dir.is_dir()
        server.add_user("alice", "pw")
        server.seed("alice", "INBOX", MESSAGE)
        with imaplib.IMAP4(*server.address) as client:
            client.login("alice", "pw")
            assert client.select("INBOX") == ("OK", [b"1"])
            client.logout()
        assert server.mailbox("INBOX").messages[0].raw == MESSAGE
    finally:
        server.stop()
    assert not data_dir.exists()


def test_sqlite_in_a_given_data_dir_keeps_it(tmp_path: Path) -> None:
    with TestServer(backend="sqlite", data_dir=tmp_path / "data") as server:
        server.add_user("alice", "pw")
        server.seed("alice", "INBOX", MESSAGE)
    assert (tmp_path / "data").is_dir()
    with TestServer(backend="sqlite", data_dir=tmp_path / "data") as again:
        again.add_user("alice", "pw")
        assert again.mailbox("INBOX").exists == 1  # the store outlived the first server


def test_pop3_and_lmtp_share_the_store() -> None:
    with TestServer(pop3=True, lmtp=True) as server:
        assert server.pop3_port and server.lmtp_port
        server.add_user("alice", "pw")
        lmtp = smtplib.LMTP(server.host, server.lmtp_port)
        try:
            lmtp.sendmail("sender@example.org", ["alice"], MESSAGE)
        finally:
            lmtp.quit()
        assert server.mailbox("INBOX").messages[0].subject == "hello"
        pop = poplib.POP3(server.host, server.pop3_port)
        try:
            pop.user("alice")
            pop.pass_("pw")
            assert pop.stat()[0] == 1
        finally:
            pop.quit()
        protocols = [t.protocol for t in server.transcripts]
        assert protocols == ["pop3", "lmtp"]  # IMAP first, then POP3, then LMTP


def test_store_actions_change_the_mailbox_under_a_selected_client() -> None:
    with TestServer() as server:
        server.add_user("alice", "pw")
        server.seed("alice", "INBOX", MESSAGE, MESSAGE)
        with imaplib.IMAP4(*server.address) as client:
            client.login("alice", "pw")
            client.select("INBOX")
            uid = kit.call(lambda: server.append_message("alice", "INBOX", b"Subject: new\n\nx\n"))
            assert uid == 3
            client.noop()
            assert client.response("EXISTS")[1][-1] == b"3"
            assert kit.call(lambda: server.expunge_message("alice", "INBOX", None)) == 1
            assert kit.call(lambda: server.expunge_message("alice", "INBOX", 99)) is None
            client.noop()
            assert client.response("EXPUNGE")[1] == [b"1"]
            client.logout()
        state = server.mailbox("INBOX")
        assert state.uids == [2, 3] and state.messages[1].raw == b"Subject: new\r\n\r\nx\r\n"


def test_stop_says_bye_to_open_clients_and_closes_them() -> None:
    server = TestServer().start()
    server.add_user("alice", "pw")
    idle = socket.create_connection(server.address, timeout=10)
    assert idle.recv(1000).startswith(b"* OK")
    server.stop()
    rest = b""
    while chunk := idle.recv(1000):
        rest += chunk
    assert rest.startswith(b"* BYE")
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=10)
    server.stop()  # idempotent


def test_two_servers_in_one_test_are_independent() -> None:
    with TestServer() as one, TestServer() as two:
        assert one.imap_port != two.imap_port
        one.add_user("alice", "pw")
        two.add_user("alice", "other")
        one.seed("alice", "INBOX", MESSAGE)
        assert one.mailbox("INBOX").exists == 1 and two.mailbox("INBOX").exists == 0
        with imaplib.IMAP4(*two.address) as client:
            with pytest.raises(imaplib.IMAP4.error):
                client.login("alice", "pw")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="Linux /proc needed")
def test_200_start_stop_cycles_leak_no_descriptors_or_threads() -> None:
    with TestServer(pop3=True, lmtp=True):
        pass  # warm: imports, the reactor's thread pool
    fds, threads = _open_fds(), threading.active_count()
    started = time.perf_counter()
    for _ in range(200):
        with TestServer() as server:
            server.add_user("u", "p")
            socket.create_connection(server.address, timeout=10).close()
    per_cycle = (time.perf_counter() - started) / 200
    assert _open_fds() <= fds and threading.active_count() <= threads
    assert per_cycle < 0.5, per_cycle  # ~ms in fact; the bound is for a loaded CI box


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="Linux /proc needed")
def test_a_start_that_fails_half_way_closes_what_it_opened() -> None:
    with TestServer():
        pass  # warm
    fds = _open_fds()
    broken = TestServer(lmtp=True, options={"lmtp": None})  # IMAP binds, then LMTP fails
    with pytest.raises(AttributeError):
        broken.start()
    assert not broken.running and _open_fds() <= fds

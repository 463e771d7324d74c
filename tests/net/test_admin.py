"""The admin socket (``imapd.net.admin``) of a real server in this
process: ``status`` lists the live IMAP/POP3/LMTP sessions, ``kick``
closes a user's sessions with ``* BYE`` (RFC 3501 §7.1.5) and ``-ERR``
(RFC 1939 §3); ``ask`` is None when nothing listens."""

from __future__ import annotations

import json
import socket
import stat
import time
from pathlib import Path
from typing import Iterator

import pytest

from imapd.net import admin
from tests.support.operated import Client, Served, serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path)


def imap_login(port: int, user: str, password: str) -> Client:
    client = Client(port)
    assert client.line().startswith(b"* OK")
    assert client.say(f"a LOGIN {user} {password}").startswith(b"a OK") or \
        client.until(b"a ").startswith(b"a OK")
    return client


def pop3_login(port: int, user: str, password: str) -> Client:
    client = Client(port)
    assert client.line().startswith(b"+OK")
    assert client.say(f"USER {user}").startswith(b"+OK")
    assert client.say(f"PASS {password}").startswith(b"+OK")
    return client


def test_no_server_no_answer(tmp_path: Path) -> None:
    assert admin.ask(tmp_path, {"command": "status"}) is None
    # A killed server's socket file: bound once, nobody listening now.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(tmp_path / admin.SOCKET_NAME))
    dead.close()
    assert admin.ask(tmp_path, {"command": "status"}) is None


def test_status_lists_sessions_and_users(served: Served) -> None:
    path = served.data / admin.SOCKET_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    imap = imap_login(served.imap, "alice", "wonderland")
    pop3 = pop3_login(served.pop3, "alice", "wonderland")
    bob = imap_login(served.imap, "bob", "builder")
    lmtp = Client(served.lmtp)
    assert lmtp.line().startswith(b"220")
    anonymous = Client(served.imap)
    assert anonymous.line().startswith(b"* OK")
    try:
        reply = admin.ask(served.data, {"command": "status"})
        assert reply is not None
        assert reply["users"] == {"alice": 2, "bob": 1}
        sessions = reply["sessions"]
        assert sorted((s["protocol"], s["user"] or "", s["state"]) for s in sessions) == [
            ("imap", "", "not_authenticated"), ("imap", "alice", "authenticated"),
            ("imap", "bob", "authenticated"), ("lmtp", "", "delivery"),
            ("pop3", "alice", "transaction")]
        assert all(s["peer"].startswith("127.0.0.1") for s in sessions)
        now = time.time()  # when each connection opened (its session accounting)
        assert all(now - 60 < s["since"] <= now for s in sessions)
    finally:
        for client in (imap, pop3, bob, lmtp, anonymous):
            client.close()


def test_kick_closes_every_session_of_the_user(served: Served) -> None:
    imap = imap_login(served.imap, "alice", "wonderland")
    pop3 = pop3_login(served.pop3, "alice", "wonderland")
    bob = imap_login(served.imap, "bob", "builder")
    try:
        assert admin.ask(served.data, {"command": "kick", "user": "alice"}) == {"closed": 2}
        assert imap.until(b"* BYE") == b"* BYE Disconnected by the administrator\r\n"
        assert imap.line() == b""  # and closed
        assert pop3.line() == b"-ERR Disconnected by the administrator\r\n"
        assert pop3.line() == b""
        assert bob.say("b NOOP").startswith(b"b OK")  # others untouched
        reply = admin.ask(served.data, {"command": "status"})
        assert reply is not None and reply["users"] == {"bob": 1}
        assert admin.ask(served.data, {"command": "kick", "user": "carol"}) == {"closed": 0}
    finally:
        for client in (imap, pop3, bob):
            client.close()


def raw(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(20)
        conn.connect(str(path))
        conn.sendall(data)
        return conn.makefile("rb").readline()


def test_bad_requests_get_an_error(served: Served) -> None:
    path = served.data / admin.SOCKET_NAME
    assert "error" in json.loads(raw(path, b"status\n"))
    assert "error" in json.loads(raw(path, b'{"command": "reboot"}\n'))
    assert "error" in json.loads(raw(path, b'{"command": "kick"}\n'))
    assert "error" in json.loads(raw(path, b"[1]\n"))
    assert json.loads(raw(path, b"x" * (admin.MAX_REQUEST + 10))) == {"error": "request too long"}


def test_the_socket_goes_away_with_the_server(served: Served) -> None:
    from tests.support.reactor_thread import on_reactor

    async def stop() -> None:
        await served.service.stopService()

    on_reactor(stop)
    assert not (served.data / admin.SOCKET_NAME).exists()
    assert admin.ask(served.data, {"command": "status"}) is None


def test_merge_adds_up_workers() -> None:
    merged = admin.merge([{"sessions": [1], "users": {"a": 1}},
                          {"sessions": [2], "users": {"a": 2, "b": 1}}])
    assert merged == {"sessions": [1, 2], "users": {"a": 3, "b": 1}}
    assert admin.merge([{"closed": 1}, {"closed": 2}]) == {"closed": 3}


def run_status(data: Path) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "imapd", "status", "--data", str(data)],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_imapd_status_prints_the_sessions(served: Served) -> None:
    imap = imap_login(served.imap, "alice", "wonderland")
    pop3 = pop3_login(served.pop3, "bob", "builder")
    try:
        status, out, err = run_status(served.data)
        assert status == 0, err
        lines = out.splitlines()
        assert lines[0] == "2 session(s), 2 user(s) logged in"
        assert lines[2].split() == ["PROTOCOL", "USER", "PEER", "STATE", "FOR"]
        assert lines[3].split()[:2] == ["imap", "alice"]
        assert lines[3].split()[3] == "authenticated"
        assert lines[4].split()[:2] == ["pop3", "bob"]
        assert lines[-2:] == ["alice  1", "bob    1"]
    finally:
        imap.close()
        pop3.close()


def test_imapd_status_without_a_server(tmp_path: Path) -> None:
    status, out, err = run_status(tmp_path)
    assert (status, out) == (1, "")
    assert err == f"imapd status: no server is running on {tmp_path}\n"


def test_status_shows_how_long_ago() -> None:
    from imapd.cli_status import render

    reply = {"sessions": [{"protocol": "imap", "user": "alice", "peer": "127.0.0.1:5",
                           "since": 1000.0, "state": "selected"}], "users": {"alice": 1}}
    assert render(reply, 1187.0)[3].split()[-1] == "3m07s"
    assert render(reply, 1000.0 + 7322)[3].split()[-1] == "2h02m"

"""End to end: the real server process on a loopback port, driven by stdlib
imaplib (an independent client) and by raw sockets."""

from __future__ import annotations

import base64
import imaplib
import signal
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import capabilities as caps
from tests.support.raw import RawClient
from tests.support.server import RunningServer, add_user, running_server, stop_process

FAST = ["--failed-login-delay", "0.1"]
# After login on loopback: the written-out list with COMPRESS=DEFLATE.
POST_CAPS = caps.POST_LOGIN.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("e2e"), {"alice": "wonderland"}, FAST) as s:
        yield s


def test_imaplib_capability_login_logout(server: RunningServer) -> None:
    imap = imaplib.IMAP4(server.host, server.port)
    # Loopback with a certificate: the whole pre-login list, STARTTLS and AUTH= included.
    assert imap.welcome == b"* OK [CAPABILITY " + caps.PRE_LOGIN_STARTTLS + b"] imapd ready"
    typ, data = imap.login("alice", "wonderland")
    assert typ == "OK" and data == [f"[CAPABILITY {POST_CAPS}] Logged in".encode()]
    typ, data = imap.capability()  # type: ignore[assignment]
    assert typ == "OK" and data[-1] == POST_CAPS.encode()  # imaplib also keeps the code
    assert imap.noop()[0] == "OK"
    assert imap.logout()[0] == "BYE"


def test_imaplib_wrong_password_and_unknown_user(server: RunningServer) -> None:
    for user, password in [("alice", "nope"), ("nobody", "wonderland")]:
        imap = imaplib.IMAP4(server.host, server.port)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(user, password)
        imap.shutdown()


def test_imaplib_authenticate_plain(server: RunningServer) -> None:
    imap = imaplib.IMAP4(server.host, server.port)
    typ, _ = imap.authenticate("PLAIN", lambda challenge: b"\0alice\0wonderland")
    assert typ == "OK" and imap.state == "AUTH"
    imap.logout()


def test_user_added_while_running_can_log_in(server: RunningServer) -> None:
    add_user(server.data_dir, "carol", "c-password")
    imap = imaplib.IMAP4(server.host, server.port)
    assert imap.login("carol", "c-password")[0] == "OK"
    imap.logout()


def test_raw_malformed_and_oversize_input_get_bad_and_connection_survives(server: RunningServer) -> None:
    raw = RawClient.for_server(server)
    assert raw.line().startswith(b"* OK [CAPABILITY IMAP4rev1")
    raw.sock.sendall(b"a1 FROBNICATE now\r\n")
    assert raw.line().startswith(b"a1 BAD ")
    raw.sock.sendall(b"\x00\xff\xfe garbage\r\n")
    assert raw.line().startswith(b"* BAD ")
    raw.sock.sendall(b"a2 NOOP " + b"x" * 70000 + b"\r\n")
    assert raw.line().startswith(b"a2 BAD ")
    raw.sock.sendall(b"a3 NOOP\r\n")
    assert raw.line() == b"a3 OK NOOP completed\r\n"
    raw.close()


def test_raw_pipelined_login_with_literal_and_logout(server: RunningServer) -> None:
    raw = RawClient.for_server(server)
    raw.line()
    plain = base64.b64encode(b"\0alice\0wonderland")
    raw.sock.sendall(
        b"p1 NOOP\r\np2 LOGIN {5+}\r\nalice wonderland\r\np3 LOGOUT\r\n"
        b"p4 AUTHENTICATE PLAIN " + plain + b"\r\n")
    assert raw.until_tagged(b"p3") == [
        b"p1 OK NOOP completed\r\n",
        f"p2 OK [CAPABILITY {POST_CAPS}] Logged in\r\n".encode(),
        b"* BYE IMAP4rev1 Server logging out\r\n",
        b"p3 OK LOGOUT completed\r\n",
    ]
    with pytest.raises(EOFError):
        raw.line()  # closed; p4 never ran


def test_sigterm_says_bye_and_exits_cleanly(tmp_path: Path) -> None:
    with running_server(tmp_path, {}) as server:
        raw = RawClient.for_server(server)
        raw.line()
        assert stop_process(server.process) == 0
        assert raw.line() == b"* BYE Server shutting down\r\n"
        raw.close()
        assert "Traceback" not in server.log()
        assert "no users yet" in server.log()


def test_sigint_stops_too(tmp_path: Path) -> None:
    with running_server(tmp_path, {}) as server:
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(15) == 0


def test_credentials_never_reach_the_log_even_at_debug(tmp_path: Path) -> None:
    secret = "s3cret-Pa55"
    plain = base64.b64encode(f"\0alice\0{secret}".encode()).decode()
    with running_server(tmp_path, {"alice": secret}, [*FAST, "--log-level", "debug"]) as server:
        imap = imaplib.IMAP4(server.host, server.port)
        imap.login("alice", secret)
        imap.logout()
        imap = imaplib.IMAP4(server.host, server.port)
        imap.authenticate("PLAIN", lambda _: f"\0alice\0{secret}".encode())
        imap.logout()
        with pytest.raises(imaplib.IMAP4.error):
            imaplib.IMAP4(server.host, server.port).login("alice", secret + "x")
        stop_process(server.process)
        log = server.log()
    assert "session" in log  # debug lines were written
    assert secret not in log and plain not in log

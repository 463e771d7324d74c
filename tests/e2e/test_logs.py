"""The log of a real ``imapd serve`` (docs/operations.md § Logs): one
exact line per session (IMAP LOGIN/LOGOUT, a dropped connection, POP3,
LMTP) whose byte counts equal what the client's socket sent and received;
no secret anywhere in a debug-level log of sessions that log in with
LOGIN, AUTHENTICATE PLAIN and POP3 PASS; ``--log-file`` writes there and
rotates at ``--log-rotate-size``."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.server import (
    LOOPBACK_ENDPOINT, RunningServer, add_user, imapd_command, running_server, stop_process,
    subprocess_env,
)
from tests.support.waiting import wait_until

PASSWORD = "s3cret-Pa55word"
USERS = {"alice": PASSWORD}
POP3_LINE = re.compile(r"listening on POP3 (\[[^\]]+\]|[^\s:]+):(\d+)")
LMTP_LINE = re.compile(r"listening on LMTP (\[[^\]]+\]|[^\s:]+):(\d+)")
SESSION = re.compile(r"\[imapd\.session#info\] (\S+)<([^>]+)>: Disconnected: (.+) "
                     r"in=(\d+) out=(\d+) secs=(\d+\.\d{3}) tls=(yes|no)$")


class Client:
    """A raw socket that counts every octet it sends and receives."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sent = self.received = 0
        self.buffer = b""
        host, port = self.sock.getsockname()[:2]
        self.name = f"{host}:{port}"  # the server's name for this client

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}: {self.buffer!r}")
            self.received += len(chunk)
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    def until_closed(self) -> None:
        while chunk := self.sock.recv(65536):
            self.received += len(chunk)
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    args = ["--pop3", LOOPBACK_ENDPOINT, "--lmtp", LOOPBACK_ENDPOINT, "--log-level", "debug",
            "--allow-plaintext"]
    with running_server(tmp_path_factory.mktemp("e2e-logs"), USERS, args) as s:
        yield s


def port_of(server: RunningServer, line: re.Pattern[str]) -> int:
    match = wait_until(lambda: line.search(server.log()), line.pattern)
    return int(match.group(2))


def session_line(server: RunningServer, peer: str) -> tuple[str, ...]:
    """The fields of the one session line for the client at ``peer``."""
    def found() -> list[tuple[str, ...]]:
        return [m.groups() for m in map(SESSION.search, server.log().splitlines())
                if m is not None and m.group(2) == peer]

    (fields,) = wait_until(found, f"the session line of {peer}")
    return tuple(fields)


def test_imap_login_logout_line(server: RunningServer) -> None:
    client = Client(server.port)
    client.until(b"\r\n")
    client.send(f"a LOGIN alice {PASSWORD}\r\n".encode())
    client.until(b"a OK")
    client.send(b"b SELECT INBOX\r\nc LOGOUT\r\n")
    client.until_closed()
    who, _, reason, bytes_in, bytes_out, secs, tls = session_line(server, client.name)
    assert (who, reason, tls) == ("imap(alice)", "logout", "no")
    assert (int(bytes_in), int(bytes_out)) == (client.sent, client.received)
    assert 0 <= float(secs) < 60


def test_a_dropped_imap_connection(server: RunningServer) -> None:
    client = Client(server.port)
    client.until(b"\r\n")
    client.send(b"a NOOP\r\nb CAPA")
    client.until(b"a OK")
    client.sock.close()
    who, _, reason, bytes_in, bytes_out, _, _ = session_line(server, client.name)
    assert (who, reason) == ("imap(-)", "disconnected")
    assert (int(bytes_in), int(bytes_out)) == (client.sent, client.received)


def test_authenticate_plain_session(server: RunningServer) -> None:
    client = Client(server.port)
    client.until(b"\r\n")
    token = base64.b64encode(f"\0alice\0{PASSWORD}".encode())
    client.send(b"a AUTHENTICATE PLAIN\r\n")
    client.until(b"+")
    client.send(token + b"\r\nb LOGOUT\r\n")
    client.until_closed()
    who, _, reason, bytes_in, bytes_out, _, _ = session_line(server, client.name)
    assert (who, reason) == ("imap(alice)", "logout")
    assert (int(bytes_in), int(bytes_out)) == (client.sent, client.received)


def test_pop3_session_line(server: RunningServer) -> None:
    client = Client(port_of(server, POP3_LINE))
    client.until(b"\r\n")
    client.send(f"USER alice\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode())
    client.until_closed()
    who, _, reason, bytes_in, bytes_out, _, _ = session_line(server, client.name)
    assert (who, reason) == ("pop3(alice)", "logout")
    assert (int(bytes_in), int(bytes_out)) == (client.sent, client.received)


def test_lmtp_delivery_line(server: RunningServer) -> None:
    client = Client(port_of(server, LMTP_LINE))
    client.until(b"\r\n")
    message = b"Subject: logged\r\n\r\n" + b"x" * 50_000 + b"\r\n"
    client.send(b"LHLO test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\n"
                b"DATA\r\n")
    client.until(b"354 ")
    client.send(message + b".\r\nQUIT\r\n")
    client.until_closed()
    who, _, reason, bytes_in, bytes_out, _, _ = session_line(server, client.name)
    assert (who, reason) == ("lmtp(-)", "logout")
    assert (int(bytes_in), int(bytes_out)) == (client.sent, client.received)
    assert client.sent > 50_000


def test_no_secret_in_a_debug_log(server: RunningServer) -> None:
    """Runs after the sessions above (module order): none of their
    credentials, in any encoding, is anywhere in the whole log."""
    test_imap_login_logout_line(server)
    test_authenticate_plain_session(server)
    test_pop3_session_line(server)
    log = server.log()
    assert "#debug]" in log  # the log really is at debug level
    secrets = [PASSWORD, base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode(),
               base64.b64encode(PASSWORD.encode()).decode()[:12], PASSWORD.encode().hex()]
    for secret in secrets:
        assert secret not in log


def test_log_file_is_written_and_rotated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_user(data, "alice", PASSWORD)
    log_file = tmp_path / "imapd.log"
    process = subprocess.Popen(
        imapd_command("serve", "--data", str(data), "--imap", LOOPBACK_ENDPOINT,
                      "--log-file", str(log_file), "--log-rotate-size", "2000",
                      "--log-rotate-keep", "2", "--allow-plaintext"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=subprocess_env(), cwd=tmp_path)
    try:
        listening = re.compile(r"listening on IMAP [^\s:]+:(\d+)")
        match = wait_until(lambda: log_file.exists() and listening.search(log_file.read_text()),
                           "the listening line in the log file")
        port = int(match.group(1))
        peers = []
        for _ in range(30):  # ~150 octets of session line each: several rotations
            client = Client(port)
            client.until(b"\r\n")
            client.send(b"a LOGOUT\r\n")
            client.until_closed()
            peers.append(client.name)

        def all_logged() -> bool:
            text = "".join(p.read_text() for p in tmp_path.glob("imapd.log*"))
            return all(f"<{peer}>" in text for peer in peers[-3:])

        wait_until(all_logged, "the last sessions' lines")
    finally:
        assert stop_process(process) == 0
    assert process.stdout is not None
    assert process.stdout.read() == b""  # nothing on stdout/stderr: all went to the file
    files = sorted(p.name for p in tmp_path.glob("imapd.log*"))
    assert files == ["imapd.log", "imapd.log.1", "imapd.log.2"]
    assert all((tmp_path / name).stat().st_size <= 2000 for name in files)
    assert f"<{peers[-1]}>" in log_file.read_text() + (tmp_path / "imapd.log.1").read_text()

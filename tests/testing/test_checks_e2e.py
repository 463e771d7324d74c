"""The strict checks end to end: a TestServer on a real socket, its
connections behind the Wiretap feeding a CheckSuite, and clients that are
deliberately wrong (raw sockets, stdlib imaplib) or right."""

from __future__ import annotations

import imaplib
import socket
from typing import Iterator

import pytest

from imapd.testing.checks import CheckSuite, ClientProtocolError
from imapd.testing.server import TestServer

MESSAGE = b"Subject: hello\r\n\r\nbody\r\n"


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer(checks=CheckSuite()) as running:
        running.add_user("alice", "pw")
        yield running


class Raw:
    """A client that writes exactly the bytes it is given."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.buffer = b""
        self.until(b"* OK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, start: bytes) -> bytes:
        """Read up to and including the line beginning with ``start``."""
        while True:
            for line in self.buffer.split(b"\r\n")[:-1]:
                if line.startswith(start):
                    end = self.buffer.index(line) + len(line) + 2
                    seen, self.buffer = self.buffer[:end], self.buffer[end:]
                    return seen
            data = self.sock.recv(65536)
            assert data, f"connection closed waiting for {start!r}: {self.buffer!r}"
            self.buffer += data


def test_literal_sent_without_waiting_fails_with_rfc_section(server: TestServer) -> None:
    raw = Raw(server.address)
    raw.send(b"a1 LOGIN alice pw\r\n")
    raw.until(b"a1 OK")
    raw.send(b"a2 APPEND INBOX {%d}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))
    raw.until(b"a2 ")
    raw.send(b"a3 LOGOUT\r\n")
    raw.until(b"a3 OK")
    assert server.checks is not None
    with pytest.raises(ClientProtocolError) as raised:
        server.checks.raise_if_violated()
    text = str(raised.value)
    assert "literal-without-continuation (RFC 3501 §7.5), connection 1" in text
    assert f"client sent: a2 APPEND INBOX {{{len(MESSAGE)}}}" in text


def test_command_during_idle_on_the_second_connection(server: TestServer) -> None:
    first = Raw(server.address)
    first.send(b"a LOGOUT\r\n")
    first.until(b"a OK")
    raw = Raw(server.address)
    raw.send(b"a1 LOGIN alice pw\r\na2 SELECT INBOX\r\n")
    raw.until(b"a2 OK")
    raw.send(b"a3 IDLE\r\n")
    raw.until(b"+")
    raw.send(b"a4 NOOP\r\n")
    raw.until(b"a3 ")
    assert server.checks is not None
    found = server.checks.violations
    assert [(v.check, v.connection, v.line) for v in found] == [
        ("command-during-idle", 2, b"a4 NOOP")]


def test_imaplib_mixing_up_uids_and_sequence_numbers(server: TestServer) -> None:
    uids = server.seed("alice", "INBOX", *[MESSAGE] * 5)
    client = imaplib.IMAP4(*server.address)
    client.login("alice", "pw")
    client.select("INBOX")
    client.store("1:3", "+FLAGS", "(\\Deleted)")
    client.expunge()
    typ, data = client.uid("SEARCH", "ALL")
    assert typ == "OK" and data[0].split() == [str(u).encode() for u in uids[3:]]
    with pytest.raises(imaplib.IMAP4.error):
        client.fetch(str(uids[4]), "(FLAGS)")    # the bug: a UID where a number belongs
    client.logout()
    assert server.checks is not None
    found = server.checks.violations
    assert [v.check for v in found] == ["uid-as-sequence-number"]
    assert f"send UID FETCH {uids[4]}" in found[0].message


def test_imaplib_used_correctly_triggers_nothing(server: TestServer) -> None:
    server.seed("alice", "INBOX", *[MESSAGE] * 3)
    client = imaplib.IMAP4(*server.address)
    client.login("alice", "pw")
    client.create("&AOk-t&AOk-")
    client.append("INBOX", "(\\Seen)", None, MESSAGE)
    client.select("INBOX")
    client.fetch("1:*", "(UID FLAGS)")
    client.store("2", "+FLAGS", "(\\Deleted)")
    client.expunge()
    client.fetch("3", "(RFC822)")
    client.uid("COPY", "1:*", "&AOk-t&AOk-")
    client.close()
    client.logout()
    assert server.checks is not None
    assert server.checks.violations == [] and server.checks.internal_errors == []
    server.checks.raise_if_violated()

"""End to end over real sockets against ``imapd serve`` processes: IDLE push
from another connection (same process) and from another server process on
the same data directory, COMPRESS=DEFLATE with zlib on a raw socket, and
NAMESPACE / ID / ENABLE / UNSELECT through stdlib imaplib."""

from __future__ import annotations

import imaplib
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

MESSAGE = b"From: Fred <fred@example.org>\r\nSubject: push\r\n\r\nHello.\r\n"
# Pushes are awaited, not timed: a wall-clock bound flakes on a loaded
# machine. When they happen is proven on a task.Clock in test_idle.py (same
# process: with no clock advance at all; another process: at the 0.5 s poll).
PUSH_WAIT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("ext-e2e"), {"alice": "wonderland"}) as s:
        yield s


class Raw(RawClient):
    """A raw socket client that reads lines, optionally through zlib."""

    def __init__(self, server: RunningServer) -> None:
        super().__init__(server.host, server.port)
        self.inflate: Any = None
        self.deflate: Any = None

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)

    def _received(self, chunk: bytes) -> bytes:
        return self.inflate.decompress(chunk) if self.inflate is not None else chunk

    def line(self, timeout: float = 10.0) -> bytes:
        self.sock.settimeout(timeout)
        return super().line()

    def login_and_select(self, mailbox: str = "INBOX") -> None:
        assert self.line().startswith(b"* OK ")
        self.send(b"l LOGIN alice wonderland\r\n")
        assert self.until_tagged(b"l")[-1].startswith(b"l OK ")
        self.send(f"s SELECT {mailbox}\r\n".encode())
        assert self.until_tagged(b"s")[-1].startswith(b"s OK ")

def connect(server: RunningServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login("alice", "wonderland")
    return imap


def ok(result: tuple[str, Sequence[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return list(data)


def test_idle_push_from_another_connection(server: RunningServer) -> None:
    ok(connect(server).create("Push"))
    idler = Raw(server)
    idler.login_and_select("Push")
    idler.send(b"i IDLE\r\n")
    assert idler.line() == b"+ idling\r\n"
    writer = connect(server)
    ok(writer.append("Push", None, None, MESSAGE))
    assert idler.line(timeout=PUSH_WAIT) == b"* 1 EXISTS\r\n"
    assert idler.line() == b"* 1 RECENT\r\n"
    ok(writer.select("Push"))
    ok(writer.store("1", "+FLAGS", "(\\Seen)"))
    assert idler.line(timeout=PUSH_WAIT) == b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"
    ok(writer.store("1", "+FLAGS", "(\\Deleted)"))
    assert idler.line(timeout=PUSH_WAIT) == b"* 1 FETCH (FLAGS (\\Deleted \\Seen \\Recent))\r\n"
    ok(writer.expunge())
    assert idler.line(timeout=PUSH_WAIT) == b"* 1 EXPUNGE\r\n"
    assert idler.line() == b"* 0 RECENT\r\n"  # it was \Recent here (RFC 3501 §7.3.2)
    # DONE with a command pipelined behind it.
    idler.send(b"DONE\r\nn NOOP\r\n")
    assert idler.until_tagged(b"n") == [b"i OK IDLE terminated\r\n", b"n OK NOOP completed\r\n"]
    writer.logout()
    idler.close()


def test_idle_push_from_another_server_process(tmp_path: Path) -> None:
    """Two server processes on one data directory: the change made through
    the second reaches the idler on the first at its poll (0.5 s)."""
    with running_server(tmp_path, {"alice": "wonderland"}) as first:
        with running_server(tmp_path, {}) as second:
            idler = Raw(first)
            idler.login_and_select()
            idler.send(b"i IDLE\r\n")
            assert idler.line() == b"+ idling\r\n"
            writer = connect(second)
            ok(writer.append("INBOX", "(\\Flagged)", None, MESSAGE))
            assert idler.line(timeout=PUSH_WAIT) == b"* 1 EXISTS\r\n"
            assert idler.line() == b"* 1 RECENT\r\n"
            ok(writer.select("INBOX"))
            ok(writer.store("1", "-FLAGS", "(\\Flagged)"))
            assert idler.line(timeout=PUSH_WAIT) == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
            idler.send(b"DONE\r\n")
            assert idler.line() == b"i OK IDLE terminated\r\n"
            writer.logout()
            idler.close()


def test_compress_deflate_on_a_raw_socket(server: RunningServer) -> None:
    client = Raw(server)
    client.login_and_select()
    client.send(b"z COMPRESS DEFLATE\r\n")
    assert client.line() == b"z OK DEFLATE active\r\n"  # sent uncompressed
    assert client.buffer == b""
    client.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    client.inflate = zlib.decompressobj(-15)
    client.send(b"a NOOP\r\nb NAMESPACE\r\n")
    assert client.until_tagged(b"b") == [
        b"a OK NOOP completed\r\n",
        b'* NAMESPACE (("" "/")) NIL NIL\r\n',
        b"b OK NAMESPACE completed\r\n",
    ]
    body = MESSAGE + b"".join(b"Line %d, compressible.\r\n" % n for n in range(3000))
    client.send(b"c APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    assert client.until_tagged(b"c")[-1].startswith(b"c OK")
    client.send(b"d FETCH * BODY.PEEK[TEXT]\r\n")
    lines = client.until_tagged(b"d")
    assert lines[-1] == b"d OK FETCH completed\r\n"
    assert b"".join(lines).count(b"compressible.") == 3000
    client.send(b"e COMPRESS DEFLATE\r\n")
    assert client.line() == b"e NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n"
    client.send(b"f LOGOUT\r\n")
    assert client.until_tagged(b"f")[-1] == b"f OK LOGOUT completed\r\n"
    client.close()


def test_namespace_id_enable_unselect_with_imaplib(server: RunningServer) -> None:
    imap = connect(server)
    assert {"IDLE", "ID", "ENABLE", "NAMESPACE", "UNSELECT", "CHILDREN"} <= set(imap.capabilities)
    after_login = set(ok(imap.capability())[-1].decode().split())
    assert {"IDLE", "ID", "ENABLE", "NAMESPACE", "UNSELECT", "CHILDREN", "COMPRESS=DEFLATE"} <= after_login
    assert ok(imap.namespace()) == [b'(("" "/")) NIL NIL']
    typ, data = imap.xatom("ID", '("name" "imaplib")')
    assert typ == "OK"
    assert imap.untagged_responses.pop("ID") == [b'("name" "imapd")']
    typ, data = imap.xatom("ENABLE", "X-NOT-A-THING")
    assert typ == "OK" and imap.untagged_responses.pop("ENABLED") == [b""]
    ok(imap.select("INBOX"))
    assert ok(imap.unselect()) == [b"UNSELECT completed"]
    assert imap.state == "AUTH"
    imap.logout()

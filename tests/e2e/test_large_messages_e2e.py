"""End to end, over real sockets to the server process: a 20 MB APPEND
uploaded slowly and a 20 MB BODY[] read slowly keep the server's private
memory (``RssAnon`` in ``/proc/PID/status``) far below the message size;
the bytes are exact; spool files are gone afterwards, also when the client
disconnects half-way through the literal (issues 4 and 6)."""

from __future__ import annotations

import os
import re
import socket
import ssl
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server
from tests.support.spool import big_message, spool_handles
from tests.support.waiting import PATIENCE_SECONDS, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MIB = 1024 * 1024
SIZE = 20 * MIB
MESSAGE = big_message(SIZE)
PIECE = 256 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("e2e-large"), {"alice": "wonderland"}) as s:
        yield s


def anon_kib(server: RunningServer) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise KeyError("RssAnon")


class Sampler:
    """The server's largest RssAnon seen while it runs (every 2 ms)."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.base = anon_kib(server)
        self.peak = self.base
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, anon_kib(self.server))
            time.sleep(0.002)

    def growth_mib(self) -> float:
        """Peak growth so far over the level when sampling started."""
        return (max(self.peak, anon_kib(self.server)) - self.base) / 1024

    def stop(self) -> float:
        self._running = False
        self._thread.join()
        return self.growth_mib()


class Raw(RawClient):
    def __init__(self, server: RunningServer, receive_buffer: int | None = None) -> None:
        self.receive_buffer = receive_buffer
        super().__init__(server.host, server.port, timeout=60)
        self.line()

    def _connect(self, host: str, port: int, source: str | None, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.receive_buffer is not None:  # before connecting, so the window is small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.settimeout(timeout)
        sock.connect((host, port))
        return sock

    def _fill(self) -> None:
        chunk = self.sock.recv(self.recv_size)
        if not chunk:
            raise EOFError(self.buffer[-200:])  # not megabytes of message in the report
        self.buffer += chunk

    def tagged(self, tag: bytes) -> bytes:
        while not (line := self.line()).startswith(tag + b" "):
            pass
        return line

    def ok(self, line: bytes) -> None:
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        reply = self.tagged(tag)
        assert reply.startswith(tag + b" OK"), reply

    def read_exactly(self, count: int, slow: bool = False) -> bytes:
        pieces = [self.buffer[:count]]
        got = len(pieces[0])
        self.buffer = self.buffer[count:]
        while got < count:
            chunk = self.sock.recv(min(64 * 1024, count - got))
            if not chunk:
                raise EOFError
            pieces.append(chunk)
            got += len(chunk)
            if slow:
                time.sleep(0.004)
        return b"".join(pieces)

def login(server: RunningServer, receive_buffer: int | None = None) -> Raw:
    raw = Raw(server, receive_buffer)
    raw.ok(b"l LOGIN alice wonderland")
    return raw


def spooled_bytes(server: RunningServer) -> int:
    """Bytes in the server's open spool files (a stat through /proc/PID/fd
    works for the unlinked temporary files too)."""
    prefix = str((server.data_dir / "spool").resolve()) + os.sep
    total = 0
    for entry in Path(f"/proc/{server.process.pid}/fd").iterdir():
        try:
            if os.readlink(entry).startswith(prefix):
                total += os.stat(entry).st_size
        except OSError:
            continue  # closed meanwhile
    return total


def wait_for_no_spool_files(server: RunningServer, timeout: float = PATIENCE_SECONDS) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        handles = spool_handles(server.data_dir / "spool", server.process.pid)
        if not handles or time.monotonic() > deadline:
            return handles
        time.sleep(0.05)


def test_slow_20mb_append_is_spooled_not_held_in_memory(server: RunningServer) -> None:
    raw = login(server)
    raw.ok(b"c CREATE Upload")
    # Two large APPENDs first fill SQLite's page cache up to its fixed cap
    # (32 MiB for the process, shared by all connections); the measured one
    # then shows what one more command costs.
    for tag in (b"w1", b"w2"):
        raw.sock.sendall(tag + b" APPEND Upload {%d+}\r\n" % SIZE + MESSAGE + b"\r\n")
        assert raw.tagged(tag).startswith(tag + b" OK")
    raw.sock.sendall(b"a APPEND Upload {%d}\r\n" % SIZE)
    assert raw.line().startswith(b"+ ")
    time.sleep(0.2)
    sampler = Sampler(server)
    for start in range(0, SIZE - PIECE, PIECE):
        raw.sock.sendall(MESSAGE[start:start + PIECE])
        time.sleep(0.003)
    # Measure once the server has read everything sent: it is in the spool file.
    wait_until(lambda: spooled_bytes(server) == SIZE - PIECE, "the upload never reached the spool file")
    during_upload = sampler.growth_mib()
    raw.sock.sendall(MESSAGE[SIZE - PIECE:] + b"\r\n")
    reply = raw.tagged(b"a")
    whole_command = sampler.stop()
    assert reply.startswith(b"a OK [APPENDUID "), reply
    # Held in memory the literal alone was 20 MiB, and the command peaked
    # near 100 MiB; spooled, the upload costs next to nothing.
    assert during_upload < 4, f"server grew {during_upload:.1f} MiB during the upload"
    assert whole_command < 8, f"server grew {whole_command:.1f} MiB for the APPEND"
    assert wait_for_no_spool_files(server) == []
    raw.ok(b"s EXAMINE Upload")
    raw.sock.sendall(b"f FETCH 3 BODY.PEEK[]\r\n")
    assert raw.line() == b"* 3 FETCH (BODY[] {%d}\r\n" % SIZE
    assert raw.read_exactly(SIZE) == MESSAGE
    assert raw.line() == b")\r\n"
    assert raw.line() == b"f OK FETCH completed\r\n"
    raw.sock.close()


def test_disconnect_mid_literal_leaves_no_spool_file(server: RunningServer) -> None:
    raw = login(server)
    raw.sock.sendall(b"a APPEND INBOX {%d}\r\n" % SIZE)
    assert raw.line().startswith(b"+ ")
    raw.sock.sendall(MESSAGE[:5 * MIB])
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not spool_handles(server.data_dir / "spool", server.process.pid):
        assert time.monotonic() < deadline, "no spool file while uploading"
        time.sleep(0.02)
    raw.sock.close()
    assert wait_for_no_spool_files(server) == []
    # The server is fine and stored nothing.
    check = login(server)
    check.sock.sendall(b"s STATUS INBOX (MESSAGES)\r\n")
    assert check.line() == b"* STATUS INBOX (MESSAGES 0)\r\n"
    check.sock.close()


def test_slow_reader_of_a_20mb_body_keeps_server_memory_bounded(server: RunningServer) -> None:
    writer = login(server)
    writer.ok(b"c CREATE Download")
    writer.sock.sendall(b"a APPEND Download {%d+}\r\n" % SIZE + MESSAGE + b"\r\n")
    assert writer.tagged(b"a").startswith(b"a OK")
    writer.sock.close()
    reader = login(server, receive_buffer=64 * 1024)
    reader.ok(b"s EXAMINE Download")
    time.sleep(0.2)
    sampler = Sampler(server)
    reader.sock.sendall(b"f FETCH 1 BODY.PEEK[]\r\nn NOOP\r\n")
    assert reader.line() == b"* 1 FETCH (BODY[] {%d}\r\n" % SIZE
    body = reader.read_exactly(SIZE, slow=True)
    growth = sampler.stop()
    assert body == MESSAGE
    assert reader.line() == b")\r\n"
    assert reader.line() == b"f OK FETCH completed\r\n"
    assert reader.line() == b"n OK NOOP completed\r\n"
    # Written at once, the body sat in the send buffer (and was read ~2x).
    assert growth < 6, f"server grew {growth:.1f} MiB while a slow client read 20 MiB"
    reader.sock.close()


def _read_until(receive: Callable[[], bytes], end: bytes) -> bytes:
    out = b""
    while not out.endswith(end):
        chunk = receive()
        if not chunk:
            raise EOFError(out[-200:])
        out += chunk
    return out


def _body_of(reply: bytes, message: bytes) -> bytes:
    head = b"BODY[] {%d}\r\n" % len(message)
    start = reply.index(head) + len(head)
    assert reply[start + len(message):start + len(message) + 3] == b")\r\n"
    return reply[start:start + len(message)]


def test_streamed_output_and_spooled_input_under_compress_and_tls(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The push producer works through the COMPRESS=DEFLATE wrapper and
    through TLS (implicit, RFC 8314), in both directions."""
    message = big_message(6 * MIB)
    with running_server(tmp_path_factory.mktemp("e2e-large-layers"), {"alice": "wonderland"},
                        ["--imaps", "ssl:0:interface=127.0.0.1"]) as server:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"listening on IMAPS \S+:(\d+)", server.log())):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        imaps_port = int(found.group(1))
        plain = login(server)
        plain.sock.sendall(b"z COMPRESS DEFLATE\r\n")
        assert plain.line() == b"z OK DEFLATE active\r\n"
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
        inflate = zlib.decompressobj(-15)
        plain.sock.sendall(deflate.compress(
            b"a APPEND INBOX {%d+}\r\n" % len(message) + message +
            b"\r\ns SELECT INBOX\r\nf FETCH 1 BODY.PEEK[]\r\nn NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
        reply = _read_until(lambda: inflate.decompress(plain.sock.recv(1 << 16)),
                            b"n OK NOOP completed\r\n")
        assert _body_of(reply, message) == message and b"f OK FETCH completed\r\n" in reply
        plain.sock.close()

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the server's generated self-signed certificate
        tls = context.wrap_socket(socket.create_connection((server.host, imaps_port), timeout=60))
        tls.sendall(b"l LOGIN alice wonderland\r\n")  # large literals only after login
        assert b"l OK " in _read_until(lambda: tls.recv(1 << 16), b" Logged in\r\n")
        tls.sendall(b"s SELECT INBOX\r\na APPEND INBOX {%d+}\r\n" % len(message) + message +
                    b"\r\nf FETCH 2 BODY.PEEK[]\r\nn NOOP\r\n")
        reply = _read_until(lambda: tls.recv(1 << 16), b"n OK NOOP completed\r\n")
        assert b"a OK [APPENDUID " in reply and _body_of(reply, message) == message
        tls.close()
        assert wait_for_no_spool_files(server) == []

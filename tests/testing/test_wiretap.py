"""The wiretap passes a real server's conversation through unchanged and
records it: real sockets, a real imapd (memory backend), stdlib imaplib
and raw clients."""

from __future__ import annotations

import imaplib
import socket
import ssl
import threading
import zlib
from pathlib import Path
from typing import Any

from imapd.testing import faults
from tests.support.raw import RawClient
from tests.support.reactor_thread import on_reactor, reactor
from tests.testing.tap_support import PASSWORD, USER, tapped


def test_a_session_works_through_the_tap_and_is_recorded(tmp_path: Path) -> None:
    with tapped(tmp_path) as server:
        client = imaplib.IMAP4(*server.address)
        client.login(USER, PASSWORD)
        client.select("INBOX")
        client.append("INBOX", None, None, b"Subject: hi\r\n\r\nbody\r\n")
        typ, data = client.fetch("1", "(BODY[])")
        assert typ == "OK" and b"Subject: hi" in data[0][1]
        client.logout()
        server.wait_closed(1)
        [transcript] = server.transcripts
        assert transcript.protocol == "imap" and transcript.connection == 1
        assert transcript.peer.startswith("127.0.0.1:")
        text = transcript.text([PASSWORD])
        assert text.splitlines()[0].startswith("S: * OK [CAPABILITY IMAP4rev1")
        assert "C: " in text and PASSWORD not in text
        assert "S: Subject: hi" in text
        assert text.splitlines()[-1].startswith("S: ") and " OK " in text.splitlines()[-1]
        client_bytes = b"".join(d for who, _, d in transcript.entries if who == "C")
        assert client_bytes.endswith(b" LOGOUT\r\n")
        times = [t for _, t, _ in transcript.entries]
        assert times == sorted(times)


def test_pipelined_commands_pass_in_order(tmp_path: Path) -> None:
    with tapped(tmp_path) as server:
        client = RawClient(*server.address)
        assert client.line().startswith(b"* OK ")
        client.send(b"a LOGIN alice wonderland\r\nb NOOP\r\nc SELECT INBOX\r\nd LOGOUT\r\n")
        lines = []
        while not lines or not lines[-1].startswith(b"d "):
            lines.append(client.line())
        tags = [line.split(b" ")[0] for line in lines if not line.startswith(b"*")]
        assert tags == [b"a", b"b", b"c", b"d"]


class CompressingClient(RawClient):
    def start_compression(self) -> None:
        self.inflater = zlib.decompressobj(-15)
        self.deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
        self.compressing = True
        # Octets read with the OK are already compressed (RFC 4978 §3).
        self.buffer = self.inflater.decompress(self.buffer)

    def _received(self, chunk: bytes) -> bytes:
        if getattr(self, "compressing", False):
            return self.inflater.decompress(chunk)
        return chunk

    def send(self, data: bytes) -> None:
        if getattr(self, "compressing", False):
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)


def test_after_compress_the_transcript_shows_the_inflated_conversation(tmp_path: Path) -> None:
    with tapped(tmp_path) as server:
        client = CompressingClient(*server.address)
        client.line()
        client.send(b"a LOGIN alice wonderland\r\nb COMPRESS DEFLATE\r\n")
        while not client.line().startswith(b"b "):
            pass
        client.start_compression()
        client.send(b"c SELECT INBOX\r\n")
        while not (line := client.line()).startswith(b"c "):
            pass
        assert line.startswith(b"c OK ")
        client.send(b"d LOGOUT\r\n")
        while not client.line().startswith(b"d "):
            pass
        server.wait_closed(1)
        text = server.transcripts[0].text()
        assert "-- COMPRESS=DEFLATE active" in text
        assert "C: c SELECT INBOX" in text and "S: c OK [READ-WRITE]" in text
        assert "C: d LOGOUT" in text and "S: * BYE" in text


class Recorder:
    """A stand-in for a CheckSuite: what each connection's checker got."""

    def __init__(self) -> None:
        self.calls: dict[int, list[tuple[str, bytes]]] = {}

    def connection(self, protocol: str, number: int) -> Recorder.Checker:
        calls = self.calls.setdefault(number, [])

        class Checker:
            def client_data(self, data: bytes) -> None:
                calls.append(("C", data))

            def server_data(self, data: bytes) -> None:
                calls.append(("S", data))

        return Checker()


def test_checks_get_both_streams_in_their_real_order(tmp_path: Path) -> None:
    checks = Recorder()
    with tapped(tmp_path, [faults.delay(0.2, "NOOP")], checks=checks) as server:
        client = Client(*server.address).login()
        client.send(b"b NOOP\r\n")
        assert client.line() == b"b OK NOOP completed\r\n"
        client.send(b"c LOGOUT\r\n")
        client.until(b"c")
        server.wait_closed(1)
        calls = checks.calls[1]
        assert b"".join(d for who, d in calls if who == "C") == b"a LOGIN alice wonderland\r\nb NOOP\r\nc LOGOUT\r\n"
        lines = [(who, line) for who, d in calls for line in d.split(b"\r\n") if line]
        order = [who + ":" + line.decode()[:6] for who, line in lines if line.startswith((b"b ", b"c ", b"* BYE"))]
        assert order == ["C:b NOOP", "S:b OK N", "C:c LOGO", "S:* BYE ", "S:c OK L"]
        entries = [(who, d) for who, _, d in server.transcripts[0].entries]
        assert b"".join(d for who, d in entries if who == "S") == b"".join(d for who, d in calls if who == "S")


class Client(RawClient):
    def login(self) -> Client:
        assert self.line().startswith(b"* OK ")
        self.send(b"a LOGIN alice wonderland\r\n")
        self.until(b"a")
        return self

    def until(self, tag: bytes) -> list[bytes]:
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return lines


def test_idle_through_a_tap_that_follows_commands(tmp_path: Path) -> None:
    """RFC 2177: the pushed EXISTS and DONE pass the fault machinery."""
    with tapped(tmp_path, [faults.respond("CHECK", "NO", "unused")]) as server:
        client = Client(*server.address).login()
        client.send(b"b SELECT INBOX\r\n")
        client.until(b"b")
        client.send(b"c IDLE\r\n")
        assert client.line().startswith(b"+ ")
        other = imaplib.IMAP4(*server.address, timeout=10)
        other.login(USER, PASSWORD)
        other.append("INBOX", None, None, b"Subject: new\r\n\r\nx\r\n")
        assert client.line() == b"* 1 EXISTS\r\n"
        client.send(b"DONE\r\n")
        assert client.until(b"c")[-1].startswith(b"c OK ")
        client.send(b"d CHECK\r\n")
        assert client.line() == b"d NO unused\r\n"


def test_a_client_that_stops_reading_pauses_the_server_through_the_tap(tmp_path: Path) -> None:
    """The server's producer, registered with the wiretap, is paused when
    the real transport is full: its output does not pile up in the tap."""
    one = b"Subject: s\r\n\r\n" + b"z" * 20000 + b"\r\n"
    with tapped(tmp_path) as server:
        loader = Client(*server.address).login()
        # 8 MB: more than the kernel's buffers on loopback take.
        loader.send(b"".join(b"s%d APPEND INBOX {%d+}\r\n%s\r\n" % (n, len(one), one) for n in range(400)))
        loader.until(b"s399")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(server.address)
        sock.sendall(b"a LOGIN alice wonderland\r\nb SELECT INBOX\r\nc FETCH 1:* (BODY[])\r\n")
        def protocols() -> list[Any]:
            """The slow connection (the last one accepted), once accepted."""
            every = sorted(server.tap_factories["imap"].protocols, key=lambda p: p.number)
            return every[-1:] if len(every) == 2 else []

        stalled = threading.Event()

        def check() -> None:
            if not protocols():  # not accepted yet
                reactor().callLater(0.02, check)
                return
            [proto] = protocols()
            writer = proto.wrappedProtocol._output
            if writer.busy and proto.outbox.producer is not None and proto.outbox.real_paused:
                stalled.set()
            else:
                reactor().callLater(0.02, check)

        reactor().callFromThread(check)
        assert stalled.wait(15), "the server's output was never paused"
        queued = on_reactor(lambda: _queued(protocols()[0]))
        assert queued < 4 * 65536  # 8 MB asked for
        sock.close()


async def _queued(proto: object) -> int:
    return proto.outbox.queued  # type: ignore[attr-defined,no-any-return]


def test_starttls_waits_for_the_delayed_ok_and_the_tap_sees_plain_text(tmp_path: Path) -> None:
    with tapped(tmp_path, [faults.delay(0.3, "STARTTLS")]) as server:
        client = RawClient(*server.address)
        assert b"STARTTLS" in client.line()
        client.send(b"a STARTTLS\r\n")
        assert client.line().startswith(b"a OK ")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.sock = context.wrap_socket(client.sock)
        client.send(b"b LOGIN alice wonderland\r\nc LOGOUT\r\n")
        lines = [client.line() for _ in range(3)]
        assert lines[0].startswith(b"b OK ") and lines[2].startswith(b"c OK ")
        client.sock.close()  # TLS closes with both close_notify alerts
        server.wait_closed(1)
        text = server.transcripts[0].text([PASSWORD])
        assert "-- STARTTLS: TLS started" in text and "C: b LOGIN alice ***" in text


def test_commands_pipelined_compressed_right_after_compress(tmp_path: Path) -> None:
    """RFC 4978 §3: the client's compressed octets start right after the
    CRLF of COMPRESS, possibly in the same segment (here also with the word
    cut between two sends): the transcript reads them inflated."""
    with tapped(tmp_path) as server:
        client = CompressingClient(*server.address)
        client.line()
        client.send(b"a LOGIN alice wonderland\r\n")
        while not client.line().startswith(b"a "):
            pass
        deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
        compressed = deflater.compress(b"c NOOP\r\n") + deflater.flush(zlib.Z_SYNC_FLUSH)
        client.sock.sendall(b"b COMPRE")
        client.sock.sendall(b"SS DEFLATE\r\n" + compressed)
        assert client.line().startswith(b"b OK ")
        client.start_compression()
        assert client.line() == b"c OK NOOP completed\r\n"
        text = server.transcripts[0].text()
        assert "C: b COMPRESS DEFLATE" in text and "C: c NOOP" in text
        assert "S: c OK NOOP completed" in text


def test_a_big_compressed_answer_is_recorded_whole(tmp_path: Path) -> None:
    """One compressed write may inflate to megabytes: the record follows
    (an inflater limited per write would lose the rest of the stream)."""
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 450  # both ways under MAX_KEPT
    with tapped(tmp_path) as server:
        client = CompressingClient(*server.address)
        client.line()
        client.send(b"a LOGIN alice wonderland\r\nb COMPRESS DEFLATE\r\n")
        while not client.line().startswith(b"b "):
            pass
        client.start_compression()
        client.send(b"c APPEND INBOX {%d+}\r\n%s\r\nd SELECT INBOX\r\ne FETCH 1 BODY[]\r\n" % (len(body), body))
        while not client.line().startswith(b"e "):
            pass
        client.send(b"f LOGOUT\r\n")
        while not client.line().startswith(b"f "):
            pass
        server.wait_closed(1)
        transcript = server.transcripts[0]
        server_octets = b"".join(d for who, _, d in transcript.entries if who == "S")
        assert server_octets.count(b"x" * 998) == 450
        assert server_octets.endswith(b"f OK LOGOUT completed\r\n")
        assert "no longer shown" not in transcript.text()

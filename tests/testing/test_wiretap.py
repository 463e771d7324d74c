"""The wiretap passes a real server's conversation through unchanged and
records it: real sockets, a real imapd (memory backend), stdlib imaplib
and raw clients."""

from __future__ import annotations

import imaplib
import zlib
from pathlib import Path

from tests.support.raw import RawClient
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

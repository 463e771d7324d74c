"""COMPRESS=DEFLATE (RFC 4978): transcripts through the in-process server
with an independent zlib peer, and the pieces of ``imapd.net.compress``.

The client side here is plain ``zlib`` with raw DEFLATE (window bits -15),
as RFC 4978 §4 describes, not the server's own classes.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from imapd.imap.commands import catalogue
from imapd.core.config import Config, Limits
from imapd.net.compress import CompressionError, CompressWatch, DeflateTransport, Inflater
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.runtime import InlineRuntime
from imapd.imap.wire.framer import CommandFrame, Framer
from tests.imap.commands.harness import Client, MailServer, message
from tests.support.context import make_users


class ZlibPeer:
    """The client's half of the compressed stream."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def pack(self, data: bytes) -> bytes:
        return self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def unpack(self, data: bytes) -> bytes:
        return self.inflate.decompress(data)


def compressed(client: Client) -> ZlibPeer:
    """Send COMPRESS DEFLATE; check the OK is plain text."""
    assert client.command("z COMPRESS DEFLATE") == f"z OK {catalogue.OK_COMPRESS}\r\n".encode()
    return ZlibPeer()


def test_rfc_4978_exchange_and_second_compress(client: Client) -> None:
    """RFC 4978 §3: the OK is uncompressed; everything after it, both ways,
    is raw DEFLATE; a second COMPRESS is NO [COMPRESSIONACTIVE] (§3 example)."""
    peer = compressed(client)
    raw = client.exchange(peer.pack(b"a NOOP\r\n"))
    assert raw != b"a OK NOOP completed\r\n"
    assert peer.unpack(raw) == b"a OK NOOP completed\r\n"
    assert peer.unpack(client.exchange(peer.pack(b"c COMPRESS DEFLATE\r\n"))) == (
        b"c NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n")
    assert peer.unpack(client.exchange(peer.pack(b"d SELECT INBOX\r\n"))).endswith(
        b"d OK [READ-WRITE] SELECT completed\r\n")


def test_compressed_session_with_literals_idle_and_a_large_fetch(server: MailServer) -> None:
    body = b"".join(b"Line %d of a long and repetitive message body.\r\n" % n for n in range(20_000))
    server.append("INBOX", message(1) + body)
    client = server.connect("alice")
    peer = compressed(client)
    assert peer.unpack(client.exchange(peer.pack(b"a CREATE {4}\r\n"))) == b"+ Ready for literal data\r\n"
    assert peer.unpack(client.exchange(peer.pack(b"Mail\r\n"))) == b"a OK CREATE completed\r\n"
    assert peer.unpack(client.exchange(peer.pack(b"s SELECT INBOX\r\n"))).endswith(
        b"s OK [READ-WRITE] SELECT completed\r\n")
    raw = client.exchange(peer.pack(b"f FETCH 1 BODY.PEEK[]\r\n"))
    plain = peer.unpack(raw)
    assert plain.endswith(b")\r\nf OK FETCH completed\r\n") and body in plain
    assert len(raw) * 10 < len(plain)  # repetitive text compresses well
    assert peer.unpack(client.exchange(peer.pack(b"i IDLE\r\n"))) == b"+ idling\r\n"
    server.append("INBOX", message(2))
    server.clock.advance(0)  # the push is flushed at the end of the reactor turn
    assert peer.unpack(client.read()) == b"* 2 EXISTS\r\n* 2 RECENT\r\n"
    assert peer.unpack(client.exchange(peer.pack(b"DONE\r\n"))) == b"i OK IDLE terminated\r\n"


def test_compressed_bytes_pipelined_behind_compress(client: Client) -> None:
    """RFC 4978 §3: the client's compression starts right after the CRLF of
    COMPRESS; bytes sent in the same packet are compressed data."""
    peer = ZlibPeer()
    out = client.exchange(b"z COMPRESS DEFLATE\r\n" + peer.pack(b"a NOOP\r\nb NOOP\r\n"))
    plain_ok = f"z OK {catalogue.OK_COMPRESS}\r\n".encode()
    assert out.startswith(plain_ok)
    assert peer.unpack(out[len(plain_ok):]) == b"a OK NOOP completed\r\nb OK NOOP completed\r\n"


def test_login_and_compress_pipelined_with_compressed_data(server: MailServer) -> None:
    client = server.connect(None)
    client.read()
    peer = ZlibPeer()
    out = client.exchange(
        b"l LOGIN alice wonderland\r\nz COMPRESS DEFLATE\r\n" + peer.pack(b"n NOOP\r\n"))
    head, _, rest = out.partition(f"z OK {catalogue.OK_COMPRESS}\r\n".encode())
    assert head.startswith(b"l OK [CAPABILITY ")
    assert peer.unpack(rest) == b"n OK NOOP completed\r\n"


def test_split_compress_word_is_still_watched(client: Client) -> None:
    peer = ZlibPeer()
    assert client.exchange(b"z COMPR") == b""
    out = client.exchange(b"ESS DEFLATE\r\n" + peer.pack(b"a NOOP\r\n"))
    plain_ok = f"z OK {catalogue.OK_COMPRESS}\r\n".encode()
    assert out.startswith(plain_ok)
    assert peer.unpack(out[len(plain_ok):]) == b"a OK NOOP completed\r\n"


def test_failed_compress_releases_held_bytes_as_plain_text(client: Client) -> None:
    assert client.exchange(b"z COMPRESS LZ77\r\na NOOP\r\n") == (
        f"z BAD {catalogue.BAD_COMPRESS_ALGORITHM}\r\na OK NOOP completed\r\n".encode())


def test_compress_line_read_by_idle_is_not_a_command(client: Client) -> None:
    """A COMPRESS line sent while idling is IDLE's bad continuation: what
    follows it is plain input, not held as compressed data."""
    assert client.exchange(b"i IDLE\r\n") == b"+ idling\r\n"
    assert client.exchange(b"z COMPRESS DEFLATE\r\na NOOP\r\n") == (
        b"i BAD Expected DONE\r\na OK NOOP completed\r\n")


def test_compress_refused_before_login(server: MailServer) -> None:
    client = server.connect(None)
    client.read()
    assert client.exchange(b"z COMPRESS DEFLATE\r\na NOOP\r\n") == (
        f"z BAD {catalogue.BAD_WRONG_STATE}\r\na OK NOOP completed\r\n".encode())


def test_corrupt_compressed_input_closes_with_bye(client: Client) -> None:
    peer = compressed(client)
    out = client.exchange(b"\xff\xff\xff\xff garbage")
    assert peer.unpack(out) == f"* BYE {catalogue.BYE_BAD_COMPRESSED_DATA}\r\n".encode()
    assert client.closing


def test_logout_flushes_before_closing(client: Client) -> None:
    peer = compressed(client)
    client.send(peer.pack(b"o LOGOUT\r\n"))
    assert client.closing
    assert peer.unpack(client.read()) == (
        f"* BYE {catalogue.BYE_LOGOUT}\r\no OK {catalogue.OK_LOGOUT}\r\n".encode())


def remote_conversation(tmp_path: Path) -> tuple[StringTransport, Any]:
    """A logged-in connection from a remote address without TLS (plaintext
    allowed by the operator): compression is not offered there."""
    users = make_users(tmp_path, alice="wonderland")
    clock = Clock()
    factory = ImapServerFactory(
        Config(data_dir=tmp_path, limits=Limits(), allow_plaintext=True),
        users, None, clock=clock, runtime=InlineRuntime(clock),
    )
    peer = IPv4Address("TCP", "192.0.2.7", 40001)
    transport = StringTransport(peerAddress=peer)  # type: ignore[no-untyped-call]
    protocol = factory.buildProtocol(cast(Any, peer))
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
    protocol.dataReceived(b"l LOGIN alice wonderland\r\n")
    clock.advance(5)
    return transport, protocol


def test_not_offered_on_remote_plaintext_connections(tmp_path: Path) -> None:
    transport, protocol = remote_conversation(tmp_path)
    login = transport.value()  # type: ignore[no-untyped-call]
    assert b"l OK [CAPABILITY " in login and b"COMPRESS" not in login
    transport.clear()  # type: ignore[no-untyped-call]
    protocol.dataReceived(b"z COMPRESS DEFLATE\r\na NOOP\r\n")
    assert transport.value() == (  # type: ignore[no-untyped-call]
        f"z NO {catalogue.NO_COMPRESSION_NOT_ALLOWED}\r\na OK NOOP completed\r\n".encode())


# --- the pieces ------------------------------------------------------------------

def test_inflater_bounds_each_piece() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"\0" * 1_000_000) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(data) < 2000
    pieces = list(Inflater(max_piece=4096).inflate(data))
    assert max(map(len, pieces)) <= 4096
    assert b"".join(pieces) == b"\0" * 1_000_000


def test_inflater_rejects_corrupt_data_and_data_after_the_end() -> None:
    with pytest.raises(CompressionError):
        list(Inflater().inflate(b"\xff\xfe\xfd\xfc"))
    finished = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = finished.compress(b"a NOOP\r\n") + finished.flush(zlib.Z_FINISH)
    with pytest.raises(CompressionError):
        list(Inflater().inflate(data + b"more"))


def test_deflate_transport_flushes_once_per_reactor_turn() -> None:
    clock = Clock()
    inner = StringTransport()  # type: ignore[no-untyped-call]
    wrapper = DeflateTransport(inner, clock)
    for n in range(100):
        wrapper.write(b"* %d FETCH (FLAGS (\\Seen))\r\n" % n)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert clock.getDelayedCalls() == []
    data = inner.value()  # type: ignore[no-untyped-call]
    assert data.endswith(b"\x00\x00\xff\xff")  # one sync flush marker at the end
    assert zlib.decompressobj(-15).decompress(data) == b"".join(
        b"* %d FETCH (FLAGS (\\Seen))\r\n" % n for n in range(100))
    assert wrapper.getPeer() == inner.getPeer()  # type: ignore[no-untyped-call]


def test_compress_watch_stops_right_after_the_command() -> None:
    framer = Framer(Limits())
    watch = CompressWatch()
    events, rest = watch.feed(framer, b"a NOOP\r\nb compress deflate\r\n\x01\x02\n\x03", watching=True)
    assert [e.data for e in events if isinstance(e, CommandFrame)] == [
        b"a NOOP\r\n", b"b compress deflate\r\n"]
    assert rest == b"\x01\x02\n\x03"
    events, rest = watch.feed(Framer(Limits()), b"b COMPRESS DEFLATE\r\n", watching=False)
    assert rest is None and len(events) == 1
    # "COMPRESS" inside an APPEND literal is only a literal.
    events, rest = watch.feed(Framer(Limits()), b"c APPEND x {11+}\r\nc COMPRESS \r\n", watching=True)
    assert rest is None and len(events) == 1

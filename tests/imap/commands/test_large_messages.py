"""Large messages through the in-process server (issues 4 and 6).

APPEND: a literal over ``Limits.literal_spool_threshold`` goes to a spool
file as it arrives; the server's Python memory stays far below the
message size during the upload and the whole command; the message is
stored byte for byte with the same analysis as from bytes; the spool file
is gone when the command ends or the client disconnects mid-literal.

FETCH: a large body is written only as fast as the client reads (the
transport pushes back), the tagged reply and the next command wait for
it, and FETCH of several large messages opens one at a time.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path
from typing import Any, Iterator, cast

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from imapd.core.config import Limits
from imapd.mail.records import MessageBody
from imapd.message import analyze
from imapd.net.imap_connection import ImapServerProtocol
from tests.imap.commands.harness import Client, MailServer
from tests.support.spool import big_message, spool_handles

MIB = 1024 * 1024
PIECE = 64 * 1024


@pytest.fixture
def spool_dir(server: MailServer) -> Path:
    return server.data_dir / "spool"


def upload(client: Client, tag: str, message: bytes, stop_before_last: bool = False) -> bytes:
    """APPEND with a synchronizing literal sent in 64 KiB pieces."""
    out = client.exchange(f"{tag} APPEND INBOX {{{len(message)}}}\r\n".encode())
    assert out == b"+ Ready for literal data\r\n"
    last = len(message) - PIECE if stop_before_last else len(message)
    for start in range(0, last, PIECE):
        client.send(message[start:start + PIECE])
    if stop_before_last:
        return client.read()
    return client.exchange(b"\r\n")


def test_append_is_spooled_stored_byte_exact_and_released(
    server: MailServer, client: Client, spool_dir: Path
) -> None:
    message = big_message(3 * MIB)
    assert upload(client, "a1", message, stop_before_last=True) == b""
    assert len(spool_handles(spool_dir)) == 1  # the file being written
    assert list(spool_dir.iterdir()) == []     # which has no name
    client.send(message[len(message) - PIECE:])
    out = client.exchange(b"\r\n")
    assert out.startswith(b"* 1 EXISTS\r\n") or out.startswith(b"a1 OK")
    assert out.endswith(b"] APPEND completed\r\n") and b"a1 OK [APPENDUID " in out
    ((record, stored),) = server.read_messages("INBOX")
    assert stored == message and record.size == len(message)
    assert record.meta == analyze(message).to_bytes()
    assert spool_handles(spool_dir) == []
    # And FETCH gives it back (streamed), byte for byte.
    client.ok("s SELECT INBOX")
    fetched = client.command("f FETCH 1 BODY.PEEK[]")
    assert fetched == (b"* 1 FETCH (BODY[] {%d}\r\n" % len(message) + message +
                       b")\r\nf OK FETCH completed\r\n")


def test_multiappend_with_several_spooled_messages(
    server: MailServer, client: Client, spool_dir: Path
) -> None:
    first, second = big_message(400 * 1024, b"one"), big_message(700 * 1024, b"two")
    data = (b"m APPEND INBOX (\\Seen) {%d+}\r\n%s {5+}\r\nsmall (\\Flagged) {%d+}\r\n%s\r\n"
            % (len(first), first, len(second), second))
    out = client.exchange(data)
    assert out.endswith(b" APPEND completed\r\n") and out.startswith(b"m OK [APPENDUID "), out
    stored = [data for _, data in server.read_messages("INBOX")]
    assert stored == [first, b"small", second]
    assert spool_handles(spool_dir) == []


def test_disconnect_mid_literal_removes_the_spool_file(client: Client, spool_dir: Path) -> None:
    message = big_message(2 * MIB)
    upload(client, "a", message, stop_before_last=True)
    assert spool_handles(spool_dir)
    client.disconnect()
    assert spool_handles(spool_dir) == []


def commit_waits_a_turn(server: MailServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the backend's append wait one reactor turn before committing, as
    the threaded backend's writer thread does (the inline one never waits)."""
    original = server.backend.append

    async def append(ref: Any, items: Any, claim: bool = False) -> Any:
        await server.runtime.sleep(0)
        return await original(ref, items, claim)

    monkeypatch.setattr(server.backend, "append", append)


def test_queued_and_running_appends_release_spool_files_after_disconnect(
    client: Client, server: MailServer, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipelined APPENDs: the first is running (its commit waits a reactor
    turn, the clock stands still), the others are queued. On
    disconnect the queued ones' files go at once, the running one's when
    its command ends. The third is framed only as far as the piece that
    completed the second: nothing more is framed while a queued command
    holds spool files (imapd.net.pipeline)."""
    commit_waits_a_turn(server, monkeypatch)
    message = big_message(600 * 1024)
    data = b"".join(b"q%d APPEND INBOX {%d+}\r\n%s\r\n" % (n, len(message), message) for n in range(3))
    client.conv.send(data)
    assert len(spool_handles(spool_dir)) == 5  # two maps with their descriptors, one writer
    client.disconnect()
    assert len(spool_handles(spool_dir)) == 2  # the running command's
    server.clock.advance(0)
    assert spool_handles(spool_dir) == []


def test_reading_pauses_while_a_queued_command_holds_spool_files(
    client: Client, server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk is bounded like memory: while a command with spooled literals
    waits behind the running one, the server reads no more from the
    client (TCP back-pressure), and resumes once it runs."""
    commit_waits_a_turn(server, monkeypatch)
    message = big_message(400 * 1024)
    data = b"".join(b"p%d APPEND INBOX {%d+}\r\n%s\r\n" % (n, len(message), message) for n in range(2))
    client.conv.send(data)  # the first runs (waits a reactor turn), the second queues
    assert client.conv.transport.producerState == "paused"
    server.clock.advance(0)  # the first completes, the second starts: nothing queued
    assert client.conv.transport.producerState == "producing"
    server.clock.advance(0)
    out = client.read()
    assert out.count(b" OK [APPENDUID ") == 2, out
    assert [data for _, data in server.read_messages("INBOX")] == [message, message]


def test_append_memory_stays_far_below_the_message_size(
    server: MailServer, client: Client, spool_dir: Path
) -> None:
    """A 20 MB APPEND uploaded in pieces: the server's Python allocations
    (tracemalloc) stay under 2 MiB during the upload and under 6 MiB for the
    whole command (framing, parsing, analysis, store). Held in memory, the
    literal alone would be 20 MiB (and was copied twice more)."""
    message = big_message(20 * MIB)
    line = f"a APPEND INBOX {{{len(message)}}}\r\n".encode()
    tracemalloc.start()
    try:
        assert client.exchange(line) == b"+ Ready for literal data\r\n"
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for start in range(0, len(message) - PIECE, PIECE):
            client.send(message[start:start + PIECE])
        _, upload_peak = tracemalloc.get_traced_memory()
        client.send(message[len(message) - PIECE:])
        out = client.exchange(b"\r\n")
        _, command_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert b"a OK [APPENDUID " in out
    assert upload_peak - base < 2 * MIB, f"upload held {(upload_peak - base) / MIB:.1f} MiB"
    assert command_peak - base < 6 * MIB, f"APPEND held {(command_peak - base) / MIB:.1f} MiB"
    ((_, stored),) = server.read_messages("INBOX")
    assert stored == message
    assert spool_handles(spool_dir) == []


def test_spool_threshold_is_a_limit(tmp_path: Path) -> None:
    """Below the threshold nothing is spooled; above it, always."""
    server = MailServer(tmp_path, limits=dataclasses.replace(Limits(), literal_spool_threshold=100))
    try:
        client = server.connect("alice")
        spool_dir = server.data_dir / "spool"
        small, large = b"Subject: s\r\n\r\n" + b"x" * 80, b"Subject: l\r\n\r\n" + b"y" * 90
        client.conv.send(b"a APPEND INBOX {%d+}\r\n%s" % (len(small), small))
        assert spool_handles(spool_dir) == []
        client.exchange(b"\r\n")
        client.conv.send(b"b APPEND INBOX {%d+}\r\n%s" % (len(large), large[:-1]))
        assert spool_handles(spool_dir)
        client.exchange(large[-1:] + b"\r\n")
        assert [data for _, data in server.read_messages("INBOX")] == [small, large]
        assert spool_handles(spool_dir) == []
    finally:
        server.close()


def test_nothing_is_spooled_before_login(tmp_path: Path) -> None:
    """Even with a tiny threshold, unauthenticated clients create no files."""
    server = MailServer(tmp_path, limits=dataclasses.replace(Limits(), literal_spool_threshold=4))
    try:
        client = server.connect(None)
        spool_dir = server.data_dir / "spool"
        client.conv.send(b"a LOGIN {5+}\r\nalice {10+}\r\nwonder")
        assert spool_handles(spool_dir) == []
        assert client.exchange(b"land\r\n").startswith(b"a OK ")
        client.conv.send(b"b APPEND INBOX {10+}\r\nSubject: ")  # after login: spooled
        assert spool_handles(spool_dir)
    finally:
        server.close()


# --- FETCH: back-pressure ---------------------------------------------------------


class SlowReader(StringTransport):
    """A client that reads only when told: its send buffer holds 64 KiB,
    beyond which a registered streaming producer is paused (as Twisted's
    socket transports do); ``read`` takes what was sent and resumes it."""

    LIMIT = 64 * 1024

    def __init__(self) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", 40002))  # type: ignore[no-untyped-call]
        self.paused = False
        self.peak = 0

    def write(self, data: bytes) -> None:
        super().write(data)  # type: ignore[no-untyped-call]
        unread = len(self.value())  # type: ignore[no-untyped-call]
        self.peak = max(self.peak, unread)
        if self.producer is not None and unread > self.LIMIT and not self.paused:
            self.paused = True
            self.producer.pauseProducing()

    def unregisterProducer(self) -> None:
        super().unregisterProducer()  # type: ignore[no-untyped-call]
        self.paused = False

    def read(self) -> bytes:
        data: bytes = self.value()  # type: ignore[no-untyped-call]
        self.clear()  # type: ignore[no-untyped-call]
        if self.producer is not None and self.paused:
            self.paused = False
            self.producer.resumeProducing()
        return data


def slow_client(server: MailServer) -> tuple[ImapServerProtocol, SlowReader]:
    transport = SlowReader()
    protocol: ImapServerProtocol = server.factory.buildProtocol(cast(Any, transport.getPeer()))  # type: ignore[no-untyped-call]
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
    protocol.dataReceived(b"l LOGIN alice wonderland\r\ns SELECT INBOX\r\n")
    server.clock.advance(0)
    out = transport.read()
    assert b"l OK " in out and b"s OK [READ-WRITE]" in out
    return protocol, transport


def read_until(transport: SlowReader, server: MailServer, end: bytes, rounds: int = 10_000) -> bytes:
    received = b""
    for _ in range(rounds):
        server.clock.advance(0)
        received += transport.read()
        if received.endswith(end):
            return received
    raise AssertionError(f"no {end!r} after {len(received)} octets")


def test_large_body_is_written_as_the_client_reads(server: MailServer) -> None:
    message = big_message(4 * MIB)
    server.append("INBOX", message)
    protocol, transport = slow_client(server)
    protocol.dataReceived(b"f FETCH 1 BODY.PEEK[]\r\nn NOOP\r\n")
    server.clock.advance(0)
    first = transport.read()
    assert first.startswith(b"* 1 FETCH (BODY[] {%d}\r\n" % len(message))
    assert len(first) < 1 * MIB  # not the whole body at once
    assert b"n OK" not in first   # the next command waits
    rest = read_until(transport, server, b"n OK NOOP completed\r\n")
    assert first + rest == (b"* 1 FETCH (BODY[] {%d}\r\n" % len(message) + message +
                            b")\r\nf OK FETCH completed\r\nn OK NOOP completed\r\n")
    assert transport.peak < 1 * MIB


def test_fetch_of_many_large_messages_opens_one_at_a_time(
    server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [big_message(MIB + 1000 * n, b"m%d" % n) for n in range(4)]
    for message in messages:
        server.append("INBOX", message)
    open_now, most_open = [0], [0]
    original = server.backend.open_message

    async def counting_open(selection: Any, uid: int) -> MessageBody | None:
        body = await original(selection, uid)
        assert body is not None
        open_now[0] += 1
        most_open[0] = max(most_open[0], open_now[0])

        closed = [False]

        def close() -> None:
            if not closed[0]:
                closed[0] = True
                open_now[0] -= 1
                body.close()

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.chunks()
            finally:
                close()

        return MessageBody(body.size, chunks, close)

    monkeypatch.setattr(server.backend, "open_message", counting_open)
    protocol, transport = slow_client(server)
    protocol.dataReceived(b"f FETCH 1:4 BODY.PEEK[]\r\n")
    out = read_until(transport, server, b"f OK FETCH completed\r\n")
    expected = b"".join(
        b"* %d FETCH (BODY[] {%d}\r\n%s)\r\n" % (n + 1, len(m), m) for n, m in enumerate(messages)
    )
    assert out == expected + b"f OK FETCH completed\r\n"
    assert most_open[0] == 1 and open_now[0] == 0


def test_disconnect_while_streaming_releases_the_message(
    server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.append("INBOX", big_message(3 * MIB))
    closed: list[bool] = []
    original = server.backend.open_message

    async def tracking_open(selection: Any, uid: int) -> MessageBody | None:
        body = await original(selection, uid)
        assert body is not None

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.chunks()
            finally:
                closed.append(True)

        return MessageBody(body.size, chunks, body.close)

    monkeypatch.setattr(server.backend, "open_message", tracking_open)
    protocol, transport = slow_client(server)
    protocol.dataReceived(b"f FETCH 1 BODY.PEEK[]\r\n")
    server.clock.advance(0)
    assert transport.read() and not closed
    protocol.connectionLost()  # the transport would also stop its producer
    assert closed == [True]


def test_spool_files_go_to_the_data_directory(server: MailServer, client: Client) -> None:
    """Spool files live in DATA/spool (the store's disk), created on demand."""
    spool_dir = server.data_dir / "spool"
    assert not spool_dir.exists()
    upload(client, "a", big_message(300 * 1024), stop_before_last=True)
    assert spool_dir.is_dir() and spool_handles(spool_dir)


def test_append_on_a_full_disk_is_overquota_and_the_connection_goes_on(
    server: MailServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool cannot take the literal (ENOSPC): the user learns the disk
    is full as the store would say it, NO [OVERQUOTA] (RFC 5530 §3), before
    uploading; the next command is served."""
    from imapd.core.spool import SpoolWriter

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SpoolWriter, "__init__", disk_full)
    size = 2 * MIB
    assert client.exchange(f"a1 APPEND INBOX {{{size}}}\r\n".encode()) == (
        b"a1 NO [OVERQUOTA] Cannot store the literal now\r\n")
    assert client.exchange(b"a2 NOOP\r\n") == b"a2 OK NOOP completed\r\n"

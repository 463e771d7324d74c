"""Responses a command sends without waiting are joined into writes of
about ``protocol.WRITE_BATCH`` octets, with the bytes and their order
unchanged (also around a streamed literal and across pipelined commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from imapd.net import imap_connection as protocol
from tests.imap.commands.harness import Client, MailServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    s = MailServer(tmp_path)
    yield s
    s.close()


def counted(client: Client) -> list[int]:
    """Sizes of the transport writes from now on."""
    transport = client.conv.transport
    sizes: list[int] = []
    write = transport.write

    def counting_write(data: bytes) -> None:
        sizes.append(len(data))
        write(data)  # type: ignore[no-untyped-call]

    transport.write = counting_write  # type: ignore[method-assign]
    return sizes


def test_a_large_fetch_is_a_few_large_writes(server: MailServer) -> None:
    count = 3000
    flags = [["\\Seen"] if n % 3 else ["\\Flagged", "$Work"] for n in range(count)]
    server.append_many("INBOX", [b"x\r\n"] * count, flags)
    claimer = server.connect("alice")  # \Recent goes to another session
    claimer.ok("c SELECT INBOX")
    claimer.ok("c LOGOUT")
    client = server.connect("alice")
    client.ok("s EXAMINE INBOX")
    sizes = counted(client)
    out = client.command("f UID FETCH 1:* (UID FLAGS)")
    expected = b"".join(
        b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (n + 1, n + 1, " ".join(flags[n]).encode())
        for n in range(count)
    ) + b"f OK UID FETCH completed\r\n"
    assert out == expected
    assert sum(sizes) == len(expected)
    assert len(sizes) <= len(expected) // protocol.WRITE_BATCH + 2
    assert all(size >= protocol.WRITE_BATCH for size in sizes[:-1])


def test_a_streamed_literal_keeps_its_place(server: MailServer) -> None:
    large = b"Subject: large\r\n\r\n" + b"0123456789abcde\n" * 20_000  # streamed
    messages = [b"Subject: one\r\n\r\n1\r\n", large, b"Subject: three\r\n\r\n3\r\n"]
    server.append_many("INBOX", messages)
    client = server.connect("alice")
    client.ok("s EXAMINE INBOX")
    out = client.command("f FETCH 1:3 (UID BODY.PEEK[])")
    assert out == b"".join(
        b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (n + 1, n + 1, len(m), m)
        for n, m in enumerate(messages)
    ) + b"f OK FETCH completed\r\n"


def test_pipelined_commands_answer_in_order(server: MailServer) -> None:
    server.append_many("INBOX", [b"x\r\n", b"y\r\n"], [["\\Seen"], []])
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    sizes = counted(client)
    out = client.exchange(b"a NOOP\r\nb FETCH 1:2 (FLAGS)\r\nc UID FETCH 2 UID\r\nd NOOP\r\n")
    assert out == (
        b"a OK NOOP completed\r\n"
        b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n* 2 FETCH (FLAGS (\\Recent))\r\n"
        b"b OK FETCH completed\r\n"
        b"* 2 FETCH (UID 2)\r\nc OK UID FETCH completed\r\n"
        b"d OK NOOP completed\r\n"
    )
    assert len(sizes) == 4  # one write per command


def test_a_prompt_is_written_while_the_command_waits(server: MailServer) -> None:
    client = server.connect(None)
    assert client.command("a AUTHENTICATE PLAIN") == b"+ \r\n"
    assert client.command("AGFsaWNlAHdvbmRlcmxhbmQ=").startswith(b"a OK ")

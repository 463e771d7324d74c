"""The load generator against a scripted fake server: a server that
answers BAD or garbage gets errors counted, not throughput credited."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from bench.load import LoadConfig, Target, run_load
from bench.load.client import ImapClient
from bench.load.wire import Malformed

Answer = Callable[[bytes, bytes], bytes]


def good_server(tag: bytes, command: bytes) -> bytes:
    word = command.split(b" ", 1)[0].upper()
    if word == b"LOGIN":
        return tag + b" OK [CAPABILITY IMAP4rev1 LITERAL+] logged in\r\n"
    if word == b"SELECT":
        return b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" + tag + b" OK [READ-WRITE] selected\r\n"
    if word == b"LOGOUT":
        return b"* BYE bye\r\n" + tag + b" OK bye\r\n"
    return tag + b" OK done\r\n"  # NOOP, and the empty mailbox's UID FETCH


def noop_answers_bad(tag: bytes, command: bytes) -> bytes:
    if command.upper() == b"NOOP":
        return tag + b" BAD no such command\r\n"
    return good_server(tag, command)


def noop_answers_garbage(tag: bytes, command: bytes) -> bytes:
    if command.upper() == b"NOOP":
        return b"* 1 FETCH (FLAGS (\\Seen)\r\n" + tag + b" OK done\r\n"
    return good_server(tag, command)


async def serve(answer: Answer) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK fake ready\r\n")
        try:
            while line := await reader.readline():
                tag, _, command = line.rstrip(b"\r\n").partition(b" ")
                writer.write(answer(tag, command))
                await writer.drain()
                if command.upper() == b"LOGOUT":
                    break
        except ConnectionError:
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def run_against(answer: Answer, mode: str = "noop") -> tuple[int, int, list[str]]:
    async def go() -> tuple[int, int, list[str]]:
        server = await serve(answer)
        port = server.sockets[0].getsockname()[1]
        try:
            # The window is wall time: 1 s leaves a loaded machine room for
            # the 20-odd round trips the tests below count (at most 2 x 200).
            result = await run_load(LoadConfig(Target("127.0.0.1", port, "u", "p"), clients=2,
                                               seconds=1.0, mode=mode, timeout=30, max_ops_per_client=200))
        finally:
            server.close()
            await server.wait_closed()
        return result.commands, result.errors, result.error_samples

    return asyncio.run(go())


def test_a_correct_server_has_no_errors() -> None:
    commands, errors, samples = run_against(good_server)
    assert errors == 0, samples
    assert commands > 20


def test_bad_answers_are_counted_as_errors() -> None:
    commands, errors, samples = run_against(noop_answers_bad)
    assert errors > 10
    assert any("BAD" in s for s in samples)


def test_malformed_answers_are_counted_as_errors() -> None:
    _, errors, samples = run_against(noop_answers_garbage)
    assert errors > 10
    assert any("Malformed" in s for s in samples)


def test_client_reads_literals_split_across_packets() -> None:
    async def go() -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"* OK ready\r\n")
            line = await reader.readline()
            tag = line.split(b" ")[0]
            for piece in (b"* 1 FETCH (BODY[] {1", b"1}\r\nhello", b" world)\r\n", tag + b" OK done\r\n"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = await ImapClient.connect("127.0.0.1", server.sockets[0].getsockname()[1])
        reply = await client.command(b"FETCH 1 BODY[]")
        client.abort()
        server.close()
        value = reply.untagged[0].values[0]
        assert isinstance(value, list) and isinstance(value[1], bytes)
        return value[1]

    assert asyncio.run(go()) == b"hello world"


def test_wrong_tag_is_malformed() -> None:
    async def go() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"* OK ready\r\n")
            await reader.readline()
            writer.write(b"zz9 OK not yours\r\n")
            await writer.drain()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = await ImapClient.connect("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            await client.command(b"NOOP")
        except Malformed as exc:
            assert re.search("zz9", str(exc))
        else:
            raise AssertionError("a reply with another tag was accepted")
        finally:
            client.abort()
            server.close()

    asyncio.run(go())

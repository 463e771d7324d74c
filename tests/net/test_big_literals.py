"""A command other than APPEND cannot make the server work on a huge
literal (issue 13: ``CREATE`` with a 50 MB name burnt 12 s of CPU before it
was refused). Over a real socket to the real server: a synchronizing
literal over the small limit is refused instead of ``+`` (RFC 3501 §7.5),
a non-synchronizing one is read and discarded (RFC 7888 §4) at the cost of
reading it, and the connection goes on with the next command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

# Server CPU seconds a refused 20 MB literal may cost (reading it; about
# 0.1 s here). Decoding it as a name took about 4 s.
CPU_BOUND = 1.5
SIZE = 20_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("big-literals")) as running:
        yield running


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat fields 14, 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def logged_in(server: RunningServer) -> RawClient:
    client = RawClient.for_server(server, timeout=60)
    assert client.line().startswith(b"* OK ")
    client.send(b"a LOGIN alice wonderland\r\n")
    assert client.until_tagged(b"a")[-1].startswith(b"a OK ")
    return client


def test_a_huge_synchronizing_name_is_refused_before_it_is_sent(server: RunningServer) -> None:
    client = logged_in(server)
    client.send(b"c CREATE {50000000}\r\n")
    # No "+ Ready": the client never uploads the 50 MB.
    assert client.line() == b"c NO [TOOBIG] Literal too big for this command\r\n"
    client.send(b"n NOOP\r\n")
    assert client.until_tagged(b"n") == [b"n OK NOOP completed\r\n"]
    client.close()


def test_a_huge_nonsync_name_costs_only_its_reading(server: RunningServer) -> None:
    client = logged_in(server)
    before = cpu_seconds(server.process.pid)
    client.send(b"c CREATE {%d+}\r\n" % SIZE + b"n" * SIZE + b"\r\nn NOOP\r\n")
    assert client.until_tagged(b"c") == [b"c NO [TOOBIG] Literal too big for this command\r\n"]
    assert client.until_tagged(b"n") == [b"n OK NOOP completed\r\n"]
    spent = cpu_seconds(server.process.pid) - before
    assert spent < CPU_BOUND, f"refusing a {SIZE}-octet name took {spent:.2f} s of CPU"
    client.send(b"l LIST \"\" INBOX\r\n")
    assert client.until_tagged(b"l")[-1] == b"l OK LIST completed\r\n"
    client.close()


def test_append_still_takes_a_large_message(server: RunningServer) -> None:
    client = logged_in(server)
    message = b"Subject: big\r\n\r\n" + b"x" * 100 + b"\r\n" * 200_000
    client.send(b"p APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    assert client.until_tagged(b"p")[-1].startswith(b"p OK [APPENDUID ")
    client.close()

"""Limits and hostile input over real sockets: everything a client can make
the server hold is bounded (line, literal, command, nesting, pipelining,
connections), slow clients are cut off by per-state timeouts, and the
server stays up for everyone else throughout."""

from __future__ import annotations

import imaplib
import time
from pathlib import Path
from typing import Iterator

import pytest

from imapd.imap.commands import catalogue
from tests.security.helpers import Raw, SecureServer, secure_server

LIMITS = [
    "--max-line", "1000", "--max-literal", "5000", "--max-command", "20000",
    "--max-pipelined", "16", "--preauth-timeout", "1.5", "--max-preauth-duration", "4",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    with secure_server(tmp_path_factory.mktemp("limits"), extra_args=LIMITS, imaps=False) as s:
        yield s


def logged_in(server: SecureServer) -> Raw:
    raw = Raw(server.host, server.port)
    raw.line()
    assert raw.command(b"l", b"LOGIN alice wonderland")[-1].startswith(b"l OK")
    return raw


def still_serving(server: SecureServer) -> bool:
    imap = imaplib.IMAP4(server.host, server.port)
    ok = imap.noop()[0] == "OK"
    imap.logout()
    return ok


def test_overlong_line_is_bad_and_the_connection_survives(server: SecureServer) -> None:
    raw = logged_in(server)
    raw.send(b"a NOOP " + b"x" * 5000 + b"\r\n")
    assert raw.line() == b"a BAD Line too long\r\n"
    assert raw.command(b"b", b"NOOP") == [b"b OK NOOP completed\r\n"]


def test_oversize_literal_is_refused_before_any_upload(server: SecureServer) -> None:
    raw = logged_in(server)
    raw.send(b"a APPEND INBOX {5001}\r\n")
    assert raw.line() == b"a NO [TOOBIG] Literal too big\r\n"  # and no "+": nothing is sent
    raw.send(b"b APPEND INBOX {10}\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send(b"Subject: x\r\nb2 NOOP\r\n")
    lines = raw.until_tagged(b"b2")
    assert lines[-1] == b"b2 OK NOOP completed\r\n"


def test_huge_non_synchronizing_literal_closes_the_connection(server: SecureServer) -> None:
    raw = logged_in(server)
    raw.send(b"a APPEND INBOX {99999999999+}\r\n")
    assert raw.line() == b"a NO [TOOBIG] Literal too big to skip\r\n"
    assert raw.line() == b"* BYE " + catalogue.BYE_FATAL_FRAME.encode() + b"\r\n"
    assert raw.closed_by_server()
    assert still_serving(server)


def test_deep_nesting_is_bad(server: SecureServer) -> None:
    raw = logged_in(server)
    raw.send(b"a SEARCH " + b"(" * 200 + b"ALL" + b")" * 200 + b"\r\n")
    assert raw.line().startswith(b"a BAD")
    assert raw.command(b"b", b"NOOP") == [b"b OK NOOP completed\r\n"]


def test_a_pipelined_flood_is_answered_in_order_with_back_pressure(server: SecureServer) -> None:
    raw = logged_in(server)
    count = 2000  # far more than --max-pipelined 16: the server pauses reading
    raw.send(b"".join(b"n%d NOOP\r\n" % i for i in range(count)))
    for i in range(count):
        assert raw.line() == b"n%d OK NOOP completed\r\n" % i


def test_a_client_trickling_bytes_before_login_is_cut_off(server: SecureServer) -> None:
    """A byte every 0.25 s never completes a command: the 1.5 s idle timer
    cuts the connection. Which timer did it is told by the BYE text (the 4 s
    login deadline says something else), not by a wall-clock bound."""
    started = time.monotonic()  # before connecting: the server's timers start later
    raw = Raw(server.host, server.port)
    raw.line()
    trickle = b"a LOGIN alice wonderland INBOX " * 20  # far longer than it takes
    for byte in trickle:
        try:
            raw.send(bytes([byte]))
        except OSError:
            break
        if raw.closed_by_server(timeout=0.25):
            break
    assert raw.closed_by_server(timeout=30)
    assert b"* BYE " + catalogue.BYE_AUTOLOGOUT.encode() in raw.buffer
    assert time.monotonic() - started >= 1.5  # a timer never fires early


def test_busy_unauthenticated_client_hits_the_login_deadline(server: SecureServer) -> None:
    """A NOOP every 0.3 s keeps the 1.5 s idle timer happy, but not the
    4 s deadline for logging in. The BYE text tells which timer fired; the
    NOOPs go on until the server closes (no wall-clock upper bound)."""
    started = time.monotonic()  # before connecting: the deadline starts later
    raw = Raw(server.host, server.port)
    raw.line()
    seen: list[bytes] = []
    try:
        for _ in range(200):  # 60 s of NOOPs: only a missing deadline gets here
            raw.send(b"a NOOP\r\n")
            seen.append(raw.line())  # the BYE, then EOF ends the loop
            time.sleep(0.3)  # pacing, well inside the idle timer
    except (EOFError, OSError):
        pass
    assert seen[-1] == b"* BYE " + catalogue.BYE_LOGIN_TOO_SLOW.encode() + b"\r\n", seen[-3:]
    assert time.monotonic() - started >= 4.0  # a timer never fires early


def test_connection_limit_of_the_process(tmp_path: Path) -> None:
    with secure_server(tmp_path, extra_args=["--max-connections", "3"], imaps=False) as server:
        held = [Raw(server.host, server.port) for _ in range(3)]
        for raw in held:
            assert raw.line().startswith(b"* OK")
        extra = Raw(server.host, server.port, source="127.0.0.9")
        assert extra.line() == b"* BYE " + catalogue.BYE_TOO_MANY_CONNECTIONS.encode() + b"\r\n"
        for raw in held:
            raw.close()


def test_literals_before_login_are_small(tmp_path: Path) -> None:
    """An unauthenticated client cannot make the server hold a big literal;
    after login the full --max-literal applies."""
    with secure_server(tmp_path, extra_args=["--max-preauth-literal", "100"], imaps=False) as server:
        raw = Raw(server.host, server.port)
        raw.line()
        raw.send(b"a LOGIN alice {101}\r\n")
        assert raw.line() == b"a NO [TOOBIG] Literal too big\r\n"
        raw.send(b"b LOGIN alice {10}\r\n")
        assert raw.line().startswith(b"+ ")
        raw.send(b"wonderland\r\n")
        assert raw.line().startswith(b"b OK")
        raw.send(b"c APPEND INBOX {1000}\r\n")
        assert raw.line().startswith(b"+ ")
        raw.send(b"Subject: x\r\n\r\n" + b"y" * 986 + b"\r\n")
        assert raw.until_tagged(b"c")[-1].startswith(b"c OK")

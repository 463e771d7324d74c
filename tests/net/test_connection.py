"""``LineConnection`` (imapd/net/connection.py) without IMAP: a toy
line protocol ("ECHO x", "READ", "STARTTLS", "QUIT") built on it the way
POP3 or LMTP will be, on a string transport and a ``task.Clock``. It
checks what the machinery promises any protocol: pipelined commands
answered one at a time and in order (RFC 3501 §5.5, RFC 2920 §3), the
continuation read, the STARTTLS hold (RFC 2595 §3.1: input after it is
dropped when TLS starts), per-state timeouts and the login deadline."""

from __future__ import annotations

from typing import Any, Coroutine

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs

from imapd.core.config import Limits
from imapd.imap.wire.framer import CommandFrame, FrameError, FrameEvent, Framer
from imapd.net.connection import Goodbye, LineConnection

LIMITS = Limits(preauth_timeout=60.0, auth_timeout=1800.0, max_preauth_duration=300.0)


class TlsTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.tls_started_with: object = None

    def written(self) -> bytes:
        return self.value()  # type: ignore[no-untyped-call,no-any-return]

    def startTLS(self, context: object) -> None:
        self.tls_started_with = context


class Toy(LineConnection):
    """``ECHO x`` -> ``+x``; ``SLOW x`` answers when ``release`` fires;
    ``READ`` reads one continuation line; ``LOGIN``; ``STARTTLS``; ``QUIT``."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock, LIMITS, Framer(LIMITS), tls="tls-context")
        self.logged_in = False
        self.byes: list[Goodbye] = []
        self.release: Deferred[None] | None = None

    @property
    def authenticated(self) -> bool:
        return self.logged_in

    def encode(self, response: Any) -> bytes:
        return str(response).encode() + b"\r\n"

    def handle_events(self, events: list[FrameEvent]) -> bool:
        for index, event in enumerate(events):
            if isinstance(event, CommandFrame) or isinstance(event, FrameError):
                self.enqueue(event)
                if (isinstance(event, CommandFrame) and not self.reading_continuation
                        and event.data.strip() == b"STARTTLS"):
                    self.hold_after(event, events[index + 1:])
                    return True
        return True

    def run_frame(self, frame: CommandFrame) -> Coroutine[Any, Any, None]:
        return self._run(frame.data.strip().decode())

    async def _run(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "SLOW":
            self.release = Deferred()
            await self.release
        if verb == "READ":
            arg = (await self.read_continuation("? more")).decode()
        if verb == "LOGIN":
            self.logged_in = True
        if verb == "STARTTLS":
            self.start_tls()
        self._running = False
        self.send(f"+{arg}" if arg else f"+{verb}")
        self.command_finished(logout=verb == "QUIT", too_many_bad=False)

    def answer_frame_error(self, error: FrameError) -> bool:
        self.send(f"-{error.reason}")
        return False

    def say_bye(self, reason: Goodbye) -> None:
        self.byes.append(reason)
        self.send(f"-bye {reason.value}")
        self.close()


def connect() -> tuple[Toy, TlsTransport, Clock]:
    clock = Clock()
    toy = Toy(clock)
    transport = TlsTransport()
    toy.makeConnection(transport)  # type: ignore[no-untyped-call]
    toy.start_timers()
    return toy, transport, clock


def test_pipelined_commands_run_one_at_a_time_in_order() -> None:
    toy, transport, _ = connect()
    toy.dataReceived(b"ECHO a\r\nSLOW b\r\nECHO c\r\n")
    assert transport.written() == b"+a\r\n"  # c waits behind the running SLOW
    assert toy.release is not None
    toy.release.callback(None)
    assert transport.written() == b"+a\r\n+b\r\n+c\r\n"


def test_a_running_command_reads_the_next_line_as_an_answer() -> None:
    toy, transport, _ = connect()
    toy.dataReceived(b"READ\r\n")
    toy.dataReceived(b"ECHO not-a-command\r\nECHO after\r\n")
    assert transport.written() == b"? more\r\n+ECHO not-a-command\r\n+after\r\n"


def test_input_after_starttls_is_dropped_when_tls_starts() -> None:
    toy, transport, _ = connect()
    toy.dataReceived(b"STARTTLS\r\nECHO injected\r\n")
    assert transport.written() == b"+STARTTLS\r\n"
    assert transport.tls_started_with == "tls-context"
    toy.dataReceived(b"ECHO after\r\n")
    assert transport.written() == b"+STARTTLS\r\n+after\r\n"


def test_timeouts_follow_the_state_and_the_login_deadline_holds() -> None:
    toy, transport, clock = connect()
    clock.advance(59)
    toy.dataReceived(b"ECHO keepalive\r\n")  # resets the short timer
    clock.advance(59)
    assert toy.byes == []
    clock.advance(1)
    assert toy.byes == [Goodbye.AUTOLOGOUT] and transport.disconnecting

    toy, transport, clock = connect()
    for _ in range(6):  # busy, never logged in: the deadline still ends it
        clock.advance(50)
        toy.dataReceived(b"ECHO busy\r\n")
    assert toy.byes == [Goodbye.LOGIN_TOO_SLOW]

    toy, transport, clock = connect()
    toy.dataReceived(b"LOGIN\r\n")
    clock.advance(1799)
    assert toy.byes == []
    clock.advance(1)
    assert toy.byes == [Goodbye.AUTOLOGOUT]


def test_quit_closes_after_the_reply() -> None:
    toy, transport, _ = connect()
    toy.dataReceived(b"QUIT\r\nECHO never\r\n")
    assert transport.written() == b"+QUIT\r\n" and transport.disconnecting


def test_spawned_work_sends_in_order_and_its_errors_do_not_escape() -> None:
    toy, transport, _ = connect()
    gate: Deferred[None] = Deferred()

    async def push() -> None:
        await gate
        toy.send("* pushed")

    async def broken() -> None:
        raise RuntimeError("a bug in background work")

    done = toy.spawn(push())
    toy.dataReceived(b"ECHO first\r\n")
    gate.callback(None)
    assert transport.written() == b"+first\r\n* pushed\r\n"
    results: list[object] = []
    with capturedLogs() as events:
        toy.spawn(broken()).addBoth(results.append)
    assert results == [None] and done.called
    assert [e["log_failure"].type for e in events if "log_failure" in e] == [RuntimeError]

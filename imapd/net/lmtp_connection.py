"""LMTP over Twisted (RFC 2033): the listener's factory and one connection
driving an I/O-free ``imapd.lmtp.session.LmtpSession``.

Not built on ``LineConnection``: that framer understands IMAP literals
(``{n}`` at a line's end), which are ordinary text inside an LMTP DATA
phase. Here input is split on LF only; the session sees each line with
its line end, except while it reads a BDAT chunk (RFC 3030): then the
next ``session.octets_wanted`` octets go to it raw, whatever they hold.
So input is framed lazily, one item at a time, when the session is ready
for it: a line framed ahead of a BDAT command could be chunk octets.
Pipelining (RFC 2920, advertised by LHLO): input is buffered and answered
strictly in order; reading pauses while the buffer is large (TCP
back-pressure). Bounded per connection: the line length (``max_line``, an
overlong line is dropped and answered 500 5.5.2), the buffer, the message
size (the session), and idle time (421 4.4.2).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from imapd.accounts.store import UserStore
from imapd.lmtp.replies import Reply
from imapd.lmtp.session import LmtpSession, LmtpSettings
from imapd.mail.service import MailService
from imapd.net import accounting
from imapd.net.transport import Transport
from imapd.net.peer import format_peer
from imapd.net.runtime import ReactorRuntime

log = Logger(namespace="imapd.lmtp")

# Buffered input octets (beyond one longest line) past which reading
# pauses; it resumes once the session has taken what it can.
BUFFER_HIGH = 1024 * 1024


class LmtpFactory(Factory):
    """Shared by every ``--lmtp`` endpoint. ``max_line``: octets of one
    input line (RFC 5321 §4.5.3.1.6 asks for at least 1000); ``idle``:
    seconds without input before 421; ``max_connections`` at once."""

    def __init__(self, mail: MailService, users: UserStore, settings: LmtpSettings,
                 reactor: Any, *, max_line: int = 64 * 1024, idle: float = 300.0,
                 max_connections: int = 256) -> None:
        self.mail = mail
        self.users = users
        self.settings = settings
        self.reactor = reactor
        self.runtime = ReactorRuntime(reactor)
        self.max_line = max_line
        self.idle = idle
        self.max_connections = max_connections
        self.connections: set[LmtpConnection] = set()
        self.noisy = False

    def buildProtocol(self, addr: Any) -> LmtpConnection:
        return LmtpConnection(self)

    def exists(self, name: str) -> Deferred[bool]:
        """Ask the user store in a thread: the file store may re-read its
        file, the PostgreSQL one queries."""
        return self.runtime.in_thread(self.users.exists, name)

    def shutdown_connections(self) -> None:
        """Server stopping (``imapd.net.service.Server``): 421 to each
        client (RFC 5321 §3.8) and close; a message being read is dropped
        unacknowledged, so the MTA retries it."""
        for connection in list(self.connections):
            connection.account.note(accounting.SHUTDOWN)
            connection.goodbye(Reply(421, "4.3.2", "Service shutting down"))


class LmtpConnection(Protocol):
    """See the module docstring."""

    def __init__(self, factory: LmtpFactory) -> None:
        self.factory = factory
        self.session: LmtpSession | None = None
        self._buffer = bytearray()
        self._discarding = False
        self._running = False
        self._paused = False
        self._done = False
        self._timer: Any = None
        self.account = accounting.SessionAccount("lmtp")  # bytes, reason for the close

    def _transport(self) -> Transport:
        return cast(Transport, self.transport)

    def connectionMade(self) -> None:
        factory = self.factory
        peer = format_peer(self._transport().getPeer())
        self.account.open(peer, factory.reactor.seconds(), self.transport)
        self.opened_at = self.account.opened_at
        if len(factory.connections) >= factory.max_connections:
            self.account.note(accounting.REFUSED)
            self.goodbye(Reply(421, "4.3.2", "Too many connections"))
            return
        factory.connections.add(self)
        self.session = LmtpSession(factory.mail, factory.exists, factory.settings,
                                   peer=peer, runtime=factory.runtime)
        self._write([self.session.greeting()])
        self._arm()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._done = True
        self._buffer.clear()
        self.account.close(None, self.factory.reactor.seconds(), False, reason)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.factory.connections.discard(self)
        if self.session is not None:
            self.session.abort()

    def dataReceived(self, data: bytes) -> None:
        self.account.bytes_in += len(data)
        if self._done or self.session is None:
            return
        self._arm()
        self._buffer += data
        if len(self._buffer) > BUFFER_HIGH + self.factory.max_line and not self._paused:
            self._paused = True
            self._transport().pauseProducing()
        self._kick()

    def _kick(self) -> None:
        if self._running or not self._buffer or self._done:
            return
        self._running = True
        Deferred.fromCoroutine(self._run()).addErrback(self._crashed)

    async def _run(self) -> None:
        """Answer buffered input in order (RFC 2920 §3.1) until what is
        left is not yet a whole line; then resume reading."""
        session = self.session
        assert session is not None
        try:
            while not self._done:
                replies = await self._next(session)
                if replies is None or self._done:
                    break
                self._write(replies)
                if session.closed:
                    self.account.note(accounting.LOGOUT)
                    self._finish()
                    return
            if self._paused and not self._done:
                self._paused = False
                self._transport().resumeProducing()
        finally:
            self._running = False

    async def _next(self, session: LmtpSession) -> list[Reply] | None:
        """Frame and answer one item of input: chunk octets, a line, or
        an overlong line; None when the buffer holds no whole item."""
        buffer = self._buffer
        wanted = session.octets_wanted
        if wanted:
            if not buffer:
                return None
            data = bytes(buffer[:wanted])
            del buffer[:len(data)]
            return await session.feed_octets(data)
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) <= self.factory.max_line:
                return None
            buffer.clear()  # RFC 5321 §4.5.3.1.6: no line end in sight
            if self._discarding:
                return []
            self._discarding = True
            return session.line_too_long()
        if self._discarding:  # the tail of a dropped line
            self._discarding = False
            del buffer[:end + 1]
            return []
        line = bytes(buffer[:end + 1])
        del buffer[:end + 1]
        if len(line) > self.factory.max_line:
            return session.line_too_long()
        return await session.feed(line)

    def _write(self, replies: list[Reply]) -> None:
        if replies and not self._done:
            self._transport().write(b"".join(r.encode() for r in replies))

    def _finish(self) -> None:
        self._done = True
        self._buffer.clear()
        self._transport().loseConnection()

    def goodbye(self, reply: Reply) -> None:
        """Say ``reply`` and close."""
        self._write([reply])
        self._finish()

    def _arm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.factory.idle)
        else:
            self._timer = self.factory.reactor.callLater(self.factory.idle, self._timed_out)

    def _timed_out(self) -> None:
        if self._running:  # a delivery in progress is not idleness
            self._arm()
            return
        self.account.note(accounting.IDLE_TIMEOUT)
        self.goodbye(Reply(421, "4.4.2", "Idle timeout, closing connection"))

    def _crashed(self, failure: Failure) -> None:
        log.failure("LMTP session failed", failure)
        self.account.note(accounting.INTERNAL_ERROR)
        self.goodbye(Reply(451, "4.3.0", "Internal error"))

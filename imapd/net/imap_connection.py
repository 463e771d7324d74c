"""One IMAP connection: the IMAP side of ``imapd.net.connection``.

``LineConnection`` owns the machinery (pipelining queue, fairness slices,
output batching and back-pressure, timeouts, the STARTTLS and COMPRESS
holds, the continuation exchange); this subclass says what IMAP means by
it (RFC 3501 §2.2, §5.5): frames come from the IMAP framer
(``imapd.imap.wire.framer``) and are parsed just before they run, each
command goes to the dispatcher and its tagged reply is written, the
greeting carries the capabilities, the server says goodbye with ``* BYE``
(§7.1.5), and a literal waits for ``+`` (§7.5). It also offers handlers
their connection (``ConnectionHooks``: STARTTLS, COMPRESS, penalties,
per-user limits, channel bindings).

Large literals over ``Limits.literal_spool_threshold`` are spooled to files
by the framer (``imapd.core.spool``; a frame's spool files are closed when
its command ends or the connection drops).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Coroutine, Iterator

from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger

from imapd.accounts.penalty import LoginGuard
from imapd.core import telemetry
from imapd.core.errors import ImapError
from imapd.imap import capabilities
from imapd.imap.commands import catalogue
from imapd.imap.commands.context import CommandContext, ConnectionClosed
from imapd.imap.session.state import Session, State
from imapd.imap.wire.commands import Command, CommandSyntaxError
from imapd.imap.wire.encode import encode_response_data
from imapd.imap.wire.framer import (
    OVERQUOTA, UNAVAILABLE, CommandFrame, FrameError, FrameEvent, Framer, NeedContinuation,
)
from imapd.imap.wire.parse import parse_command
from imapd.imap.wire.responses import (
    Continuation, Response, ResponseCode, Status, Tagged, Untagged,
)
from imapd.imap.wire.values import Atom
from imapd.net import accounting, tls
from imapd.net.connection import WRITE_BATCH, Goodbye, LineConnection
from imapd.net.transport import Transport
from imapd.net.peer import format_peer, is_local, peer_host, preauth_limits, set_no_delay

if TYPE_CHECKING:
    from imapd.net.imap_factory import ImapServerFactory

__all__ = ["ImapServerProtocol", "Transport", "WRITE_BATCH"]

log = Logger(namespace="imapd.protocol")

# A complete STARTTLS command frame (RFC 3501 §6.2.1; tags never hold spaces).
_STARTTLS_FRAME = re.compile(rb"\A[^ ]+ STARTTLS\r?\n\Z", re.IGNORECASE)
# Framing errors answered NO (the command was fine; the server cannot take it).
_NO_CODES = frozenset({catalogue.CODE_TOOBIG, UNAVAILABLE, OVERQUOTA})
# How IMAP words each goodbye (RFC 3501 §7.1.5).
_BYE = {
    Goodbye.FLOOD: catalogue.BYE_FATAL_FRAME,
    Goodbye.TOO_MANY_BAD: catalogue.BYE_TOO_MANY_BAD,
    Goodbye.BAD_COMPRESSED: catalogue.BYE_BAD_COMPRESSED_DATA,
    Goodbye.AUTOLOGOUT: catalogue.BYE_AUTOLOGOUT,
    Goodbye.LOGIN_TOO_SLOW: catalogue.BYE_LOGIN_TOO_SLOW,
}


class ImapServerProtocol(LineConnection):
    """The server side of one IMAP connection."""

    closed_error = ConnectionClosed

    def __init__(self, factory: ImapServerFactory) -> None:
        limits = factory.config.limits
        # Before login, literals are small (a LOGIN password needs little):
        # unauthenticated clients cannot make the server hold 64 MiB each.
        # After login, large ones are spooled to DATA/spool (imapd.core.spool).
        framer = Framer(preauth_limits(limits), spool_dir=factory.config.data_dir / "spool")
        super().__init__(factory.clock, limits, framer, factory.tls)
        self.server = factory
        self._full_limits = False
        self.session = Session(peer="?")
        self.ctx: CommandContext | None = None

    # --- connection lifecycle ------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        address = self._transport().getPeer()
        self.session = Session(
            peer=format_peer(address),
            secure=ISSLTransport.providedBy(self.transport),
            local=is_local(address) and self.server.config.loopback_is_local,
            peer_host=peer_host(address),
        )
        self.label = f"session {self.session.session_id} ({self.session.peer})"
        self.account.open(self.session.peer, self.clock.seconds(), self.transport)
        self.opened_at = self.account.opened_at
        self.ctx = self.server.make_context(
            self.session, self.send, self.read_continuation, connection=self)
        self.ctx.output_waiter = self._output.when_idle
        self.ctx.pacer = self.pace  # long commands yield (LineConnection.pace)
        self.ctx.spawn = self.spawn  # IDLE's pushes run as this connection's work
        refusal = self.server.connection_opened(self)
        if refusal is not None:
            log.info("session {id} from {peer} refused: {why}", id=self.session.session_id,
                     peer=self.session.peer, why=refusal)
            self.account.note(accounting.REFUSED)
            self._bye(refusal)
            return
        log.debug("session {id} connected from {peer}", id=self.session.session_id,
                  peer=self.session.peer)
        caps = capabilities.advertised(self.session, self.server.features)
        code = ResponseCode(catalogue.CODE_CAPABILITY, tuple(Atom(c) for c in caps))
        self.send(Untagged(Status.OK, catalogue.GREETING, code))
        self.start_timers()

    def connection_ended(self) -> None:
        self.account.close(self.session.user, self.clock.seconds(), self.session.secure)
        self.session.deselect()
        self.session.state = State.LOGOUT
        self.server.connection_closed(self)
        # The context holds this object's methods (send, pace...): without
        # it the protocol, its session and buffers are freed by reference
        # counting at once, not at the next full collection (issue 13). A
        # handler still running keeps its own reference and ends on
        # ``ConnectionClosed`` (``pace``, ``read_continuation``).
        self.ctx = None
        log.debug("session {id} closed", id=self.session.session_id)

    def shutdown(self) -> None:
        """Server shutdown: say BYE (RFC 3501 §7.1.5) and close."""
        if not self._closing:
            self.account.note(accounting.SHUTDOWN)
            self.send(Untagged(Status.BYE, catalogue.BYE_SHUTDOWN))
            self.close()

    @property
    def authenticated(self) -> bool:
        return self.session.authenticated

    def encode(self, response: Response) -> bytes | Iterator[bytes]:
        return encode_response_data(response)

    def say_bye(self, reason: Goodbye) -> None:
        self.account.note(accounting.goodbye_reason(reason.value))
        self._bye(_BYE[reason])

    def _bye(self, text: str) -> None:
        self.send(Untagged(Status.BYE, text))
        self.close()

    def continuation_error(self, error: FrameError) -> Exception:
        return ImapError.bad(error.reason)

    def tls_started(self) -> None:
        self.session.secure = True

    def may_compress(self) -> bool:
        """Whether a COMPRESS command could still succeed here (also before
        login: LOGIN and COMPRESS may be pipelined)."""
        return not self.compression_active and (self.session.secure or self.session.local)

    # --- input -----------------------------------------------------------------

    def handle_events(self, events: list[FrameEvent]) -> bool:
        """Act on framer events in order; False if the connection is closing.
        After a STARTTLS frame the rest is held (``hold_after``): not even a
        literal's ``+`` may be sent for what follows STARTTLS."""
        for index, event in enumerate(events):
            if isinstance(event, NeedContinuation):
                self.send(Continuation(catalogue.CONTINUE_LITERAL))
            elif isinstance(event, FrameError) and event.fatal:
                self._fatal_frame_error(event)
                return False
            else:
                self._arm_timer()
                starttls = (
                    isinstance(event, CommandFrame) and not self.reading_continuation
                    and _STARTTLS_FRAME.match(event.data) is not None
                )
                self.enqueue(event)
                if starttls:
                    assert isinstance(event, CommandFrame)
                    self.hold_after(event, events[index + 1:])
                    return True
        return True

    def _fatal_frame_error(self, error: FrameError) -> None:
        self.answer_frame_error(error)
        self.say_bye(Goodbye.FLOOD)

    def answer_frame_error(self, error: FrameError) -> bool:
        """Answer a framing error (tagged when the tag was readable); True
        when the bad-command budget is spent."""
        status = Status.NO if error.code in _NO_CODES else Status.BAD
        code = ResponseCode(error.code) if error.code else None
        reply: Tagged | Untagged
        if error.tag is None:
            reply = Untagged(status, error.reason, code)
        else:
            reply = Tagged(error.tag, status, error.reason, code)
        self.send(reply)
        # A line that could not even be framed is a command too, for the metrics.
        telemetry.sink().command_finished("imap", "INVALID", status.value, 0.0)
        return self.server.dispatcher.count_reply(self.session, status)

    # --- running one command -------------------------------------------------------

    def run_frame(self, frame: CommandFrame) -> Coroutine[Any, Any, None]:
        return self._execute(self._parse(frame), frame)

    def _parse(self, frame: CommandFrame) -> Command | CommandSyntaxError:
        """Parse one frame; a parser bug answers BAD instead of wedging the
        connection (the parser promises never to raise, this keeps it so)."""
        try:
            if frame.spooled:  # large literals are in spool files (imapd.core.spool)
                spooled = {part.offset: part.content for part in frame.spooled}
                return parse_command(frame.data, self.limits.max_nesting, spooled)
            return parse_command(frame.data, self.limits.max_nesting)
        except Exception:
            log.failure("session {id}: parser error", id=self.session.session_id)
            return CommandSyntaxError(None, "Unparseable command")

    async def _execute(self, parsed: Command | CommandSyntaxError, frame: CommandFrame) -> None:
        assert self.ctx is not None
        try:
            outcome = await self.server.dispatcher.dispatch(parsed, self.ctx)
        finally:
            frame.close()  # its spooled literals: the command is over
        self._running = False
        if outcome is None or self._closing:
            return  # the connection went away (or timed out) under the command
        self.send(outcome.reply)
        self._flush_batch()
        if self.session.authenticated and not self._full_limits:
            self._full_limits = True
            self.framer.set_limits(self.limits)
        self.command_finished(
            logout=self.session.state is State.LOGOUT, too_many_bad=outcome.budget_exhausted)

    # --- ConnectionHooks: STARTTLS and COMPRESS (inherited), penalties, limits -------

    def now(self) -> float:
        return self.server.clock.seconds()

    def login_guard(self) -> LoginGuard | None:
        return self.server.login_guard

    def user_session_count(self, user: str) -> int:
        return self.server.user_session_count(user, excluding=self)

    def channel_bindings(self) -> dict[str, bytes]:
        return tls.channel_bindings(self.transport)

"""What a command handler gets and returns; the handler-facing API.

A handler is::

    async def handle_noop(cmd: Noop, ctx: CommandContext) -> Completion

It reads ``ctx.session`` / ``ctx.config`` / ``ctx.users`` / ``ctx.mail``
(the ``MailService``: mailbox commands; message commands go through the
selected view's ``MailboxWatch``),
sends untagged responses with ``ctx.send`` (written at once, in order),
returns a ``Completion`` (the tagged OK) or raises ``imapd.core.errors.ImapError``
(tagged NO/BAD). Handlers never build bytes and never import Twisted: time
and threads come from ``ctx.runtime``, provided by the server layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine, Generic, Protocol, TypeVar

from imapd.accounts.penalty import LoginGuard
from imapd.imap.commands.announce import announcement
from imapd.core.config import Config, Limits
from imapd.core.runtime import Runtime as Runtime  # re-exported for handlers
from imapd.mail.service import MailService
from imapd.imap.session.state import Session, State
from imapd.imap.session.view import SelectedView
from imapd.accounts.store import UserStore
from imapd.imap.wire.responses import Continuation, FetchResponse, Response, ResponseCode

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Features:
    """Server features fixed at start-up that shape the capability list
    (see ``imapd.imap.capabilities``)."""

    literal_plus: bool = False
    sasl_mechanisms: tuple[str, ...] = ("PLAIN",)
    # STARTTLS (RFC 3501 §6.2.1) is offered when a certificate is loaded.
    starttls: bool = False
    # False: refuse plaintext LOGIN/AUTHENTICATE on unencrypted non-local
    # connections (LOGINDISABLED, RFC 3501 §6.2.3). The server sets it from
    # ``Config.allow_plaintext``; the permissive default suits unit contexts.
    allow_plaintext: bool = True
    # RFC 7889 APPENDLIMIT=n: the largest message APPEND accepts (the
    # framer's literal limit); the server sets it from ``Limits.max_literal``.
    append_limit: int = Limits().max_literal


@dataclass(frozen=True, slots=True)
class Completion:
    """The tagged OK a handler returns: ``tag OK [code] text``."""

    text: str = "completed"
    code: ResponseCode | None = None


class ConnectionHooks(Protocol):
    """What the server offers handlers about their connection beyond
    sending responses (implemented by ``imapd.net.imap_connection``)."""

    def start_tls(self) -> None:
        """Discard everything the client sent after the current command and
        start TLS right after the tagged reply (RFC 3501 §6.2.1)."""

    def now(self) -> float:
        """The server clock, in seconds."""

    def login_guard(self) -> LoginGuard | None:
        """The brute-force penalty tracker, if the server has one."""

    def user_session_count(self, user: str) -> int:
        """Logged-in sessions of ``user`` in this server, this one excluded."""

    def channel_bindings(self) -> dict[str, bytes]:
        """This connection's TLS channel binding data by type (RFC 5929,
        RFC 9266) for SCRAM-SHA-256-PLUS; empty when it is not TLS."""


class ConnectionClosed(Exception):
    """Raised into a handler waiting for client input when the connection
    goes away; the dispatcher stops quietly."""


@dataclass(eq=False)
class CommandContext:
    """Everything one command may use. One per connection, reused by each
    command on it."""

    session: Session
    config: Config
    users: UserStore
    runtime: Runtime
    features: Features
    sender: Callable[[Response], None]
    continuation_reader: Callable[[Continuation], Awaitable[bytes]]
    # The mail core; None in unit contexts without one (mailbox commands
    # then answer NO [UNAVAILABLE]).
    mail: MailService | None = None
    extras: dict[str, object] = field(default_factory=dict)
    # The server side of this connection (STARTTLS, penalties, limits);
    # None in unit contexts that have no server.
    connection: ConnectionHooks | None = None
    # Set by the server: None when all output is written, else something
    # to await until it is (see ``flush``). None: nothing to wait for.
    output_waiter: Callable[[], Awaitable[None] | None] | None = None
    # Set by the server: a long command's yield point (see ``pace``): None
    # to go on at once, else something to await first. None: no pacing
    # (unit contexts), ``pace`` then only waits for the output (``flush``).
    # Called with the number of units done since the last call.
    pacer: Callable[[int], Awaitable[None] | None] | None = None
    # Set by the server: start a coroutine of this session outside the
    # running command (IDLE's push after a doorbell, RFC 2177); the result
    # finishes with it and never fails (errors are logged). None: no pushes.
    spawn: Callable[[Coroutine[Any, Any, None]], Awaitable[None]] | None = None

    def send(self, response: Response) -> None:
        """Write an untagged (or continuation) response now, in order.

        The one choke point for FETCH responses: one whose FLAGS name a
        keyword the client's FLAGS list lacks is preceded by the grown list
        (``* FLAGS``, ``* OK [PERMANENTFLAGS]``; RFC 3501 §7.2.6, see
        ``imapd.imap.commands.announce``). Cheap per response: the check is
        cached per shared FLAGS value."""
        if type(response) is FetchResponse:
            view = self.session.selected
            if isinstance(view, SelectedView) and view.flag_list.admit_items(response.items):
                for flags_response in announcement(view):
                    self.sender(flags_response)
        self.sender(response)

    async def flush(self) -> None:
        """Wait until the responses sent so far are written to the client,
        if some are still waiting (a large literal streamed to a slow
        reader): back-pressure for handlers that send many large responses
        (FETCH), so they do not open every message before the first is
        written. Returns at once when nothing waits."""
        waiter = self.output_waiter() if self.output_waiter is not None else None
        if waiter is not None:
            await waiter

    async def pace(self, units: int = 1) -> None:
        """Call between two units of a loop whose length the client chooses
        (a message of ``FETCH 1:*``, ``SEARCH``, ``STORE``), or after
        ``units`` cheap ones done in a batch (SORT keys ``units`` messages
        of microseconds each between two calls: the slice's budget counts
        them all, one call's overhead is paid per batch): returns at once
        while this connection's share of the reactor turn lasts, else after
        other connections had their turn (one connection's big command must
        not stall everyone: issue 13), and only while the client's unread
        output is under the server's bound (back-pressure for many small
        responses, as ``flush`` for large ones). Raises ``ConnectionClosed``
        once the client is gone, so nothing is produced for nobody."""
        if self.pacer is None:
            await self.flush()
            return
        waiter = self.pacer(units)
        if waiter is not None:
            await waiter

    def read_continuation(self, prompt: Continuation) -> Awaitable[bytes]:
        """Send ``+ ...`` and wait for the client's next line (without its
        CRLF), e.g. a SASL response (RFC 3501 §6.2.2). Raises
        ``ConnectionClosed`` if the client goes away, and ``ImapError`` (BAD)
        if the line is over-long."""
        return self.continuation_reader(prompt)


Handler = Callable[[C, CommandContext], Awaitable[Completion]]

# Legal-state sets for the registry (RFC 3501 §6.1–§6.4).
ANY_STATE = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


@dataclass(frozen=True, slots=True)
class CommandSpec(Generic[C]):
    """One row of the dispatch table (``imapd.imap.commands.registry``).

    ``may_send_expunge`` is False for commands during which untagged EXPUNGE
    must not be sent (FETCH, STORE, SEARCH and their UID forms; RFC 3501
    §7.4.1), so the dispatcher holds expunges back for them.
    """

    command_type: type[C]
    handler: Handler[C]
    states: frozenset[State]
    may_send_expunge: bool = True


AnySpec = CommandSpec[Any]  # a row of the table, whatever its command type

"""Faults a test declares, for the wiretap to apply to the server's connections.

Client authors need to see what their code does when a server misbehaves
or the network does. A ``Fault`` says what goes wrong and when; the test
server's ``FaultPlan`` holds the faults of a test (the
``@pytest.mark.imapd_faults`` marker fills it), and its wiretap
(``imapd.testing.wiretap``) applies them to the octets on the wire:

``close_after_bytes(n)``
    the client receives the server's first n octets (as sent on the wire:
    compressed after COMPRESS), then the connection is closed (FIN, no
    ``BYE``): the client reads n octets and end of file.
``close_at(command)``
    when the client sends COMMAND, the connection is reset (TCP RST, no
    ``BYE``) once the answers to the commands sent before it have been
    written: COMMAND reaches no server and is never answered.
    ``after_answer=True``: the server runs it, the client gets the complete
    answer, then the connection is closed (FIN, no ``BYE``).
``delay(seconds, command=None)``
    the server's answer to COMMAND, from the moment the command is passed
    on until its tagged line, reaches the client ``seconds`` after the
    command was passed on (POP3/LMTP: until the next command); with no
    command, everything the server writes reaches the client ``seconds``
    late (a slow link). Output stays in order: what follows waits too.
``respond(command, status="NO", text=...)``
    the wiretap answers COMMAND itself, ``TAG NO text``, ``TAG BAD text``
    or ``* BYE text`` (then closes); the server never sees the command nor
    its literals. For a synchronizing literal the answer comes instead of
    the ``+`` continuation, which RFC 3501 §7.5 allows; the octets of a
    non-synchronizing literal (RFC 7888) are swallowed.
``inject_exists(command, message=None)`` / ``inject_expunge(command, uid=None)``
    *genuine* changes, not made-up responses: before COMMAND reaches the
    server, a new message is appended to the connection's selected mailbox
    (or the message with ``uid``, by default the lowest, is expunged)
    through the store, as another client would do. The server itself then
    reports ``* n EXISTS`` or ``* n EXPUNGE`` / ``VANISHED`` when the RFC
    lets it: an EXPUNGE never during FETCH, STORE or SEARCH (RFC 3501
    §7.4.1), so for ``inject_expunge("FETCH")`` the client sees it with the
    next command that allows it (NOOP, say). The wiretap waits for the
    answers to the commands pipelined before COMMAND, so the change lands
    just before the server runs COMMAND. Nothing happens (a transcript note
    says so) when no mailbox is selected.
``throttle(bytes_per_second)``
    the server's output is dribbled to the client at that rate (in pieces
    of at most a tenth of a second's worth); the server is paused while
    the wiretap holds more than 64 KiB for the client, as a slow client
    would pause it.

Faults that act on commands are not applied once a client asks for
COMPRESS or STARTTLS (the wiretap then sees compressed or encrypted
octets); byte-level ones (``close_after_bytes``, ``throttle``, ``delay``
of everything) still are.

Every constructor takes ``protocol=`` (``"imap"``, ``"pop3"``, ``"lmtp"``)
and ``connection=`` (only the n-th connection of that protocol, counted
from 1; None: all). ``command`` is compared with the command name, case
insensitively: ``"FETCH"``, ``"UID FETCH"`` for IMAP (two different
commands: ``"FETCH"`` does not match ``UID FETCH``); the first word for
POP3 and LMTP (``"RETR"``, ``"DATA"``, ``"BDAT"``; message lines after
354 and BDAT chunk octets are never taken for commands). ``occurrence``: the n-th time that
command is sent on a connection (counted per connection, from 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

PROTOCOLS = ("imap", "pop3", "lmtp")
STATUSES = ("NO", "BAD", "BYE")

# Fault kinds (``Fault.kind``).
CLOSE_AFTER_BYTES = "close_after_bytes"
CLOSE_AT = "close_at"
DELAY = "delay"
RESPOND = "respond"
INJECT_EXISTS = "inject_exists"
INJECT_EXPUNGE = "inject_expunge"
THROTTLE = "throttle"

DEFAULT_MESSAGE = (
    b"From: imapd-testing@example.org\r\nTo: user@example.org\r\n"
    b"Subject: injected by imapd.testing\r\n\r\nThis message arrived during the test.\r\n"
)


class StoreActions(Protocol):
    """How the wiretap changes the store for ``inject_exists`` and
    ``inject_expunge`` (the test server provides it); run on the reactor."""

    async def append_message(self, user: str, mailbox: str, raw: bytes) -> int:
        """Append ``raw`` to ``mailbox``; the new UID."""

    async def expunge_message(self, user: str, mailbox: str, uid: int | None) -> int | None:
        """Expunge ``uid`` (None: the lowest); the UID expunged, None if empty."""


@dataclass(frozen=True)
class Fault:
    """One declared fault. Build faults with the functions of this module
    (``close_at``, ``delay``...), not directly."""

    kind: str
    protocol: str = "imap"
    connection: int | None = None
    command: str | None = None
    occurrence: int = 1
    count: int = 0                 # close_after_bytes: octets; throttle: per second
    seconds: float = 0.0           # delay
    status: str = "NO"             # respond
    text: str = ""                 # respond
    message: bytes | None = None   # inject_exists
    uid: int | None = None         # inject_expunge
    after_answer: bool = False     # close_at

    def applies_to(self, protocol: str, connection: int) -> bool:
        """Whether this fault concerns that connection."""
        return self.protocol == protocol and self.connection in (None, connection)

    def matches(self, verb: str) -> bool:
        """Whether a command named ``verb`` is this fault's command."""
        return self.command is not None and verb.upper() == self.command


def _check(protocol: str, connection: int | None, occurrence: int = 1) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if connection is not None and connection < 1:
        raise ValueError("connection counts from 1")
    if occurrence < 1:
        raise ValueError("occurrence counts from 1")


def _imap_only(protocol: str) -> None:
    if protocol != "imap":
        raise ValueError("inject faults need an IMAP connection's selected mailbox")


def _command(command: str) -> str:
    name = " ".join(command.split()).upper()
    if not name:
        raise ValueError("a command name is needed")
    return name


def close_after_bytes(count: int, *, protocol: str = "imap", connection: int | None = None) -> Fault:
    """After the server's first ``count`` octets, the connection is reset."""
    _check(protocol, connection)
    if count < 0:
        raise ValueError("count must be >= 0")
    return Fault(CLOSE_AFTER_BYTES, protocol, connection, count=count)


def close_at(command: str, occurrence: int = 1, *, after_answer: bool = False,
             protocol: str = "imap", connection: int | None = None) -> Fault:
    """The connection is reset when the client sends ``command`` (its
    ``occurrence``-th time): unanswered, unseen by the server. With
    ``after_answer``: once the server's complete answer reached the client."""
    _check(protocol, connection, occurrence)
    return Fault(CLOSE_AT, protocol, connection, _command(command), occurrence,
                 after_answer=after_answer)


def delay(seconds: float, command: str | None = None, *, protocol: str = "imap",
          connection: int | None = None) -> Fault:
    """The responses to ``command`` (every one when None) are held back
    ``seconds`` before the client gets them."""
    _check(protocol, connection)
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    return Fault(DELAY, protocol, connection, None if command is None else _command(command),
                 seconds=float(seconds))


def respond(command: str, status: str = "NO", text: str = "[UNAVAILABLE] fault injected by imapd.testing",
            occurrence: int = 1, *, protocol: str = "imap", connection: int | None = None) -> Fault:
    """The wiretap answers ``command`` with ``status`` (NO, BAD or BYE)
    and ``text``; the server never sees it. POP3 answers ``-ERR text``,
    LMTP ``451 text`` (BYE closes the connection after either)."""
    _check(protocol, connection, occurrence)
    status = status.upper()
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if "\r" in text or "\n" in text:
        raise ValueError("text must be one line")
    return Fault(RESPOND, protocol, connection, _command(command), occurrence,
                 status=status, text=text)


def inject_exists(command: str, message: bytes | None = None, occurrence: int = 1, *,
                  protocol: str = "imap", connection: int | None = None) -> Fault:
    """Before ``command`` reaches the server, ``message`` (a small default
    one when None) is appended to the connection's selected mailbox."""
    _check(protocol, connection, occurrence)
    _imap_only(protocol)
    return Fault(INJECT_EXISTS, protocol, connection, _command(command), occurrence,
                 message=message if message is not None else DEFAULT_MESSAGE)


def inject_expunge(command: str, uid: int | None = None, occurrence: int = 1, *,
                   protocol: str = "imap", connection: int | None = None) -> Fault:
    """Before ``command`` reaches the server, the message ``uid`` (the
    lowest when None) of the connection's selected mailbox is expunged."""
    _check(protocol, connection, occurrence)
    _imap_only(protocol)
    return Fault(INJECT_EXPUNGE, protocol, connection, _command(command), occurrence, uid=uid)


def throttle(bytes_per_second: int, *, protocol: str = "imap", connection: int | None = None) -> Fault:
    """The server's output reaches the client at ``bytes_per_second``."""
    _check(protocol, connection)
    if bytes_per_second < 1:
        raise ValueError("bytes_per_second must be >= 1")
    return Fault(THROTTLE, protocol, connection, count=bytes_per_second)


class FaultPlan:
    """The faults in force (a test server has one; tests may change it
    between connections: each connection takes the plan as it is when it
    opens)."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._faults: list[Fault] = []
        self.add(*faults)

    def add(self, *faults: Fault) -> None:
        """Put more faults in force."""
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"not a Fault: {fault!r} (use imapd.testing.faults' functions)")
            self._faults.append(fault)

    def clear(self) -> None:
        """No more faults (for connections opened from now on)."""
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        return list(self._faults)

    def for_connection(self, protocol: str, connection: int) -> list[Fault]:
        """The faults a new connection applies."""
        return [f for f in self._faults if f.applies_to(protocol, connection)]

    def __repr__(self) -> str:
        return f"FaultPlan({self._faults!r})"

"""What one connection reports about itself when it ends: the
``SessionSummary`` of ``imapd.core.telemetry`` (the per-session log line,
the metrics), gathered by the connection classes of ``imapd.net``.

Bytes are counted at the transport the protocol object talks to: what
``dataReceived`` is given and what is handed to ``transport.write``. On a
TLS connection that is the plaintext (the TLS layer sits below it); with
COMPRESS=DEFLATE (RFC 4978) it is the compressed stream, since DEFLATE
wraps the transport from above and writes through the counted ``write``.
So the counts are what crossed the connection as the protocol sees it,
whatever the client asked for, not the protocol's own text.

Output is counted by wrapping the transport's ``write`` once, as an
instance attribute: every writer (the response writer, a streamed literal
as the client reads it, the DEFLATE wrapper) goes through it, and the
transport object itself stays what Twisted gave us (``ISSLTransport``
checks, ``startTLS``, producers all still see the real one).

The reason for the close is the first one noted: a goodbye the server
said (``note``), else why the transport went away (``lost_reason``).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.python.failure import Failure

from imapd.core import telemetry
from imapd.core.telemetry import SessionSummary

# How the reasons for a close read in the log line and the metrics: a
# few stable words each (``SessionSummary.reason``).
LOGOUT = "logout"
DISCONNECTED = "disconnected"
SHUTDOWN = "shutdown"
CLOSED_BY_SERVER = "closed by server"
TLS_FAILURE = "tls failure"
INTERNAL_ERROR = "internal error"


def lost_reason(failure: Failure | None) -> str:
    """Why a transport went away that nobody closed on purpose: a broken
    TLS handshake or record, else the client disconnected."""
    if failure is not None:
        try:
            from OpenSSL.SSL import Error as TLSError
        except ImportError:  # pragma: no cover - pyOpenSSL is a dependency
            return DISCONNECTED
        if isinstance(failure.value, TLSError):
            return TLS_FAILURE
    return DISCONNECTED


class SessionAccount:
    """One connection's counts and close reason (see the module docstring).
    ``protocol``: "imap", "pop3" or "lmtp"."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.peer = "?"
        self.opened_at: float | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.reason: str | None = None
        self._reported = False

    def open(self, peer: str, now: float, transport: Any) -> None:
        """The connection is made: count what is written from now on, and
        tell the installed telemetry."""
        self.peer = peer
        self.opened_at = now
        if transport is not None:
            self._count_writes(transport)
        telemetry.sink().connection_opened(self.protocol, peer)

    def _count_writes(self, transport: Any) -> None:
        write: Callable[[bytes], None] = transport.write

        def counted(data: bytes) -> None:
            self.bytes_out += len(data)
            write(data)

        try:
            transport.write = counted
        except AttributeError:  # a transport with __slots__: output is not counted
            pass

    def note(self, reason: str) -> None:
        """Why the server is closing, unless a reason is already noted."""
        if self.reason is None:
            self.reason = reason

    def close(self, user: str | None, now: float, secure: bool,
              failure: Failure | None = None) -> SessionSummary | None:
        """The connection is gone: report its summary once (None if it was
        reported already, or never opened)."""
        if self._reported or self.opened_at is None:
            return None
        self._reported = True
        summary = SessionSummary(
            protocol=self.protocol, peer=self.peer, user=user,
            seconds=max(0.0, now - self.opened_at), bytes_in=self.bytes_in,
            bytes_out=self.bytes_out, reason=self.reason or lost_reason(failure),
            secure=secure)
        telemetry.sink().connection_closed(summary)
        return summary


# The server's own goodbyes (``imapd.net.connection.Goodbye`` values) as
# close reasons.
_GOODBYES = {
    "flood": "flood",
    "too many bad": "too many bad commands",
    "bad compressed": "bad compressed data",
    "autologout": "idle timeout",
    "login too slow": "login timeout",
}
IDLE_TIMEOUT = _GOODBYES["autologout"]
REFUSED = "refused"


def goodbye_reason(value: str) -> str:
    """The close reason for a ``Goodbye`` (by its value)."""
    return _GOODBYES.get(value, value)

"""What the server reports about itself, whoever listens: the per-session
log line (Dovecot-style), Prometheus metrics, ``imapd status``.

The protocol wings, the connections and the storage engines call the
functions of the installed ``Telemetry`` (``sink()``); the composition root
(``imapd.app``) installs one that fans out to the log and to the metrics.
A process-wide sink, not a constructor argument: storage engines and the
mail core report from deep inside (a commit on the writer thread) where no
connection or factory is at hand. Implementations must be cheap, must
never raise, and must be thread-safe (the SQLite writer and PostgreSQL
threads call ``commit``). Nothing here may carry a secret: no passwords,
no SASL payloads, no message content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One finished connection. ``protocol``: "imap", "pop3", "lmtp";
    ``user`` None if it never logged in; ``reason``: why it closed, in a
    few words ("logout", "disconnected", "idle timeout", "shutdown",
    "too many bad commands", "tls failure", ...)."""

    protocol: str
    peer: str
    user: str | None
    seconds: float
    bytes_in: int
    bytes_out: int
    reason: str
    secure: bool = False


class Telemetry(Protocol):
    """The events. ``protocol`` is "imap", "pop3" or "lmtp" throughout."""

    def connection_opened(self, protocol: str, peer: str) -> None: ...

    def connection_closed(self, summary: SessionSummary) -> None: ...

    def logged_in(self, protocol: str, mechanism: str, success: bool) -> None:
        """One verdict of a login attempt (``mechanism``: "LOGIN", "PLAIN",
        "SCRAM-SHA-256", "USER" ...)."""

    def command_finished(self, protocol: str, command: str, result: str,
                         seconds: float) -> None:
        """``command`` upper-case ("UID FETCH", "RETR", "DATA"); ``result``
        the protocol's verdict ("OK", "NO", "BAD", "+OK", "-ERR", "250",
        "4xx", "5xx")."""

    def idle_changed(self, delta: int) -> None:
        """+1 when a session enters IDLE, -1 when it leaves."""

    def delivered(self, via: str, outcome: str) -> None:
        """One recipient's delivery: ``via`` "lmtp", "lda" or "append";
        ``outcome`` "ok", "temporary", "permanent"."""

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        """One store commit: ``engine`` "sqlite" or "postgres", its
        latency, and how many changes it carried (group commit batch)."""


class NullTelemetry:
    """Reports nowhere (the default, and what tests get)."""

    def connection_opened(self, protocol: str, peer: str) -> None:
        pass

    def connection_closed(self, summary: SessionSummary) -> None:
        pass

    def logged_in(self, protocol: str, mechanism: str, success: bool) -> None:
        pass

    def command_finished(self, protocol: str, command: str, result: str,
                         seconds: float) -> None:
        pass

    def idle_changed(self, delta: int) -> None:
        pass

    def delivered(self, via: str, outcome: str) -> None:
        pass

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        pass


class Fanout:
    """Every event to each of ``sinks`` in turn."""

    def __init__(self, *sinks: Telemetry) -> None:
        self.sinks = sinks

    def connection_opened(self, protocol: str, peer: str) -> None:
        for each in self.sinks:
            each.connection_opened(protocol, peer)

    def connection_closed(self, summary: SessionSummary) -> None:
        for each in self.sinks:
            each.connection_closed(summary)

    def logged_in(self, protocol: str, mechanism: str, success: bool) -> None:
        for each in self.sinks:
            each.logged_in(protocol, mechanism, success)

    def command_finished(self, protocol: str, command: str, result: str,
                         seconds: float) -> None:
        for each in self.sinks:
            each.command_finished(protocol, command, result, seconds)

    def idle_changed(self, delta: int) -> None:
        for each in self.sinks:
            each.idle_changed(delta)

    def delivered(self, via: str, outcome: str) -> None:
        for each in self.sinks:
            each.delivered(via, outcome)

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        for each in self.sinks:
            each.committed(engine, seconds, changes)


_installed: Telemetry = NullTelemetry()


def sink() -> Telemetry:
    """The installed telemetry (``NullTelemetry`` until ``install``)."""
    return _installed


def install(telemetry: Telemetry) -> Telemetry:
    """Make ``telemetry`` the process's sink; returns the one it replaces
    (tests put it back)."""
    global _installed
    previous, _installed = _installed, telemetry
    return previous

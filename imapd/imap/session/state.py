"""Per-connection session state: the RFC 3501 §3 state machine.

::

    connection ─► NOT_AUTHENTICATED ─(LOGIN/AUTHENTICATE)─► AUTHENTICATED
                                                         ◄─(CLOSE)── SELECTED
                                   (SELECT/EXAMINE) ────────────────►
    any state ─(LOGOUT, BYE, close)─► LOGOUT

Handlers change ``Session.state``; the dispatcher checks it against the
registry before running a command. No Twisted here.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Callable, Protocol

from imapd.imap.wire.responses import Response


class State(enum.Enum):
    """RFC 3501 §3.1–§3.4."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class SelectedViewLike(Protocol):
    """What the server layer needs from the selected mailbox's view
    (``imapd.imap.session.view.SelectedView`` provides it).

    ``drain`` returns the pending untagged updates (EXISTS, RECENT, EXPUNGE,
    FETCH) to send before a tagged reply; with ``allow_expunge=False`` it
    holds expunges back (RFC 3501 §7.4.1). ``on_change`` is called when the
    mailbox's doorbell rings (IDLE schedules its catch-up from it; it must
    never write). ``close`` detaches the view.
    """

    on_change: Callable[[], None] | None

    def drain(self, allow_expunge: bool) -> list[Response]: ...

    def close(self) -> None: ...


_session_ids = itertools.count(1)


def next_session_id() -> int:
    return next(_session_ids)


@dataclass(eq=False)
class Session:
    """One client connection's state. ``peer`` is for logs ("1.2.3.4:5678"),
    ``secure`` is True on a TLS connection, ``local`` when the peer is on
    this host (loopback or a UNIX socket: no network to snoop on)."""

    peer: str
    secure: bool = False
    state: State = State.NOT_AUTHENTICATED
    user: str | None = None
    selected: SelectedViewLike | None = None
    session_id: int = field(default_factory=next_session_id)
    bad_commands: int = 0
    local: bool = False
    peer_host: str = ""  # the address alone, for per-address limits
    # Extensions turned on by ENABLE (RFC 5161 §3.1), upper-cased names;
    # they stay on until the connection closes.
    enabled: set[str] = field(default_factory=set)

    @property
    def authenticated(self) -> bool:
        return self.state in (State.AUTHENTICATED, State.SELECTED)

    def log_in(self, user: str) -> None:
        """NOT_AUTHENTICATED -> AUTHENTICATED (RFC 3501 §6.2.2, §6.2.3)."""
        self.user = user
        self.state = State.AUTHENTICATED

    def deselect(self) -> None:
        """Leave SELECTED (CLOSE, failed SELECT, connection end)."""
        if self.selected is not None:
            self.selected.close()
            self.selected = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

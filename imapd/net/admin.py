"""The admin socket: a running server answers its operator on a UNIX
socket in the data directory (``imapd status``, ``imapd user del``).

One JSON object per line each way:

* ``{"command": "status"}`` -> ``{"sessions": [{"protocol", "user",
  "peer", "since", "state"}, ...], "users": {NAME: sessions}}``;
* ``{"command": "kick", "user": NAME}`` -> ``{"closed": n}``: every IMAP
  session of NAME gets ``* BYE`` (RFC 3501 §7.1.5), every POP3 session
  ``-ERR`` (RFC 1939 §3), and is closed.

The socket is ``DATA/admin.sock``, mode 0600 in the 0700 data directory:
whoever may read the mail store may ask. A ``--workers`` worker (or a
second server on the same data directory) listens on ``admin-PID.sock``
instead; ``ask`` asks every socket there and adds the answers up, so the
caller sees one server. A socket file nobody listens on (a server that
was killed) is skipped by ``ask`` and replaced by the next server.

Requests are bounded (one line of at most ``MAX_REQUEST`` bytes, answered
before the next is read); an unknown command gets ``{"error": ...}``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, cast

from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from imapd.net.peer import format_peer

log = Logger(namespace="imapd.admin")

SOCKET_NAME = "admin.sock"
MAX_REQUEST = 4096
KICK_TEXT = "Disconnected by the administrator"
KICKED = "kicked"  # the close reason (``SessionSummary.reason``)
ASK_TIMEOUT = 10.0


# --- what the server knows -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One open connection as ``status`` shows it."""

    protocol: str
    user: str | None
    peer: str
    since: float | None
    state: str

    def as_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "user": self.user, "peer": self.peer,
                "since": self.since, "state": self.state}


Listed = list[tuple["SessionInfo", Callable[[], None]]]


def _since(connection: Any) -> float | None:
    """When the connection opened (epoch seconds, its session accounting's
    ``opened_at``), if it recorded it."""
    value = getattr(getattr(connection, "account", None), "opened_at", None)
    if value is None:
        value = getattr(connection, "opened_at", None)
    return float(value) if isinstance(value, (int, float)) else None


def _note_kick(connection: Any) -> None:
    """The close reason in the session's summary line and metrics."""
    account = getattr(connection, "account", None)
    if account is not None and hasattr(account, "note"):
        account.note(KICKED)


def _bye(connection: Any, bye: Any) -> None:
    """IMAP: ``* BYE`` then close (RFC 3501 §7.1.5)."""
    _note_kick(connection)
    connection.send(bye)
    connection.close()


def imap_sessions(factory: Any) -> Listed:
    """The IMAP factory's connections, each with how to kick it."""
    from imapd.imap.wire.responses import Status, Untagged

    found: Listed = []
    for connection in list(factory.connections):
        session = connection.session

        info = SessionInfo("imap", session.user if session.authenticated else None,
                           session.peer, _since(connection), session.state.name.lower())
        found.append((info, partial(_bye, connection, Untagged(Status.BYE, KICK_TEXT))))
    return found


def _pop3_goodbye(connection: Any) -> None:
    """POP3: ``-ERR`` then close (RFC 1939 §3)."""
    _note_kick(connection)
    connection.goodbye(KICK_TEXT)


def pop3_sessions(factory: Any) -> Listed:
    """The POP3 factory's connections, each with how to kick it."""
    found: Listed = []
    for connection in list(factory.connections):
        session = connection.session
        transport = connection.transport
        peer = format_peer(transport.getPeer()) if transport is not None else "?"
        info = SessionInfo("pop3", session.user if session.authenticated else None, peer,
                           _since(connection), session.state.name.lower())
        found.append((info, partial(_pop3_goodbye, connection)))
    return found


def lmtp_sessions(factory: Any) -> Listed:
    """The LMTP factory's connections (an MTA's; never kicked by user)."""
    found: Listed = []
    for connection in list(factory.connections):
        session = connection.session
        peer = getattr(session, "peer", "?") if session is not None else "?"
        info = SessionInfo("lmtp", None, peer, _since(connection), "delivery")
        found.append((info, lambda: None))
    return found


class Registry:
    """Every session of the process, read from the protocols' factories
    (``servers``: the IMAP, POP3 and LMTP ones) when asked: nothing to keep
    up to date per connection."""

    def __init__(self, servers: Iterable[Any]) -> None:
        from imapd.net.imap_factory import ImapServerFactory
        from imapd.net.pop3_connection import Pop3Factory

        self._sources: list[tuple[Callable[[Any], list[Any]], Any]] = []
        for server in servers:
            lister = (imap_sessions if isinstance(server, ImapServerFactory) else
                      pop3_sessions if isinstance(server, Pop3Factory) else lmtp_sessions)
            self._sources.append((lister, server))

    def sessions(self) -> Listed:
        return [each for lister, server in self._sources for each in lister(server)]

    def answer(self, request: Any) -> dict[str, Any]:
        """The reply to one request object."""
        if not isinstance(request, dict):
            return {"error": "a request is a JSON object"}
        command = request.get("command")
        if command == "status":
            return self.status()
        if command == "kick":
            user = request.get("user")
            if not isinstance(user, str) or not user:
                return {"error": "kick needs a user"}
            return {"closed": self.kick(user)}
        return {"error": f"unknown command: {str(command)[:40]}"}

    def status(self) -> dict[str, Any]:
        sessions = [info for info, _ in self.sessions()]
        users: dict[str, int] = {}
        for info in sessions:
            if info.user is not None:
                users[info.user] = users.get(info.user, 0) + 1
        return {"sessions": [info.as_json() for info in sessions], "users": users}

    def kick(self, user: str) -> int:
        closed = 0
        for info, kick in self.sessions():
            if info.user == user:
                kick()
                closed += 1
        if closed:
            log.info("imapd: admin closed {n} session(s) of {user}", n=closed, user=user)
        return closed


# --- the server side ---------------------------------------------------------------


class AdminProtocol(LineOnlyReceiver):
    """One admin client: a JSON line in, a JSON line out."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def lineReceived(self, line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError:
            reply: dict[str, Any] = {"error": "not JSON"}
        else:
            try:
                reply = self.registry.answer(request)
            except Exception as error:  # answer, never take the server down
                log.failure("admin request failed")
                reply = {"error": f"failed: {type(error).__name__}"}
        self._send(reply)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._send({"error": "request too long"})
        cast(Any, self.transport).loseConnection()

    def _send(self, reply: dict[str, Any]) -> None:
        cast(Any, self.transport).write(json.dumps(reply).encode() + b"\n")


class AdminFactory(Factory):
    noisy = False

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def buildProtocol(self, addr: Any) -> AdminProtocol:
        return AdminProtocol(self.registry)


def _alive(path: Path) -> bool:
    """Whether a server answers on the socket file ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def socket_path(data_dir: Path, own: bool) -> Path:
    """Where this process listens: ``admin.sock``, unless ``own`` (a
    worker) or another live server holds it: then ``admin-PID.sock``."""
    shared = data_dir / SOCKET_NAME
    if not own and not (shared.exists() and _alive(shared)):
        return shared
    return data_dir / f"admin-{os.getpid()}.sock"


class AdminListener:
    """Listens on the admin socket while the server runs."""

    def __init__(self, data_dir: Path, servers: Sequence[Any], *, own: bool = False) -> None:
        self.data_dir = data_dir
        self.registry = Registry(servers)
        self.own = own
        self.path: Path | None = None
        self.port: IListeningPort | None = None

    def start(self, reactor: Any) -> None:
        """Bind (replacing a dead server's socket file). A socket that
        cannot be made is logged, not fatal: mail goes on without it."""
        path = socket_path(self.data_dir, self.own)
        try:
            with _quiet_missing():
                path.unlink()
            self.port = reactor.listenUNIX(str(path), AdminFactory(self.registry), mode=0o600)
        except Exception as error:
            log.warn("imapd: no admin socket at {path}: {error}", path=str(path), error=error)
            return
        self.path = path

    def stop(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            cast(Any, port).stopListening()  # Twisted removes the socket file
        self.path = None


class _quiet_missing:
    """``with``: ignore a file that is already gone."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, trace: Any) -> bool:
        return isinstance(error, FileNotFoundError)


# --- the client side ---------------------------------------------------------------


def sockets_of(data_dir: Path) -> list[Path]:
    """The admin socket files in ``data_dir`` (live or not)."""
    try:
        names = sorted(os.listdir(data_dir))
    except OSError:
        return []
    return [data_dir / n for n in names
            if n == SOCKET_NAME or (n.startswith("admin-") and n.endswith(".sock"))]


def _ask_one(path: Path, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(str(path))
        except OSError as error:
            if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return None  # a dead server's socket file
            raise
        conn.sendall(json.dumps(request).encode() + b"\n")
        received = bytearray()
        deadline = time.monotonic() + timeout
        while not received.endswith(b"\n"):
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    reply = json.loads(received)
    return reply if isinstance(reply, dict) else None


def merge(replies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' answers as one: lists joined, counts added."""
    total: dict[str, Any] = {}
    for reply in replies:
        for key, value in reply.items():
            known = total.get(key)
            if isinstance(value, list) and isinstance(known, list):
                total[key] = known + value
            elif isinstance(value, int) and isinstance(known, int):
                total[key] = known + value
            elif isinstance(value, dict) and isinstance(known, dict):
                total[key] = merge([known, value])
            elif known is None:
                total[key] = value
    return total


def ask(data_dir: Path, request: dict[str, Any],
        timeout: float = ASK_TIMEOUT) -> dict[str, Any] | None:
    """Ask the server(s) running on ``data_dir``; their answers merged, or
    None when no server listens there. Blocking: for the command line."""
    replies = []
    for path in sockets_of(data_dir):
        try:
            reply = _ask_one(path, request, timeout)
        except (OSError, ValueError):
            continue  # a hung or dying process: the others still answer
        if reply is not None:
            replies.append(reply)
    return merge(replies) if replies else None

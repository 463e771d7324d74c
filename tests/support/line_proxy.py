"""A TCP proxy in front of a real server that changes chosen server lines.

Tests use it to play a defective server without writing one: a conformance
script must fail when one answer is wrong (:class:`Mutations`, a regular
expression rewriting whole lines), and the stress checker must notice a
server that forgets responses (:class:`Deletions`, a per-connection callback
choosing lines to drop). Deleting a line is rewriting it to nothing.

    with LineProxy(("127.0.0.1", port), Mutations([Mutation(rb"\\* SEARCH 2", rb"* SEARCH 3")])) as proxy:
        ...  # connect to ("127.0.0.1", proxy.port)
    assert proxy.changed  # the original lines that were rewritten or dropped

Client-to-server bytes pass unchanged. Server lines are forwarded whole: a
line that has not ended yet is held until its LF arrives, which an IMAP
server always sends before it waits for input (RFC 3501 §2.2). Literals in
responses are not special-cased; their lines are offered like any others.
Once the rules say they can change nothing more, a connection passes bytes
through untouched, which keeps a compressed stream (RFC 4978) intact after
the rewrite of COMPRESS's own reply.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

LineRewrite = Callable[[bytes], "bytes | None"]
"""One server line (CRLF excluded) -> None to forward it unchanged, or the bytes sent instead (b"" drops it)."""

LineFilter = Callable[[bytes], bool]
"""One server line (CRLF excluded) -> True to drop it."""


class Rules(Protocol):
    """What a :class:`LineProxy` does to server lines."""

    def for_connection(self, index: int) -> LineRewrite:
        """The rewrite for client connection ``index`` (1-based, in accept order)."""

    def exhausted(self) -> bool:
        """True once no line can be changed any more (then bytes pass through raw)."""


@dataclass
class Mutation:
    """Rewrite server lines fully matching ``pattern`` (bytes regex, CRLF excluded), ``times`` times."""

    pattern: bytes
    replacement: bytes  # a re template; may hold \r\n to add lines
    times: int = 1
    skip: int = 0  # matching lines passed unchanged first (e.g. the runner's setup APPENDs)
    connection: int | None = None  # only on this client connection (1-based, in accept order)


class Mutations:
    """Regex rewrites whose counts are shared by all connections."""

    def __init__(self, mutations: list[Mutation]) -> None:
        self._mutations = mutations
        self._lock = threading.Lock()  # the counts change from every connection's thread

    def for_connection(self, index: int) -> LineRewrite:
        return lambda line: self._rewrite(line, index)

    def exhausted(self) -> bool:
        with self._lock:
            return all(mutation.times <= 0 for mutation in self._mutations)

    def _rewrite(self, line: bytes, index: int) -> bytes | None:
        with self._lock:
            for mutation in self._mutations:
                if mutation.times <= 0 or mutation.connection not in (None, index):
                    continue
                match = re.fullmatch(mutation.pattern, line, re.DOTALL)
                if match is not None and mutation.skip > 0:
                    mutation.skip -= 1
                elif match is not None:
                    mutation.times -= 1
                    return match.expand(mutation.replacement) + b"\r\n"
        return None


class Deletions:
    """Drop the lines a filter chooses; each connection gets a fresh filter from ``make_filter``
    (so a filter may keep state, e.g. "every fifth EXPUNGE of this connection")."""

    def __init__(self, make_filter: Callable[[], LineFilter]) -> None:
        self._make_filter = make_filter

    def for_connection(self, index: int) -> LineRewrite:
        drop = self._make_filter()
        return lambda line: b"" if drop(line) else None

    def exhausted(self) -> bool:
        return False


class LineProxy:
    """Listen on 127.0.0.1:<ephemeral>; each client connection gets its own upstream connection."""

    def __init__(self, upstream: tuple[str, int], rules: Rules) -> None:
        self.upstream = upstream
        self.rules = rules
        self.changed: list[bytes] = []  # original lines (CRLF excluded) that were rewritten or dropped
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._accepted = 0

    def __enter__(self) -> LineProxy:
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
                self._accepted += 1
                index = self._accepted
            rewrite = self.rules.for_connection(index)
            threading.Thread(target=self._pump_raw, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_lines, args=(server, client, rewrite), daemon=True).start()

    @staticmethod
    def _pump_raw(source: socket.socket, sink: socket.socket) -> None:
        """Client to server: untouched."""
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            _close(sink)
        else:
            _half_close(sink)

    def _pump_lines(self, source: socket.socket, sink: socket.socket, rewrite: LineRewrite) -> None:
        """Server to client: whole lines, rewritten while the rules can change any; then untouched."""
        pending = b""
        try:
            while chunk := source.recv(65536):
                if self.rules.exhausted():
                    sink.sendall(pending + chunk)
                    pending = b""
                    continue
                pending += chunk
                cut = pending.rfind(b"\n") + 1
                lines, pending = pending[:cut], pending[cut:]
                sink.sendall(b"".join(self._apply(rewrite, line) for line in lines.splitlines(keepends=True)))
        except OSError:
            _close(sink)
        else:
            _half_close(sink)

    def _apply(self, rewrite: LineRewrite, line: bytes) -> bytes:
        body = line.removesuffix(b"\r\n")
        replacement = rewrite(body)
        if replacement is None:
            return line
        with self._lock:
            self.changed.append(body)
        return replacement


def _half_close(sock: socket.socket) -> None:
    """Pass on an end of stream; the other direction may still carry the last replies."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

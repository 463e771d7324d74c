"""A proxy in front of a real server that gives one deliberately wrong answer.

To show that a conformance script can fail, it is run through this proxy:
every server line passes unchanged except those a :class:`Mutation` rewrites
(a regular expression on one whole line, CRLF included). The replacement may
add lines (``\\r\\n`` inside it) or turn a right answer into a wrong one. Once
its mutations have fired as often as allowed, a connection passes bytes through
untouched, which keeps a compressed stream (RFC 4978) intact after the rewrite
of COMPRESS's own reply.

Lines are forwarded whole: a server line that has not ended yet is held until
its CRLF arrives, which an IMAP server always sends before it waits for input.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass


@dataclass
class Mutation:
    """Rewrite server lines fully matching ``pattern`` (bytes regex, CRLF excluded), ``times`` times."""

    pattern: bytes
    replacement: bytes
    times: int = 1
    skip: int = 0  # matching lines passed unchanged first (e.g. the runner's setup APPENDs)
    connection: int | None = None  # only on this client connection (1-based, in accept order)


class MutatingProxy:
    """Listen on 127.0.0.1:<ephemeral>; each client connection gets its own upstream connection."""

    def __init__(self, upstream: tuple[str, int], mutations: list[Mutation]) -> None:
        self.upstream = upstream
        self.mutations = mutations
        self.applied: list[bytes] = []  # original lines that were rewritten
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._accepted = 0

    def __enter__(self) -> MutatingProxy:
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
            threading.Thread(target=self._pump_raw, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_lines, args=(server, client, index), daemon=True).start()

    def _pump_raw(self, source: socket.socket, sink: socket.socket) -> None:
        """Client to server: untouched."""
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        _close(sink)

    def _pump_lines(self, source: socket.socket, sink: socket.socket, index: int) -> None:
        """Server to client: whole lines, rewritten while mutations remain; then untouched."""
        pending = b""
        try:
            while chunk := source.recv(65536):
                if not self._active():
                    sink.sendall(pending + chunk)
                    pending = b""
                    continue
                pending += chunk
                cut = pending.rfind(b"\n") + 1
                lines, pending = pending[:cut], pending[cut:]
                sink.sendall(b"".join(self._rewrite(line, index) for line in lines.splitlines(keepends=True)))
        except OSError:
            pass
        _close(sink)

    def _active(self) -> bool:
        with self._lock:
            return any(mutation.times > 0 for mutation in self.mutations)

    def _rewrite(self, line: bytes, index: int) -> bytes:
        body = line.removesuffix(b"\r\n")
        with self._lock:
            for mutation in self.mutations:
                if mutation.times <= 0 or mutation.connection not in (None, index):
                    continue
                match = re.fullmatch(mutation.pattern, body, re.DOTALL)
                if match is not None and mutation.skip > 0:
                    mutation.skip -= 1
                elif match is not None:
                    mutation.times -= 1
                    self.applied.append(body)
                    return match.expand(mutation.replacement) + b"\r\n"
        return line


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

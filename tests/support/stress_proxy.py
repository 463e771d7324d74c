"""A TCP proxy that removes chosen server responses, to prove the stress
checker notices a server that forgets to send them.

    with FilteringProxy(("127.0.0.1", port), make_filter) as proxy:
        run_stress("127.0.0.1", proxy.port, config)

Client-to-server bytes pass unchanged. Server-to-client bytes are cut into
CRLF lines and each line goes through that connection's filter (a fresh
one per connection from ``make_filter``); a line for which it returns True
is dropped. Literals in responses are not special-cased: the stress client
never fetches anything that has one.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable

LineFilter = Callable[[bytes], bool]  # True: drop the line (with its CRLF)


class FilteringProxy:
    def __init__(self, upstream: tuple[str, int], make_filter: Callable[[], LineFilter]) -> None:
        self.upstream = upstream
        self.make_filter = make_filter
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.dropped: list[bytes] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> FilteringProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client), daemon=True).start()

    @staticmethod
    def _upstream(client: socket.socket, server: socket.socket) -> None:
        try:
            while chunk := client.recv(65536):
                server.sendall(chunk)
            server.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        keep_or_drop = self.make_filter()
        buffer = b""
        try:
            while chunk := server.recv(65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\r\n")
                kept = bytearray()
                for line in lines:
                    if keep_or_drop(line):
                        with self._lock:
                            self.dropped.append(line)
                    else:
                        kept += line + b"\r\n"
                client.sendall(bytes(kept))
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

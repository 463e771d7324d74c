"""Real servers with TLS for the security tests, and small socket clients.

``secure_server`` starts ``imapd serve`` (a subprocess) on loopback with a
test certificate (``--tls-cert``/``--tls-key``), an implicit-TLS port
(``--imaps``) and users hashed with cheap argon2 parameters (the hash cost
is not what these tests test). Clients verify the certificate for real,
with the test certificate as their only trust anchor.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from imapd.core.model import Secret
from imapd.net.tls import generate_self_signed
from imapd.accounts.users import UserDatabase
from tests.support.context import cheap_hasher
from tests.support.raw import RawClient
from tests.support.server import LOOPBACK_ENDPOINT, RunningServer, running_server

IMAPS_LISTENING = re.compile(r"listening on IMAPS (\[[^\]]+\]|[^\s:]+):(\d+)")
FAST = ["--failed-login-delay", "0.05", "--auth-penalty", "0"]
CHEAP_ARGON2 = "t=1,m=8,p=1"


def make_certificate(directory: Path, name: str = "cert") -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 and its key."""
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    generate_self_signed(cert, key, "localhost")
    return cert, key


def client_context(cafile: Path) -> ssl.SSLContext:
    """A strict client: verifies the chain and the host name."""
    return ssl.create_default_context(cafile=str(cafile))


def add_users(data_dir: Path, users: dict[str, str]) -> UserDatabase:
    db = UserDatabase.in_data_dir(data_dir, hasher=cheap_hasher())
    for name, password in users.items():
        db.add(name, Secret(password.encode()))
    return db


@dataclass
class SecureServer:
    server: RunningServer
    imaps_port: int | None
    cert: Path
    key: Path

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def context(self) -> ssl.SSLContext:
        return client_context(self.cert)

    def log(self) -> str:
        return self.server.log()

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.server.log())
            if match:
                return match
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} not logged:\n{self.server.log()}")


@contextlib.contextmanager
def secure_server(
    tmp_path: Path,
    users: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    *,
    imaps: bool = True,
    certificate: bool = True,
) -> Iterator[SecureServer]:
    data_dir = tmp_path / "imapd-data"
    add_users(data_dir, users if users is not None else {"alice": "wonderland"})
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir(exist_ok=True)
    cert, key = make_certificate(cert_dir)
    args = [*FAST]
    if certificate:
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    args += ["--imaps", LOOPBACK_ENDPOINT if imaps else "none", *extra_args]
    with running_server(tmp_path, {}, args) as server:
        secure = SecureServer(server, None, cert, key)
        if imaps:
            match = secure.wait_for_log(IMAPS_LISTENING.pattern)
            secure.imaps_port = int(match.group(2))
        if not certificate:
            secure.cert = data_dir / "tls" / "selfsigned-cert.pem"
        yield secure


class Raw(RawClient):
    """A line-oriented client on a plain or TLS socket."""

    def __init__(self, host: str, port: int, source: str | None = None, timeout: float = 10) -> None:
        super().__init__(host, port, source=source, timeout=timeout)

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until_tagged(tag)

    def start_tls(self, context: ssl.SSLContext, hostname: str = "localhost") -> None:
        """Wrap the socket; whatever was buffered in clear text is dropped
        (a well-behaved client has none)."""
        assert self.buffer == b"", self.buffer
        self.sock = context.wrap_socket(self.sock, server_hostname=hostname)

    def closed_by_server(self, timeout: float = 10) -> bool:
        """True when the server closes the connection (EOF) in time."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (TimeoutError, socket.timeout):
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True

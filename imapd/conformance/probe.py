"""Before any script runs: can the server be reached, and does it accept the logins?

Without this check an operator's mistake (a wrong port, a wrong password)
would show as every script failing "initialization failed", which reads like
a broken server. ``imapd conformance`` turns a ``ServerUnusable`` into one
line and exit status 2 instead.
"""

from __future__ import annotations

from .connection import Connection, ConnectionClosed, Response, ResponseTimeout, TlsError, ViewError
from .executor import RunnerConfig
from .preparation import imap_quote


class ServerUnusable(Exception):
    """The server cannot be used for the run: unreachable, no IMAP greeting, TLS or login refused."""


def check_server(config: RunnerConfig) -> None:
    """Connect, (STARTTLS,) LOGIN as each configured user, LOGOUT; raises ServerUnusable."""
    users = [config.user] + ([config.user2] if config.user2 else [])
    for user in users:
        _check_login(config, user)


def _check_login(config: RunnerConfig, user: str) -> None:
    where = f"{config.host}:{config.port}"
    implicit = config.context() if config.security == "tls" else None
    conn = Connection(1, config.host, config.port, config.timeout, tls_context=implicit)
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise ServerUnusable(f"cannot connect to {where}: {exc.strerror or exc}") from None
        greeting = conn.read_response()
        if greeting.kind != "untagged" or greeting.status not in (b"OK", b"PREAUTH"):
            raise ServerUnusable(f"{where} did not greet like an IMAP server: {greeting.display()[:200]}")
        if config.security == "starttls":
            if greeting.status == b"PREAUTH":
                raise ServerUnusable(f"{where} sent PREAUTH: STARTTLS is impossible (RFC 3501 §6.2.1)")
            reply = _command(conn, b"STARTTLS")
            if reply.status != b"OK":
                raise ServerUnusable(f"STARTTLS refused by {where}: {reply.display()[:200]}")
            conn.start_tls(config.context())
        if greeting.status == b"OK":
            login = b"LOGIN %s %s" % (imap_quote(user.encode("utf-8")), imap_quote(config.password.encode("utf-8")))
            reply = _command(conn, login)
            if reply.status != b"OK":
                text = reply.display().split(" ", 2)[-1][:200]
                raise ServerUnusable(f"login refused for {user} at {where}: {text}")
        try:
            _command(conn, b"LOGOUT")
        except (ConnectionClosed, ResponseTimeout):
            pass  # a server may close right after its BYE: the logins were all we needed
    except TlsError as exc:
        raise ServerUnusable(str(exc)) from None
    except (ConnectionClosed, ResponseTimeout, ViewError) as exc:
        raise ServerUnusable(f"{where}: {exc}") from None
    finally:
        conn.close()


def _command(conn: Connection, text: bytes) -> Response:
    """Send one command and return its tagged reply (untagged ones are not needed here)."""
    tag = conn.next_tag()
    conn.send(tag + b" " + text + b"\r\n")
    while True:
        response = conn.read_response()
        if response.kind == "tagged" and response.tag == tag:
            return response

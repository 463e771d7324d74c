"""Test setup: connections, login, capabilities, mailbox preparation (conformance README §6).

Deviation, documented in docs/conformance.md: for ``state: nonauth`` scripts
imaptest checks no capabilities at all; this runner checks ``capabilities:``
against the pre-login capability list (greeting code or CAPABILITY) instead.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from .connection import Connection, ConnectionClosed, Response, ResponseTimeout, TlsError, ViewError
from .report import Outcome
from .tokens import ArgKind, printable

if TYPE_CHECKING:
    from .executor import TestRun


class SetupFailed(Exception):
    """A setup command failed: the test fails with "initialization failed"."""

    def __init__(self, message: str, connection: int, command: str, received: list[str]) -> None:
        super().__init__(message)
        self.connection = connection
        self.command = command
        self.received = received


class SetupSkipped(Exception):
    """The server lacks a required capability, or user2 is needed but not configured."""


def imap_quote(text: bytes) -> bytes:
    """A quoted string with ``\\`` and ``"`` escaped."""
    return b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def decode_mutf7(name: bytes) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3) to text; invalid input is returned as latin-1."""
    out: list[str] = []
    pos = 0
    try:
        while pos < len(name):
            if name[pos : pos + 1] != b"&":
                out.append(chr(name[pos]))
                pos += 1
                continue
            end = name.index(b"-", pos)
            chunk = name[pos + 1 : end]
            if not chunk:
                out.append("&")
            else:
                padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
                out.append(base64.b64decode(padded).decode("utf-16-be"))
            pos = end + 1
    except (ValueError, UnicodeDecodeError):
        return name.decode("latin-1")
    return "".join(out)


_URL_SAFE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@")


def mailbox_url(mailbox: bytes) -> bytes:
    """``$mailbox_url``: mUTF-7 → UTF-8, URL-path-escaped with ``;`` escaped too (§9)."""
    out = bytearray()
    for byte in decode_mutf7(mailbox).encode("utf-8"):
        if byte in _URL_SAFE:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def define_variables(run: TestRun) -> None:
    """Predefined variables: ``$user`` … for connection 1, ``$user2`` … for connection 2, etc."""
    for index, login in run.logins.items():
        suffix = "" if index == 1 else str(index)
        user = login.encode("utf-8")
        values = run.variables.values
        values["user" + suffix] = user
        values["username" + suffix] = user.split(b"@", 1)[0]
        values["domain" + suffix] = user.split(b"@", 1)[1] if b"@" in user else run.config.host.encode()
        values["password" + suffix] = run.config.password.encode("utf-8")
    run.variables.values["mailbox"] = run.mailbox
    run.variables.values["mailbox_url"] = mailbox_url(run.mailbox)


def choose_logins(run: TestRun) -> dict[int, str]:
    """Connection i logs in as ``user i:`` if set, else as the main user (§6 step 1)."""
    logins: dict[int, str] = {}
    for index in range(1, run.script.connections + 1):
        wanted = run.script.users.get(index)
        if wanted in ("$user2", "${user2}"):
            if run.config.user2 is None:
                raise SetupSkipped("the script needs a second user (user2) but none is configured")
            logins[index] = run.config.user2
        else:
            logins[index] = wanted if wanted is not None else run.config.user
    return logins


def setup_command(run: TestRun, conn: Connection, text: bytes, *, allow_no: bool = False) -> tuple[Response, list[Response]]:
    """Send one setup command and wait for its tagged reply; untagged responses update the view."""
    tag = conn.next_tag()
    untagged: list[Response] = []
    received: list[str] = []
    tagged: list[Response] = []

    def handle(response: Response) -> None:
        received.append(response.display())
        run.trace(f"S{conn.index}: {response.display()}")
        if response.kind == "untagged":
            conn.track_untagged(response)
            untagged.append(response)
        elif response.kind == "tagged" and response.tag == tag:
            tagged.append(response)

    shown = printable(text)
    run.trace(f"C{conn.index}: {tag.decode()} {shown}")
    try:
        conn.send_command(tag, text, literal_plus=run.has_capability("LITERAL+"), on_response=handle)
        while not tagged:
            handle(conn.read_response())
    except (ConnectionClosed, ResponseTimeout, ViewError) as exc:
        raise SetupFailed(f"initialization failed: {exc}", conn.index, shown, received) from None
    reply = tagged[0]
    if reply.status != b"OK" and not (allow_no and reply.status == b"NO"):
        raise SetupFailed(f"initialization failed: {shown.split(' ')[0]} was answered {reply.display()}", conn.index, shown, received)
    return reply, untagged


def _capabilities_from_code(response: Response) -> set[str] | None:
    """Tokens of a ``[CAPABILITY …]`` response code in an OK/PREAUTH response."""
    args = response.args
    if len(args) < 2 or args[1].kind is not ArgKind.ATOM or args[1].text.upper() != b"[CAPABILITY":
        return None
    tokens: set[str] = set()
    for arg in args[2:]:
        if not arg.is_text:
            break
        text = arg.text
        done = text.endswith(b"]")
        if done:
            text = text[:-1]
        if text:
            tokens.add(text.decode("utf-8", "replace").upper())
        if done:
            return tokens
    return tokens


def _query_capabilities(run: TestRun, conn: Connection) -> set[str]:
    _, untagged = setup_command(run, conn, b"CAPABILITY")
    tokens: set[str] = set()
    for response in untagged:
        args = response.args
        if args and args[0].kind is ArgKind.ATOM and args[0].text.upper() == b"CAPABILITY":
            tokens |= {arg.text.decode("utf-8", "replace").upper() for arg in args[1:] if arg.is_text}
    return tokens


def _check_capabilities(run: TestRun, capabilities: set[str], when: str) -> None:
    missing = [cap for cap in run.script.capabilities if cap.upper() not in capabilities]
    if missing:
        raise SetupSkipped(f"server lacks capability {' '.join(missing)} ({when} CAPABILITY)")


def prepare(run: TestRun) -> None:
    """Run README §6 steps 1–8 up to the script's ``state:``; raises SetupFailed/SetupSkipped."""
    preauth = _connect_all(run)
    if run.script.state == "nonauth":
        if run.script.capabilities:
            greeting_caps = run.greeting_capabilities
            caps = greeting_caps if greeting_caps is not None else _query_capabilities(run, run.connections[0])
            run.capabilities = caps
            _check_capabilities(run, caps, "pre-login")
        return
    login_caps: set[str] | None = None
    for conn in run.connections:
        if conn.index in preauth:
            continue
        user = run.logins[conn.index].encode("utf-8")
        reply, _ = setup_command(run, conn, b"LOGIN %s %s" % (imap_quote(user), imap_quote(run.config.password.encode("utf-8"))))
        if conn.index == 1:
            login_caps = _capabilities_from_code(reply)
    first = run.connections[0]
    run.capabilities = login_caps if login_caps is not None else _query_capabilities(run, first)
    _check_capabilities(run, run.capabilities, "post-login")
    _delete_old_mailboxes(run, first)
    if run.script.state == "auth":
        return
    if run.mailbox.upper() != b"INBOX":
        setup_command(run, first, b"CREATE " + imap_quote(run.mailbox))
    if run.script.state == "created":
        return
    count = len(run.source()) if run.script.messages is None else run.script.messages
    for _ in range(count):
        message = run.source().next_message()
        date = message.internal_date.encode()
        text = b"APPEND %s \"%s\" {%d}\r\n%s" % (imap_quote(run.mailbox), date, len(message.data), message.data)
        setup_command(run, first, text)
    if run.script.state == "appended":
        return
    for conn in run.connections:
        select = b"SELECT " + imap_quote(run.mailbox)
        conn.track_sent(select)
        setup_command(run, conn, select)


def _connect_all(run: TestRun) -> set[int]:
    """Open every connection and read its greeting; returns the PREAUTH ones."""
    preauth: set[int] = set()
    for conn in run.connections:
        try:
            conn.connect()
            greeting = conn.read_response()
        except (OSError, ConnectionClosed, ResponseTimeout, TlsError) as exc:
            raise SetupFailed(f"initialization failed: no greeting: {exc}", conn.index, "", []) from None
        run.trace(f"S{conn.index}: {greeting.display()}")
        if greeting.kind != "untagged" or greeting.status not in (b"OK", b"PREAUTH"):
            raise SetupFailed("initialization failed: bad greeting", conn.index, "", [greeting.display()])
        if greeting.status == b"PREAUTH":
            preauth.add(conn.index)
        if conn.index == 1:
            run.greeting_capabilities = _capabilities_from_code(greeting)
        if run.config.security == "starttls" and greeting.status == b"OK":
            _start_tls(run, conn)
    return preauth


def _start_tls(run: TestRun, conn: Connection) -> None:
    """STARTTLS, then the handshake; what the greeting advertised is forgotten (RFC 3501 §6.2.1)."""
    setup_command(run, conn, b"STARTTLS")
    try:
        conn.start_tls(run.config.context())
    except TlsError as exc:
        raise SetupFailed(f"initialization failed: {exc}", conn.index, "STARTTLS", []) from None
    if conn.index == 1:
        run.greeting_capabilities = None


def _delete_old_mailboxes(run: TestRun, conn: Connection) -> None:
    """LIST/LSUB ``imaptest*``, then DELETE and UNSUBSCRIBE what they return; NO is ignored (§6 step 5)."""
    mask = imap_quote(run.mailbox + b"*")
    _, listed = setup_command(run, conn, b'LIST "" ' + mask)
    _, subscribed = setup_command(run, conn, b'LSUB "" ' + mask)
    for command, responses in ((b"DELETE", listed), (b"UNSUBSCRIBE", subscribed)):
        names = [_listed_name(response) for response in responses]
        for name in sorted({n for n in names if n is not None}, key=lambda n: n.lower(), reverse=True):
            setup_command(run, conn, command + b" " + imap_quote(name), allow_no=True)


def _listed_name(response: Response) -> bytes | None:
    """The mailbox of ``* LIST|LSUB (flags) delimiter name``."""
    args = response.args
    if len(args) < 4 or args[0].kind is not ArgKind.ATOM or args[0].text.upper() not in (b"LIST", b"LSUB"):
        return None
    if args[1].kind is not ArgKind.LIST or not (args[2].is_text or args[2].kind is ArgKind.NIL):
        return None
    return args[3].text if args[3].is_text else None


def skip_and_logout(run: TestRun, reason: str) -> None:
    """Mark skipped and send LOGOUT on every open connection (imaptest's test_skip)."""
    run.result.outcome = Outcome.SKIPPED
    run.result.skip_reason = reason
    for conn in run.connections:
        if conn.sock is None or conn.closed:
            continue
        try:
            setup_command(run, conn, b"LOGOUT")
        except SetupFailed:
            pass

"""SCRAM with real clients over real sockets: GNU SASL's ``gsasl`` command
(the library Debian's mutt uses; Debian package ``gsasl``, which
``.ci/run`` installs) and small Python clients for what gsasl cannot be
made to send.

GNU SASL always sends an authorization identity (``n,a=USER,...``, RFC 5802
§7), binds SCRAM-SHA-256-PLUS to ``tls-exporter`` on TLS 1.3 (RFC 9266)
and, on its own, picks -PLUS whenever the server offers it. The Python
clients cover ``tls-server-end-point`` (RFC 5929), TLS 1.2, and the
refusals (RFC 5802 §6 downgrade, tls-unique).

SCRAM-SHA-256-PLUS is an operator opt-in (``--scram-plus``): the
``server`` fixture turns it on, ``default_server`` runs with the defaults,
where TLS connections offer PLAIN and SCRAM-SHA-256 only
(docs/security.md; tests/e2e/test_mutt.py shows why).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.security.helpers import FAST, Raw, SecureServer, client_context, make_certificate, secure_server
from tests.security.test_scram import Credentials
from tests.support import capabilities as caps
from tests.support.pinned_skips import Pin, require_tool
from tests.support.server import running_server

GSASL = shutil.which("gsasl")
MISSING = "gsasl (Debian package gsasl) is not installed; .ci/run installs it"
PINNED_SKIPS = (Pin.exact(MISSING, "the gsasl client tests need the gsasl command", in_ci=False),)

# On a TLS connection before login with --scram-plus: SCRAM-SHA-256-PLUS
# joins, after SCRAM-SHA-256 (RFC 5802 §6); no STARTTLS (RFC 3501 §6.2.1).
TLS_PRE_LOGIN = b"IMAP4rev1 LITERAL+ " + caps.EVERY_STATE + (
    b" SASL-IR AUTH=PLAIN AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-256-PLUS")
# The same with the default options: no -PLUS, on TLS too.
TLS_PRE_LOGIN_DEFAULT = b"IMAP4rev1 LITERAL+ " + caps.EVERY_STATE + (
    b" SASL-IR AUTH=PLAIN AUTH=SCRAM-SHA-256")
USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """The operator opted in to channel binding."""
    with secure_server(tmp_path_factory.mktemp("gsasl"), USERS, ["--scram-plus"]) as s:
        yield s


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """Default options: SCRAM-SHA-256-PLUS is not offered anywhere."""
    with secure_server(tmp_path_factory.mktemp("gsasl-default"), USERS) as s:
        yield s


@pytest.fixture
def gsasl() -> str:
    """The gsasl command. Missing: a pinned skip, but a failure under CI."""
    return require_tool(GSASL, MISSING)


def run_gsasl(gsasl: str, server: SecureServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``gsasl --imap`` against the plain port, trusting the test certificate;
    ``--verbose`` echoes the IMAP dialogue on stdout."""
    return subprocess.run(
        [gsasl, "--imap", "--verbose", "--x509-ca-file", str(server.cert), "--hostname", "localhost",
         *args, server.host, str(server.port)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def client_first(dialogue: str) -> str:
    """The decoded client-first-message gsasl sent after AUTHENTICATE."""
    lines = dialogue.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(". AUTHENTICATE "))
    assert lines[index + 1] == "+ "
    return base64.b64decode(lines[index + 2]).decode()


def test_gsasl_scram_with_authzid_equal_to_the_user(gsasl: str, server: SecureServer) -> None:
    result = run_gsasl(gsasl, server, "--no-starttls", "-m", "SCRAM-SHA-256",
                       "-a", "alice", "-z", "alice", "-p", "wonderland")
    assert result.returncode == 0, result.stdout + result.stderr
    assert client_first(result.stdout).startswith("n,a=alice,n=alice,r=")
    assert re.search(r"^\. OK \[CAPABILITY [^\]]*\] Logged in$", result.stdout, re.M)


def test_gsasl_scram_with_another_authzid_is_authorizationfailed(gsasl: str, server: SecureServer) -> None:
    result = run_gsasl(gsasl, server, "--no-starttls", "-m", "SCRAM-SHA-256",
                       "-a", "alice", "-z", "bob", "-p", "wonderland")
    assert result.returncode != 0
    assert client_first(result.stdout).startswith("n,a=bob,n=alice,r=")
    assert ". NO [AUTHORIZATIONFAILED] Authorization identity not allowed" in result.stdout.splitlines()


def test_gsasl_plus_over_starttls_binds_tls_exporter(gsasl: str, server: SecureServer) -> None:
    result = run_gsasl(gsasl, server, "--starttls", "-m", "SCRAM-SHA-256-PLUS",
                       "-a", "alice", "-z", "alice", "-p", "wonderland")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(TLS1.3)" in result.stderr  # gsasl's session report: tls-exporter needs 1.3
    assert "* CAPABILITY " + TLS_PRE_LOGIN.decode() in result.stdout.splitlines()
    assert client_first(result.stdout).startswith("p=tls-exporter,a=alice,n=alice,r=")
    assert re.search(r"^\. OK \[CAPABILITY [^\]]*\] Logged in$", result.stdout, re.M)


def test_gsasl_picks_plus_by_itself_and_a_wrong_password_fails(gsasl: str, server: SecureServer) -> None:
    good = run_gsasl(gsasl, server, "--starttls", "-a", "bob", "-p", "builder")
    assert good.returncode == 0, good.stdout + good.stderr
    assert ". AUTHENTICATE SCRAM-SHA-256-PLUS" in good.stdout.splitlines()
    bad = run_gsasl(gsasl, server, "--starttls", "-a", "bob", "-p", "wrong")
    assert bad.returncode != 0
    assert ". NO [AUTHENTICATIONFAILED] Authentication failed" in bad.stdout.splitlines()


# --- Python clients on the same server ---------------------------------------------

def b64(text: str | bytes) -> bytes:
    return base64.b64encode(text.encode() if isinstance(text, str) else text)


def scram_login(raw: Raw, mechanism: bytes, header: str, cbind_data: bytes = b"") -> list[bytes]:
    """One SCRAM exchange as alice; the lines after the client-final."""
    bare = "n=alice,r=pyclient0123"
    raw.send(b"a AUTHENTICATE " + mechanism + b" " + b64(header + bare) + b"\r\n")
    line = raw.line()
    if not line.startswith(b"+ "):
        return [line]
    server_first = base64.b64decode(line[2:-2]).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    creds = Credentials(b"wonderland", base64.b64decode(fields["s"]), int(fields["i"]))
    final, verifier = creds.final(bare, server_first, header.encode() + cbind_data)
    raw.send(b64(final) + b"\r\n")
    line = raw.line()
    if line != b"+ " + b64(verifier) + b"\r\n":
        return [line]
    raw.send(b"\r\n")
    return raw.until_tagged(b"a")


def implicit_tls(server: SecureServer, version: ssl.TLSVersion | None = None) -> Raw:
    assert server.imaps_port is not None
    raw = Raw(server.host, server.imaps_port)
    context = server.context()
    if version is not None:
        context.maximum_version = version
    raw.start_tls(context)
    return raw


def server_end_point(raw: Raw) -> bytes:
    """RFC 5929 §4.1 from the client's side: the test certificate is
    ECDSA with SHA-256, so SHA-256 of its DER."""
    sock = raw.sock
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest()


def test_implicit_tls_lists_plus_last_and_binds_tls_server_end_point(server: SecureServer) -> None:
    raw = implicit_tls(server)
    assert raw.line() == b"* OK [CAPABILITY " + TLS_PRE_LOGIN + b"] imapd ready\r\n"
    lines = scram_login(raw, b"SCRAM-SHA-256-PLUS", "p=tls-server-end-point,a=alice,", server_end_point(raw))
    assert lines[-1].startswith(b"a OK [CAPABILITY ") and lines[-1].endswith(b"] Logged in\r\n")
    raw.close()


def test_starttls_capability_list_offers_plus(server: SecureServer) -> None:
    raw = Raw(server.host, server.port)
    assert raw.line() == b"* OK [CAPABILITY " + caps.PRE_LOGIN_STARTTLS + b"] imapd ready\r\n"
    assert raw.command(b"p", b"AUTHENTICATE SCRAM-SHA-256-PLUS " + b64("p=tls-exporter,,n=alice,r=x")) == [
        b"p NO SCRAM-SHA-256-PLUS needs a TLS connection (STARTTLS first)\r\n"]
    assert raw.command(b"s", b"STARTTLS") == [b"s OK Begin TLS negotiation now\r\n"]
    raw.start_tls(server.context())
    assert raw.command(b"c", b"CAPABILITY") == [
        b"* CAPABILITY " + TLS_PRE_LOGIN + b"\r\n", b"c OK CAPABILITY completed\r\n"]
    raw.close()


@pytest.mark.parametrize("mechanism,header,answer", [
    (b"SCRAM-SHA-256", "y,,",  # RFC 5802 §6: the client was told there is no -PLUS
     b"a NO [AUTHENTICATIONFAILED] channel binding is supported here: use SCRAM-SHA-256-PLUS\r\n"),
    (b"SCRAM-SHA-256-PLUS", "p=tls-unique,,",  # RFC 9266: not defined for TLS 1.3
     b"a NO [AUTHENTICATIONFAILED] channel binding type tls-unique is not supported here; "
     b"use tls-exporter or tls-server-end-point\r\n"),
    (b"SCRAM-SHA-256-PLUS", "n,,",
     b"a NO [AUTHENTICATIONFAILED] SCRAM-SHA-256-PLUS needs channel binding (p=type)\r\n"),
])
def test_refusals_on_tls(server: SecureServer, mechanism: bytes, header: str, answer: bytes) -> None:
    raw = implicit_tls(server)
    raw.line()
    assert scram_login(raw, mechanism, header) == [answer]
    raw.close()


def test_plain_scram_without_binding_still_works_on_tls(server: SecureServer) -> None:
    """scramp, mutt and others send n: they do not bind, and need not."""
    raw = implicit_tls(server)
    raw.line()
    assert scram_login(raw, b"SCRAM-SHA-256", "n,a=alice,")[-1].endswith(b"] Logged in\r\n")
    raw.close()


def test_tls12_offers_only_tls_server_end_point(server: SecureServer) -> None:
    """tls-exporter needs TLS 1.3 here (RFC 9266 §3: on 1.2 only with the
    extended master secret, which the server cannot confirm)."""
    raw = implicit_tls(server, ssl.TLSVersion.TLSv1_2)
    raw.line()
    sock = raw.sock
    assert isinstance(sock, ssl.SSLSocket) and sock.version() == "TLSv1.2"
    assert scram_login(raw, b"SCRAM-SHA-256-PLUS", "p=tls-exporter,,") == [
        b"a NO [AUTHENTICATIONFAILED] channel binding type tls-exporter is not supported here; "
        b"use tls-server-end-point\r\n"]
    lines = scram_login(raw, b"SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,", server_end_point(raw))
    assert lines[-1].endswith(b"] Logged in\r\n")
    raw.close()


def test_binding_data_of_another_channel_is_refused(server: SecureServer) -> None:
    """What a man in the middle would send: the client's binding data is
    that of its own TLS channel (here: a hash of some other certificate)."""
    raw = implicit_tls(server)
    raw.line()
    other = hashlib.sha256(b"another certificate").digest()
    assert scram_login(raw, b"SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,", other) == [
        b"a NO [AUTHENTICATIONFAILED] channel binding (c=) does not match this connection\r\n"]
    raw.close()


# --- default options: no SCRAM-SHA-256-PLUS --------------------------------------

def test_default_tls_offers_no_plus_and_refuses_it_as_unsupported(default_server: SecureServer) -> None:
    """Without --scram-plus an implicit-TLS and a STARTTLS connection list
    PLAIN and SCRAM-SHA-256 only, and ``AUTHENTICATE SCRAM-SHA-256-PLUS`` is
    an unsupported mechanism: a tagged NO at once, no continuation
    (RFC 3501 §6.2.2), with or without an initial response (RFC 4959)."""
    raw = implicit_tls(default_server)
    assert raw.line() == b"* OK [CAPABILITY " + TLS_PRE_LOGIN_DEFAULT + b"] imapd ready\r\n"
    first = b64("p=tls-exporter,a=alice,n=alice,r=x")
    assert raw.command(b"p", b"AUTHENTICATE SCRAM-SHA-256-PLUS " + first) == [
        b"p NO Unsupported authentication mechanism\r\n"]
    assert raw.command(b"q", b"AUTHENTICATE SCRAM-SHA-256-PLUS") == [
        b"q NO Unsupported authentication mechanism\r\n"]
    # The connection is still good for the mechanisms that are offered.
    assert scram_login(raw, b"SCRAM-SHA-256", "n,a=alice,")[-1].endswith(b"] Logged in\r\n")
    raw.close()
    raw = Raw(default_server.host, default_server.port)
    assert raw.line() == b"* OK [CAPABILITY " + caps.PRE_LOGIN_STARTTLS + b"] imapd ready\r\n"
    assert raw.command(b"s", b"STARTTLS") == [b"s OK Begin TLS negotiation now\r\n"]
    raw.start_tls(default_server.context())
    assert raw.command(b"c", b"CAPABILITY") == [
        b"* CAPABILITY " + TLS_PRE_LOGIN_DEFAULT + b"\r\n", b"c OK CAPABILITY completed\r\n"]
    assert raw.command(b"p", b"AUTHENTICATE SCRAM-SHA-256-PLUS " + b64("p=tls-exporter,,n=alice,r=x")) == [
        b"p NO Unsupported authentication mechanism\r\n"]
    raw.close()


def test_default_tls_accepts_y_because_plus_was_not_offered(default_server: SecureServer) -> None:
    """RFC 5802 §6: ``y`` says "I could bind, but you did not offer -PLUS".
    That is the truth here, so it logs in; with --scram-plus the same
    message is a downgrade and is refused (``test_refusals_on_tls``)."""
    raw = implicit_tls(default_server)
    raw.line()
    assert scram_login(raw, b"SCRAM-SHA-256", "y,a=alice,")[-1].endswith(b"] Logged in\r\n")
    raw.close()


def test_gsasl_without_binding_data_picks_scram_sha_256_on_tls_by_default(
    gsasl: str, default_server: SecureServer
) -> None:
    """GNU SASL left to choose, without channel binding data (``--no-cb``:
    what mutt gives it): SCRAM-SHA-256 with an authorization identity over
    STARTTLS. (With binding data and no -PLUS offered, gsasl 2.2.0 stops by
    itself after ``AUTHENTICATE SCRAM-SHA-256`` with "Error authenticating
    user", sending nothing: a client-side choice, not this server's.)"""
    result = run_gsasl(gsasl, default_server, "--starttls", "--no-cb",
                       "-a", "bob", "-z", "bob", "-p", "builder")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "* CAPABILITY " + TLS_PRE_LOGIN_DEFAULT.decode() in result.stdout.splitlines()
    assert ". AUTHENTICATE SCRAM-SHA-256" in result.stdout.splitlines()
    assert client_first(result.stdout).startswith("n,a=bob,n=bob,r=")
    assert re.search(r"^\. OK \[CAPABILITY [^\]]*\] Logged in$", result.stdout, re.M)


def test_twistd_takes_scram_plus_too(tmp_path: Path) -> None:
    """``twistd imapd`` shares ``imapd serve``'s options: --scram-plus there
    offers -PLUS after STARTTLS (and only there: not before it)."""
    cert, key = make_certificate(tmp_path)
    args = [*FAST, "--tls-cert", str(cert), "--tls-key", str(key), "--imaps", "none", "--scram-plus"]
    with running_server(tmp_path, {"alice": "wonderland"}, args, twistd=True) as server:
        raw = Raw(server.host, server.port)
        assert raw.line() == b"* OK [CAPABILITY " + caps.PRE_LOGIN_STARTTLS + b"] imapd ready\r\n"
        assert raw.command(b"s", b"STARTTLS") == [b"s OK Begin TLS negotiation now\r\n"]
        raw.start_tls(client_context(cert))
        assert raw.command(b"c", b"CAPABILITY") == [
            b"* CAPABILITY " + TLS_PRE_LOGIN + b"\r\n", b"c OK CAPABILITY completed\r\n"]
        raw.close()

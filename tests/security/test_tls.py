"""TLS over real sockets: STARTTLS (RFC 3501 §6.2.1) with stdlib imaplib and
raw sockets, implicit TLS (``--imaps``, RFC 8314), the command-injection
class of bugs (CVE-2011-0411), modern protocol/cipher defaults, the
self-signed default certificate and SIGHUP reload without dropping
connections."""

from __future__ import annotations

import imaplib
import os
import signal
import socket
import ssl
import stat
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509

from tests.security.helpers import Raw, SecureServer, make_certificate, secure_server
from tests.support.server import run_cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    with secure_server(tmp_path_factory.mktemp("tls")) as s:
        yield s


def caps_of(imap: imaplib.IMAP4) -> set[str]:
    return set(imap.capabilities)


def test_starttls_with_imaplib_verifies_the_certificate_and_refreshes_capabilities(
    server: SecureServer,
) -> None:
    imap = imaplib.IMAP4(server.host, server.port)
    assert "STARTTLS" in caps_of(imap)
    typ, _ = imap.starttls(server.context())
    assert typ == "OK"
    # imaplib re-requests CAPABILITY after STARTTLS (RFC 3501 §6.2.1); the
    # new list no longer offers STARTTLS and now offers AUTH=.
    caps = caps_of(imap)
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps
    sock = imap.sock
    assert isinstance(sock, ssl.SSLSocket)
    assert sock.version() in ("TLSv1.2", "TLSv1.3")
    assert imap.login("alice", "wonderland")[0] == "OK"
    imap.logout()


def test_starttls_ok_carries_no_capability_and_second_starttls_is_bad(server: SecureServer) -> None:
    raw = Raw(server.host, server.port)
    raw.line()
    assert raw.command(b"a", b"STARTTLS") == [b"a OK Begin TLS negotiation now\r\n"]
    raw.start_tls(server.context())
    lines = raw.command(b"b", b"CAPABILITY")
    assert b"STARTTLS" not in lines[0] and b"AUTH=PLAIN" in lines[0]
    assert raw.command(b"c", b"STARTTLS") == [b"c BAD TLS is already active\r\n"]
    raw.close()


def test_starttls_after_login_is_refused(server: SecureServer) -> None:
    raw = Raw(server.host, server.port)
    raw.line()
    assert raw.command(b"a", b"LOGIN alice wonderland")[-1].startswith(b"a OK")
    assert raw.command(b"b", b"STARTTLS") == [b"b BAD Command not allowed in this state\r\n"]
    raw.close()


@pytest.mark.parametrize("injected", [
    b"b CAPABILITY\r\n",
    b"b LOGIN alice wonderland\r\n",
    b"b LOGIN alice {10}\r\nwonderland\r\n",  # with a literal, half a command after
    b"b NOOP\r\nc LOGIN alice wonderland\r\nd NOOP",  # and bytes with no line end
])
def test_commands_pipelined_after_starttls_in_the_same_packet_are_discarded(
    server: SecureServer, injected: bytes
) -> None:
    """CVE-2011-0411 class: bytes after STARTTLS in the same packet were sent
    in clear text and may come from a man in the middle. The server must
    not run them under TLS, and must not have answered them before."""
    raw = Raw(server.host, server.port)
    raw.line()
    raw.send(b"a STARTTLS\r\n" + injected)
    assert raw.line() == b"a OK Begin TLS negotiation now\r\n"
    raw.start_tls(server.context())  # fails if any clear-text reply followed the OK
    lines = raw.command(b"z", b"CAPABILITY")
    assert lines[0].startswith(b"* CAPABILITY ") and b"AUTH=PLAIN" in lines[0]  # not logged in
    assert lines[1] == b"z OK CAPABILITY completed\r\n" and len(lines) == 2
    assert raw.command(b"y", b"SELECT INBOX")[-1].startswith(b"y BAD")  # still not authenticated
    raw.close()


def test_implicit_tls_port(server: SecureServer) -> None:
    assert server.imaps_port is not None
    imap = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=server.context())
    caps = caps_of(imap)
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps and "AUTH=SCRAM-SHA-256" in caps
    assert imap.login("alice", "wonderland")[0] == "OK"
    typ, _ = imap.noop()
    assert typ == "OK"
    imap.logout()


def test_implicit_tls_greeting_comes_only_after_the_handshake(server: SecureServer) -> None:
    assert server.imaps_port is not None
    sock = socket.create_connection((server.host, server.imaps_port), timeout=5)
    sock.sendall(b"a CAPABILITY\r\n")  # clear text to a TLS port
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    assert b"* OK" not in data and b"CAPABILITY" not in data


def tls_client(server: SecureServer, version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    context = server.context()
    context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers + ":@SECLEVEL=0")
    return context


def handshake(server: SecureServer, context: ssl.SSLContext) -> ssl.SSLSocket:
    assert server.imaps_port is not None
    sock = socket.create_connection((server.host, server.imaps_port), timeout=5)
    return context.wrap_socket(sock, server_hostname="localhost")


def test_tls12_with_a_strong_suite_is_accepted(server: SecureServer) -> None:
    context = tls_client(server, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256")
    with handshake(server, context) as tls:
        assert tls.version() == "TLSv1.2"
        assert tls.recv(100).startswith(b"* OK")


@pytest.mark.parametrize("ciphers", [
    "AES128-SHA:AES256-SHA:AES128-GCM-SHA256",  # RSA key exchange: no forward secrecy
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",  # CBC with SHA-1 MAC
    "ECDHE-ECDSA-AES128-SHA256",  # CBC
])
def test_weak_tls12_suites_are_refused(server: SecureServer, ciphers: str) -> None:
    context = tls_client(server, ssl.TLSVersion.TLSv1_2, ciphers)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(server, context).recv(1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_before_1_2_is_refused(server: SecureServer) -> None:
    """The client is made willing (security level 0, which this OpenSSL
    honours for TLS 1.1 against a willing peer), so only the server refuses."""
    context = server.context()
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as failure:
        handshake(server, context).recv(1)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(failure.value)  # the client did try


def test_first_start_without_certificate_generates_a_self_signed_one(tmp_path: Path) -> None:
    with secure_server(tmp_path, certificate=False) as server:
        server.wait_for_log("generated a self-signed TLS certificate")
        cert_path = server.data_dir / "tls" / "selfsigned-cert.pem"
        key_path = server.data_dir / "tls" / "selfsigned-key.pem"
        assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
        names = x509.load_pem_x509_certificate(cert_path.read_bytes()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert "localhost" in names
        imap = imaplib.IMAP4(server.host, server.port)
        imap.starttls(server.context())  # verifies against the generated certificate
        assert imap.login("alice", "wonderland")[0] == "OK"
        imap.logout()
    # The second start reuses it instead of generating another.
    with secure_server(tmp_path, {}, certificate=False) as server:
        server.wait_for_log("using the self-signed TLS certificate")
        assert "generated a self-signed" not in server.log()


def peer_certificate(server: SecureServer, cafile: Path) -> bytes:
    assert server.imaps_port is not None
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((server.host, server.imaps_port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return der


def test_sighup_reloads_the_certificate_without_dropping_connections(tmp_path: Path) -> None:
    with secure_server(tmp_path) as server:
        assert server.imaps_port is not None
        old = peer_certificate(server, server.cert)
        kept = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=server.context())
        kept.login("alice", "wonderland")
        # A renewal: new files in place of the old ones, then SIGHUP.
        new_cert, new_key = make_certificate(tmp_path / "certs", "renewed")
        os.replace(new_cert, server.cert)
        os.replace(new_key, server.key)
        server.server.process.send_signal(signal.SIGHUP)
        server.wait_for_log("reloaded TLS certificate")
        assert peer_certificate(server, server.cert) != old  # new connections: new cert
        assert kept.noop()[0] == "OK"  # the open connection goes on
        kept.logout()
        # A broken renewal keeps the current certificate.
        server.key.write_text("not a key")
        server.server.process.send_signal(signal.SIGHUP)
        server.wait_for_log("TLS reload failed, keeping the old certificate")
        assert peer_certificate(server, server.cert) != old
        assert server.server.process.poll() is None


def test_unusable_certificate_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = run_cli("serve", "--data", str(tmp_path / "d"), "--imap", "tcp:0:interface=127.0.0.1",
                     "--tls-cert", str(missing), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"imapd: cannot read TLS certificate {missing}")


def test_imaps_endpoint_refuses_tls_options_in_the_string(tmp_path: Path) -> None:
    result = run_cli("serve", "--data", str(tmp_path), "--imaps", "ssl:993:privateKey=k.pem", check=False)
    assert result.returncode == 2 and "--tls-cert" in result.stderr

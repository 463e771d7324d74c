"""TLS configuration pieces without sockets: endpoint translation for
``--imaps``, certificate loading errors, the generated certificate, and the
context's protocol floor."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL

from imapd.net.tls import (
    CertificateFiles, ServerTLS, TLSConfigError, build_context, ensure_certificate,
    generate_self_signed, tcp_description_for_implicit_tls,
)


@pytest.mark.parametrize("given,expected", [
    ("ssl:993", "tcp:993"),
    ("ssl:993:interface=127.0.0.1", "tcp:993:interface=127.0.0.1"),
    ("SSL:port=993", "tcp:port=993"),
    ("tcp6:993:interface=\\:\\:1", "tcp6:993:interface=\\:\\:1"),
])
def test_imaps_endpoints_become_plain_tcp_wrapped_by_us(given: str, expected: str) -> None:
    assert tcp_description_for_implicit_tls(given) == expected


@pytest.mark.parametrize("given", ["unix:/tmp/x", "ssl:993:privateKey=k.pem", "ssl:993:certKey=c.pem", "tls:x"])
def test_imaps_endpoints_refused(given: str) -> None:
    with pytest.raises(TLSConfigError):
        tcp_description_for_implicit_tls(given)


def test_generated_certificate_and_key(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    fingerprint = generate_self_signed(cert_path, key_path, "mail.example.test")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.test", "localhost"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(load_pem_private_key(key_path.read_bytes(), None), ec.EllipticCurvePrivateKey)
    assert len(fingerprint.split(":")) == 32
    assert (key_path.stat().st_mode & 0o777) == 0o600


def test_loading_errors_are_one_readable_line(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed(cert, key, "localhost")
    other_cert, other_key = tmp_path / "c2.pem", tmp_path / "k2.pem"
    generate_self_signed(other_cert, other_key, "localhost")
    with pytest.raises(TLSConfigError, match="cannot read TLS certificate .*missing: No such file"):
        build_context(CertificateFiles(tmp_path / "missing", key))
    with pytest.raises(TLSConfigError, match="cannot load TLS key"):
        build_context(CertificateFiles(cert, other_key))  # a key that does not match
    with pytest.raises(TLSConfigError, match="cannot load TLS key"):
        build_context(CertificateFiles(cert, cert))  # no key in the certificate file
    combined = tmp_path / "both.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    assert isinstance(build_context(CertificateFiles(combined, combined)), SSL.Context)
    with pytest.raises(TLSConfigError, match="--tls-key needs --tls-cert"):
        ensure_certificate(tmp_path, None, key)


def test_reload_failure_keeps_the_old_context(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed(cert, key, "localhost")
    tls = ServerTLS(CertificateFiles(cert, key))
    before = tls.getContext()
    key.write_text("garbage")
    assert not tls.reload() and tls.getContext() is before
    generate_self_signed(cert, key, "localhost")
    assert tls.reload() and tls.getContext() is not before


def test_framer_limits_can_be_raised_after_login() -> None:
    """The hook the server uses for its smaller pre-login literal limit."""
    from imapd.core.config import Limits
    from imapd.imap.wire.framer import CommandFrame, FrameError, Framer, NeedContinuation

    framer = Framer(Limits(max_literal=10))
    [refused] = framer.feed(b"a LOGIN {11}\r\n")
    assert isinstance(refused, FrameError) and refused.code == "TOOBIG"
    framer.set_limits(Limits())
    assert framer.feed(b"b LOGIN {11}\r\n") == [NeedContinuation()]
    assert framer.feed(b"01234567890 x\r\n") == [CommandFrame(b"b LOGIN {11}\r\n01234567890 x\r\n")]

"""The self-signed certificate generated in DATA/tls names the host by its
real name (issue 17 § Service): subject CN and subject alternative names
(RFC 5280 §4.2.1.6, which clients check, RFC 6125 §6.4.4) carry the fully
qualified name, the host name, localhost and the loopback addresses, even
where /etc/hosts maps the host name to "localhost" (``getfqdn()`` then
answers "localhost")."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from imapd.net.tls import ensure_certificate


def names_of(cert: Path) -> tuple[str, list[str], list[str]]:
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = [str(a) for a in alternative.get_values_for_type(x509.IPAddress)]
    return str(common), alternative.get_values_for_type(x509.DNSName), addresses


@pytest.mark.parametrize(("fqdn", "host", "expected"), [
    ("mail.example.org", "mail", ["mail.example.org", "mail", "localhost"]),
    ("localhost", "vm", ["vm", "localhost"]),                    # /etc/hosts: 127.0.0.1 vm localhost
    ("localhost.localdomain", "localhost", ["localhost"]),      # nothing better known
    ("mail.example.org.", "MAIL.example.org", ["mail.example.org", "localhost"]),
])
def test_the_generated_certificate_names_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fqdn: str, host: str, expected: list[str]
) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda name="": fqdn)
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    files = ensure_certificate(tmp_path, None, None)
    assert names_of(files.cert) == (expected[0], expected, ["127.0.0.1", "::1"])


def test_on_this_machine(tmp_path: Path) -> None:
    common, dns, _ = names_of(ensure_certificate(tmp_path, None, None).cert)
    real = socket.gethostname().lower()
    with pytest.raises(ValueError):
        ipaddress.ip_address(common)
    if real and real != "localhost":
        assert common != "localhost" and real in dns
    assert "localhost" in dns

"""Channel binding data from the TLS layer (``imapd.net.tls``):
RFC 5929 §4.1 tls-server-end-point for each kind of certificate signature,
and RFC 9266 tls-exporter on a real pyOpenSSL connection pair (TLS 1.3
only), compared with what the client side of the same connection exports."""

from __future__ import annotations

import datetime
import hashlib
import socket
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from imapd.net.tls import CertificateFiles, build_context, channel_bindings, server_end_point
from tests.security.helpers import make_certificate

NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])


def certificate(key: object, algorithm: hashes.HashAlgorithm | None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(NAME).issuer_name(NAME)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
    )
    return builder.sign(key, algorithm)  # type: ignore[arg-type]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("algorithm,digest", [
    (hashes.SHA256(), hashlib.sha256),
    (hashes.SHA384(), hashlib.sha384),
    (hashes.SHA512(), hashlib.sha512),
])
def test_server_end_point_uses_the_signature_hash(algorithm: hashes.HashAlgorithm, digest: object) -> None:
    cert = certificate(ec.generate_private_key(ec.SECP256R1()), algorithm)
    assert server_end_point(cert) == digest(der(cert)).digest()  # type: ignore[operator]


class OldSignature:
    """A certificate signed with MD5 or SHA-1 (cryptography no longer signs
    with them): only the two attributes RFC 5929 §4.1 looks at."""

    def __init__(self, algorithm: hashes.HashAlgorithm) -> None:
        self.signature_hash_algorithm = algorithm

    def public_bytes(self, encoding: serialization.Encoding) -> bytes:
        assert encoding is serialization.Encoding.DER
        return b"0\x03\x02\x01\x00 not really DER"


@pytest.mark.parametrize("algorithm", [hashes.MD5(), hashes.SHA1()])
def test_server_end_point_replaces_md5_and_sha1_by_sha256(algorithm: hashes.HashAlgorithm) -> None:
    old = cast(x509.Certificate, OldSignature(algorithm))
    assert server_end_point(old) == hashlib.sha256(b"0\x03\x02\x01\x00 not really DER").digest()


def test_server_end_point_of_an_rsa_certificate() -> None:
    cert = certificate(rsa.generate_private_key(public_exponent=65537, key_size=2048), hashes.SHA384())
    assert server_end_point(cert) == hashlib.sha384(der(cert)).digest()


def test_server_end_point_is_undefined_without_a_signature_hash() -> None:
    """Ed25519 signs without a separate hash: RFC 5929 leaves it undefined."""
    assert server_end_point(certificate(ed25519.Ed25519PrivateKey.generate(), None)) is None


def handshake(tmp_path: Path, version: int) -> tuple[SSL.Connection, SSL.Connection]:
    """A pyOpenSSL server (imapd's context) and client over a socket pair."""
    cert, key = make_certificate(tmp_path)
    server_context = build_context(CertificateFiles(cert, key))
    client_context = SSL.Context(SSL.TLS_METHOD)
    client_context.set_min_proto_version(version)
    client_context.set_max_proto_version(version)
    left, right = socket.socketpair()
    left.setblocking(False)  # each side returns WantRead instead of waiting
    right.setblocking(False)
    server = SSL.Connection(server_context, left)
    client = SSL.Connection(client_context, right)
    server.set_accept_state()
    client.set_connect_state()
    for _ in range(20):  # non-blocking dance until both finished
        done = 0
        for side in (client, server):
            try:
                side.do_handshake()
                done += 1
            except SSL.WantReadError:
                pass
        if done == 2:
            return server, client
    raise AssertionError("no handshake")


class Handle:
    """Twisted's transports expose the connection through ``getHandle``."""

    def __init__(self, connection: SSL.Connection) -> None:
        self.connection = connection

    def getHandle(self) -> SSL.Connection:
        return self.connection


def test_tls13_gives_the_exporter_and_the_certificate_hash(tmp_path: Path) -> None:
    server, client = handshake(tmp_path, SSL.TLS1_3_VERSION)
    bindings = channel_bindings(Handle(server))
    # RFC 9266 §2: label EXPORTER-Channel-Binding, no context, 32 bytes,
    # the same on both ends of the channel.
    assert bindings["tls-exporter"] == client.export_keying_material(b"EXPORTER-Channel-Binding", 32)
    peer = client.get_peer_certificate()
    assert peer is not None
    assert bindings["tls-server-end-point"] == hashlib.sha256(der(peer.to_cryptography())).digest()
    assert sorted(bindings) == ["tls-exporter", "tls-server-end-point"]


def test_tls12_gives_only_the_certificate_hash(tmp_path: Path) -> None:
    server, _ = handshake(tmp_path, SSL.TLS1_2_VERSION)
    assert sorted(channel_bindings(Handle(server))) == ["tls-server-end-point"]


def test_no_tls_no_bindings() -> None:
    assert channel_bindings(object()) == {}
    assert channel_bindings(Handle(None)) == {}  # type: ignore[arg-type]

"""TLS for STARTTLS (RFC 3501 §6.2.1) and implicit TLS (RFC 8314 §3.3).

* ``ensure_certificate`` picks the certificate: the operator's
  ``--tls-cert``/``--tls-key`` (PEM; the certificate file may hold the chain,
  and the key when no key file is given), else a self-signed one generated on
  first start into ``DATA/tls/`` so that STARTTLS works out of the box.
  Servers starting together on a fresh data directory (issue 13) take turns
  under ``DATA/tls/.lock``: the first generates, the others find a matching
  pair and use it. Each file is written under a unique temp name and renamed
  into place, so no one ever reads half a file.
* ``build_context`` makes a pyOpenSSL context with modern defaults: TLS 1.2
  or newer only, forward-secret AEAD cipher suites only for TLS 1.2 (the
  TLS 1.3 suites are all strong), no compression, no renegotiation.
* ``ServerTLS`` is the connection creator Twisted's TLS layer asks for each
  new connection. ``reload()`` (on SIGHUP) swaps in a context built from the
  files as they are now; connections already open keep the context they
  started with, so nobody is disconnected. A failed reload keeps the old
  certificate and logs why.
* ``channel_bindings`` gives SCRAM-SHA-256-PLUS (RFC 5802 §6) the channel
  binding data of one TLS connection.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer  # type: ignore[import-untyped]

from imapd.accounts.scram import TLS_EXPORTER, TLS_SERVER_END_POINT
from imapd.accounts.users import write_file_atomically

log = Logger(namespace="imapd.tls")

TLS_DIR_NAME = "tls"
SELF_SIGNED_CERT = "selfsigned-cert.pem"
SELF_SIGNED_KEY = "selfsigned-key.pem"
LOCK_NAME = ".lock"
SELF_SIGNED_DAYS = 825  # the longest validity clients commonly accept

# TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers
# only, as in Mozilla's "intermediate" recommendation minus finite-field DHE
# (which would need DH parameters). Everything with RSA key exchange, CBC,
# RC4, 3DES, export, NULL or anonymous suites is excluded by construction.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
])


class TLSConfigError(Exception):
    """The certificate or key cannot be used; ``str()`` says why, in one line."""


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    cert: Path
    key: Path
    self_signed: bool = False


def ensure_certificate(
    data_dir: Path, cert: Path | None, key: Path | None, hostname: str | None = None
) -> CertificateFiles:
    """The operator's files, or the self-signed pair in ``DATA/tls/``
    (generated, and logged, the first time)."""
    if cert is not None:
        return CertificateFiles(cert, key if key is not None else cert)
    if key is not None:
        raise TLSConfigError("--tls-key needs --tls-cert")
    directory = data_dir / TLS_DIR_NAME
    cert_path, key_path = directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY
    names = [hostname] if hostname else host_names()
    name = names[0]
    with _generation_lock(directory):
        problem = pair_problem(cert_path, key_path)
        if problem is None:
            log.info("imapd: using the self-signed TLS certificate {path}", path=str(cert_path))
            return CertificateFiles(cert_path, key_path, self_signed=True)
        if problem != "missing":
            log.warn("imapd: the self-signed TLS certificate in {path} is unusable "
                     "({problem}); generating a new one", path=str(directory), problem=problem)
        fingerprint = generate_self_signed(cert_path, key_path, name, names[1:])
    log.warn(
        "imapd: no --tls-cert given; generated a self-signed TLS certificate for "
        "{name} in {path} (SHA-256 {fingerprint}). Clients will warn about it; "
        "see the README to use a real certificate.",
        name=name, path=str(cert_path), fingerprint=fingerprint,
    )
    return CertificateFiles(cert_path, key_path, self_signed=True)


@contextlib.contextmanager
def _generation_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` (created if needed) exclusively: one process
    at a time decides whether the pair must be generated. Start-up only,
    before the reactor runs; the lock goes with the process if it dies."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def pair_problem(cert_path: Path, key_path: Path) -> str | None:
    """None when both files exist and the key is the certificate's; else
    why not ("missing" when either file is absent). A pair left mismatched
    by an older version's start-up race is replaced, not served."""
    try:
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return error.strerror or str(error)
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        return str(error) or type(error).__name__
    public = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if certificate.public_key().public_bytes(*public) != key.public_key().public_bytes(*public):
        return "the key does not match the certificate"
    return None


def host_names() -> list[str]:
    """The names this host goes by, best first: its fully qualified name,
    then its own (``hostname``) name, without the loopback names a badly
    configured /etc/hosts gives (where ``getfqdn()`` answers "localhost",
    the host name is still the real one); "localhost" when that is all."""
    found = []
    for candidate in (socket.getfqdn(), socket.gethostname()):
        name = candidate.strip().rstrip(".").lower()
        if name and not name.startswith("localhost") and not _is_address(name):
            found.append(name)
    return list(dict.fromkeys(found)) or ["localhost"]


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def generate_self_signed(
    cert_path: Path, key_path: Path, hostname: str, aliases: Sequence[str] = ()
) -> str:
    """Write a new ECDSA P-256 key (mode 0600) and a self-signed certificate
    for ``hostname`` (subject CN), naming it, ``aliases``, ``localhost``,
    127.0.0.1 and ::1 as subject alternative names (RFC 5280 §4.2.1.6;
    clients check those, RFC 6125 §6.4.4); return its SHA-256 fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    names: list[x509.GeneralName] = [
        x509.DNSName(n) for n in dict.fromkeys([hostname, *aliases, "localhost"])]
    names += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first: a crash in between leaves a key without its certificate,
    # which ``pair_problem`` reports, and the next start makes a new pair.
    write_file_atomically(key_path, key_pem, mode=0o600)
    write_file_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return certificate.fingerprint(hashes.SHA256()).hex(":")


def build_context(files: CertificateFiles) -> SSL.Context:
    """A server context for ``files`` with modern defaults (see module doc).
    Raises ``TLSConfigError`` with one readable line on any problem."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.set_cipher_list(TLS12_CIPHERS.encode("ascii"))
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)  # less memory per idle connection
    # OpenSSL reports a missing or unreadable file as an opaque error list:
    # open each first, so the line names the OS's reason.
    for what, path in (("certificate", files.cert), ("key", files.key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            raise TLSConfigError(f"cannot read TLS {what} {path}: {_why(error)}") from None
    try:
        context.use_certificate_chain_file(str(files.cert))
    except (OSError, SSL.Error) as error:
        raise TLSConfigError(f"cannot load TLS certificate {files.cert}: {_why(error)}") from None
    try:
        context.use_privatekey_file(str(files.key))
        context.check_privatekey()
    except (OSError, SSL.Error) as error:
        raise TLSConfigError(f"cannot load TLS key {files.key}: {_why(error)}") from None
    return context


def _why(error: Exception) -> str:
    if isinstance(error, OSError):
        return error.strerror or str(error)
    reasons = error.args[0] if error.args and isinstance(error.args[0], list) else None
    if isinstance(error, SSL.Error) and reasons:  # [(library, function, reason), ...]
        text = "; ".join(str(r[-1]) for r in reasons if isinstance(r, tuple) and r and r[-1])
        if text:
            return text
    return str(error) or type(error).__name__


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """Creates the server side of each TLS connection; reloadable."""

    def __init__(self, files: CertificateFiles) -> None:
        self.files = files
        self._context = build_context(files)

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self._context, None)

    def getContext(self) -> SSL.Context:
        """The current context (older Twisted ``ContextFactory`` interface)."""
        return self._context

    def reload(self) -> bool:
        """Re-read the certificate and key. New connections use them; open
        ones are untouched. On failure keep the old ones; True on success."""
        try:
            self._context = build_context(self.files)
        except TLSConfigError as error:
            log.error("imapd: TLS reload failed, keeping the old certificate: {error}",
                      error=str(error))
            return False
        log.info("imapd: reloaded TLS certificate {path}", path=str(self.files.cert))
        return True


def install_reload_on_hangup(tls: ServerTLS, reactor: Any) -> None:
    """SIGHUP reloads the certificate (e.g. after a renewal) in the reactor
    thread, without dropping connections."""

    def on_hangup(signum: int, frame: object) -> None:
        reactor.callFromThread(tls.reload)

    signal.signal(signal.SIGHUP, on_hangup)


def tcp_description_for_implicit_tls(description: str) -> str:
    """``--imaps`` takes ``ssl:993[:interface=...]`` (or ``tcp:``/``tcp6:``
    descriptions); the certificate comes from ``--tls-cert``, so TLS options
    inside the string are refused. Returns the plain TCP description that
    the service wraps in TLS itself (so SIGHUP reloads apply)."""
    kind, _, rest = description.partition(":")
    if kind.lower() not in ("ssl", "tcp", "tcp6"):
        raise TLSConfigError(f"--imaps {description}: use ssl:PORT[:interface=ADDRESS]")
    options = [part for part in rest.split(":") if "=" in part]
    forbidden = {"privatekey", "certkey", "extracertchain", "sslmethod", "dhparameters", "cacertsdir"}
    for option in options:
        if option.split("=", 1)[0].lower() in forbidden:
            raise TLSConfigError(
                f"--imaps {description}: give the certificate with --tls-cert/--tls-key"
            )
    return ("tcp6" if kind.lower() == "tcp6" else "tcp") + ":" + rest


# RFC 9266 §2: the exporter label and length for tls-exporter.
_EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
_EXPORTER_LENGTH = 32


def channel_bindings(transport: object) -> dict[str, bytes]:
    """The channel binding data of the TLS connection under ``transport``
    (a Twisted transport after STARTTLS or on an implicit-TLS port), by
    type; empty when it is not TLS.

    * ``tls-exporter`` (RFC 9266) on TLS 1.3 only: on TLS 1.2 it is safe
      only with the extended master secret (RFC 9266 §3), which pyOpenSSL
      cannot confirm.
    * ``tls-server-end-point`` (RFC 5929 §4.1): the hash of our certificate
      with its signature's hash (SHA-256 for MD5 and SHA-1); undefined, so
      absent, for signatures without one (Ed25519).
    """
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if callable(get_handle) else None
    if not isinstance(handle, SSL.Connection):
        return {}
    bindings: dict[str, bytes] = {}
    if handle.get_protocol_version_name() == "TLSv1.3":
        bindings[TLS_EXPORTER] = handle.export_keying_material(_EXPORTER_LABEL, _EXPORTER_LENGTH)
    certificate = handle.get_certificate()
    if certificate is not None:
        digest = server_end_point(certificate.to_cryptography())
        if digest is not None:
            bindings[TLS_SERVER_END_POINT] = digest
    return bindings


def server_end_point(certificate: x509.Certificate) -> bytes | None:
    """RFC 5929 §4.1 tls-server-end-point data for ``certificate``."""
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is None:
        return None
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate.public_bytes(serialization.Encoding.DER))
    return digest.finalize()

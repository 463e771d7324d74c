"""Start-up mistakes an operator makes are one line on stderr and exit
status 2, never a traceback (issue 17 § Service): a bad endpoint string, a
missing certificate or key, a port in use. The real command, the exact line
(``test_privileges`` covers root without ``--user`` and a data directory
owned by someone else)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.server import run_cli

LOOPBACK = "tcp:0:interface=127.0.0.1"


@pytest.mark.parametrize(("option", "endpoint", "why"), [
    ("--imap", "foo:bar", "Unknown endpoint type: 'foo'"),
    ("--imap", "tcp:imap", "invalid literal for int() with base 10: 'imap'"),
    ("--pop3", "tcp:110:colour=blue", "_parseTCP() got an unexpected keyword argument 'colour'"),
    ("--lmtp", "systemd:domain=INET:index=0", "no such socket passed by systemd"),
])
def test_a_bad_endpoint_is_one_line(tmp_path: Path, option: str, endpoint: str, why: str) -> None:
    done = run_cli("serve", "--data", str(tmp_path / "d"), option, endpoint, check=False)
    assert (done.returncode, done.stderr) == (
        2, f"imapd: {option} {endpoint}: not an endpoint ({why}) (see imapd --help)\n")
    assert not (tmp_path / "d").exists()


def test_a_missing_certificate_or_key_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    done = run_cli("serve", "--data", str(tmp_path / "d"), "--imap", LOOPBACK,
                   "--tls-cert", str(missing), check=False)
    assert (done.returncode, done.stderr) == (
        2, f"imapd: cannot read TLS certificate {missing}: No such file or directory\n")
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    done = run_cli("serve", "--data", str(tmp_path / "d"), "--imap", LOOPBACK,
                   "--tls-cert", str(cert), "--tls-key", str(missing), check=False)
    assert (done.returncode, done.stderr) == (
        2, f"imapd: cannot read TLS key {missing}: No such file or directory\n")
    done = run_cli("serve", "--data", str(tmp_path / "d"), "--imap", LOOPBACK,
                   "--tls-cert", str(cert), check=False)
    assert (done.returncode, done.stderr) == (
        2, f"imapd: cannot load TLS certificate {cert}: no start line; PEM lib\n")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line(tmp_path: Path, workers: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli("serve", "--data", str(tmp_path / "d"), "--workers", workers,
                       "--imap", f"tcp:{port}:interface=127.0.0.1", check=False)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "imapd: cannot" in line]
    assert done.stderr.splitlines()[-1] == (
        f"imapd: cannot listen on tcp:{port}:interface=127.0.0.1: address already in use")
    assert "Traceback" not in done.stderr and len(errors) <= 2  # the log line, then stderr's

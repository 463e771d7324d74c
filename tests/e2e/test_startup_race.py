"""Servers started together on one fresh data directory (issue 13, item
8): none crashes, and all serve TLS with the same self-signed certificate
(the one left in DATA/tls). Before, they shared the temp file name of the
key they generated; the second crashed in 1 start of 12, or was left with
the key of one and the certificate of another.

Real ``imapd serve`` processes, started at once, each with an IMAPS port."""

from __future__ import annotations

import queue
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from imapd.net.tls import SELF_SIGNED_CERT, TLS_DIR_NAME
from tests.support.server import imapd_command, stop_process, subprocess_env

SERVERS = 6
ROUNDS = 2
IMAPS_LISTENING = re.compile(r"listening on IMAPS (\[[^\]]+\]|[^\s:]+):(\d+)")
LOOPBACK = "tcp:0:interface=127.0.0.1"


def start_servers(data_dir: Path, count: int) -> list[subprocess.Popen[bytes]]:
    args = ["serve", "--data", str(data_dir), "--imap", LOOPBACK, "--imaps", LOOPBACK]
    return [
        subprocess.Popen(imapd_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=subprocess_env())
        for _ in range(count)
    ]


def imaps_port(process: subprocess.Popen[bytes], timeout: float = 60.0) -> tuple[int | None, str]:
    """The IMAPS port the server logged, or None (and its output) if it
    exited or said nothing in time."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        match = IMAPS_LISTENING.search(line)
        if match:
            return int(match.group(2)), "".join(seen)
    return None, "".join(seen)


def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: compared below instead
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with context.wrap_socket(raw) as tls:
            certificate = tls.getpeercert(binary_form=True)
            assert certificate is not None
            return certificate


def test_servers_starting_together_serve_one_certificate(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        data_dir = tmp_path / f"data{round_}"
        processes = start_servers(data_dir, SERVERS)
        try:
            ports = [imaps_port(process) for process in processes]
            failed = [output for port, output in ports if port is None]
            assert not failed, f"round {round_}: {len(failed)} servers failed:\n{failed[0]}"
            served = {served_certificate(port) for port, _ in ports if port is not None}
        finally:
            for process in processes:
                stop_process(process)
        assert len(served) == 1, f"round {round_}: {len(served)} different certificates served"
        on_disk = x509.load_pem_x509_certificate(
            (data_dir / TLS_DIR_NAME / SELF_SIGNED_CERT).read_bytes())
        assert on_disk.public_bytes(serialization.Encoding.DER) in served

"""Start-up race on a fresh data directory (issue 13, item 8): several
servers starting at once each find no self-signed certificate and make
one. They used to share one temp file name (``selfsigned-key.pem.tmp``):
one renamed it away under another, which crashed (1 start in 12), or the
key of one and the certificate of another were left side by side. Now
generation is serialised by a lock file, the loser uses what the winner
wrote, and every file is written under a unique temp name and renamed.

Real processes (forked), started together on a barrier, many rounds."""

from __future__ import annotations

import multiprocessing
import os
import stat
import traceback
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from imapd.net.tls import (
    SELF_SIGNED_CERT, SELF_SIGNED_KEY, TLS_DIR_NAME, build_context, ensure_certificate,
    generate_self_signed,
)

PROCESSES = 8
ROUNDS = 6


def start_one(data_dir: str, barrier: Any, results: Any) -> None:
    """One "server start": pick the certificate, then load it as the
    server would (``build_context`` checks that key and certificate match)."""
    try:
        barrier.wait(timeout=30)
        files = ensure_certificate(Path(data_dir), None, None, hostname="race.test")
        build_context(files)
        results.put(("ok", files.cert.read_bytes()))
    except BaseException:
        results.put(("crash", traceback.format_exc()))


def race(data_dir: Path) -> list[tuple[str, Any]]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [context.Process(target=start_one, args=(str(data_dir), barrier, results))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return outcomes


def test_servers_starting_together_agree_on_one_valid_certificate(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        data_dir = tmp_path / f"data{round_}"
        outcomes = race(data_dir)
        crashes = [detail for kind, detail in outcomes if kind == "crash"]
        assert not crashes, f"round {round_}: {len(crashes)} crashed:\n{crashes[0]}"
        certificates = {detail for _, detail in outcomes}
        assert len(certificates) == 1, f"round {round_}: {len(certificates)} certificates in use"
        tls_dir = data_dir / TLS_DIR_NAME
        # What is left on disk is that certificate, its matching key, and no temp files.
        assert (tls_dir / SELF_SIGNED_CERT).read_bytes() in certificates
        build_context(ensure_certificate(data_dir, None, None, hostname="race.test"))
        assert sorted(p.name for p in tls_dir.iterdir() if not p.name.startswith(".lock")) == [
            SELF_SIGNED_CERT, SELF_SIGNED_KEY]
        assert stat.S_IMODE((tls_dir / SELF_SIGNED_KEY).stat().st_mode) == 0o600


def test_a_mismatched_pair_left_by_an_older_version_is_replaced(tmp_path: Path) -> None:
    tls_dir = tmp_path / TLS_DIR_NAME
    tls_dir.mkdir()
    generate_self_signed(tls_dir / SELF_SIGNED_CERT, tls_dir / "other-key.pem", "a.test")
    generate_self_signed(tmp_path / "other-cert.pem", tls_dir / SELF_SIGNED_KEY, "b.test")
    files = ensure_certificate(tmp_path, None, None, hostname="race.test")
    build_context(files)  # raised "key values mismatch" before
    certificate = x509.load_pem_x509_certificate(files.cert.read_bytes())
    key = serialization.load_pem_private_key(files.key.read_bytes(), None)
    assert certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert certificate.fingerprint(hashes.SHA256())


def test_generated_files_never_exist_half_written_or_world_readable(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed(cert, key, "localhost")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["c.pem", "k.pem"]  # no temp file left

"""A small tmpfs for disk-full tests (issue 13, item 7).

``small_tmpfs`` mounts a fresh tmpfs of a few MiB (root only: CI runs as
root) and lazily unmounts it afterwards; where mounting is not permitted it
skips with ``MOUNT_SKIP``, which the using modules pin (``PINNED_SKIPS``,
``in_ci=False``: under CI the test must run). ``fill`` writes a file until
the disk is full, to the last block.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.pinned_skips import Pin

MOUNT_SKIP = "cannot mount a tmpfs here (needs root); the disk-full tests run under CI"
PINS = (Pin(rf"{MOUNT_SKIP}.*", "disk-full tests mount a small tmpfs (root only)", in_ci=False),)


@contextlib.contextmanager
def small_tmpfs(directory: Path, size_mib: int) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip(MOUNT_SKIP)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(directory)],
        capture_output=True, text=True, timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"{MOUNT_SKIP}: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=30)


def fill(directory: Path, name: str = "filler") -> Path:
    """A file in ``directory`` grown until the disk has no block left."""
    path = directory / name
    block = b"\xa5" * (64 * 1024)
    with open(path, "ab", buffering=0) as file:
        for size in (len(block), 4096, 512, 1):
            try:
                while True:
                    file.write(block[:size])
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    return path


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize

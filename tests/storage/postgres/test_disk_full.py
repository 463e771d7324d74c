"""The database server's disk full (SQLSTATE 53100) is ``StorageFull``
(IMAP NO [OVERQUOTA]), the call made no change, and APPEND works again
once space returns. The test database lives in a tablespace on a small
tmpfs (root only: CI runs as root; elsewhere a pinned skip)."""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from imapd.mail.errors import StorageFull, Unavailable
from imapd.mail.records import AppendItem
from tests.storage.postgres.helpers import close, inbox, open_pg, run
from tests.storage.sqlite.tmpfs import PINS, fill, small_tmpfs
from tests.support.postgres import TEMPLATE, Cluster

PINNED_SKIPS = PINS


@pytest.fixture
def full_dsn(postgres_cluster: Cluster) -> Iterator[tuple[str, Path]]:
    """A database in a tablespace on a 32 MiB tmpfs; (DSN, the tmpfs)."""
    where = postgres_cluster.root.parent / f"imapd-pg-full-{os.getpid()}"
    try:
        yield from _tablespace(postgres_cluster, where)
    finally:
        with contextlib.suppress(OSError):
            where.rmdir()


def _tablespace(postgres_cluster: Cluster, where: Path) -> Iterator[tuple[str, Path]]:
    with small_tmpfs(where, 32) as mount:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(mount, entry.pw_uid, entry.pw_gid)
        space = mount / "space"
        subprocess.run(["runuser", "-u", "postgres", "--", "mkdir", str(space)]
                       if os.geteuid() == 0 else ["mkdir", str(space)], check=True)
        name = f"full{os.getpid()}"
        postgres_cluster.admin(f"CREATE TABLESPACE {name} LOCATION '{space}'")
        postgres_cluster.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} TABLESPACE {name}")
        try:
            yield postgres_cluster.dsn_for(name), mount
        finally:
            postgres_cluster.drop_database(postgres_cluster.dsn_for(name))
            postgres_cluster.admin(f"DROP TABLESPACE IF EXISTS {name}")


def test_disk_full_is_storage_full_and_passes(full_dsn: tuple[str, Path]) -> None:
    dsn, mount = full_dsn
    backend = open_pg(dsn)
    try:
        ref = inbox(backend)
        start = run(lambda: backend.status(ref))  # read while there is room
        filler = fill(mount)
        body = os.urandom(2 * 1024 * 1024)
        failure: BaseException | None = None
        stored = 0
        for _ in range(3):  # the first may still fit in pages already there
            try:
                run(lambda: backend.append(ref, [AppendItem(body)]))
                stored += 1
            except (StorageFull, Unavailable) as error:
                failure = error
                break
        assert isinstance(failure, StorageFull), failure
        # Space back before anything else: with the disk full even a read
        # may be refused (a fresh server process writes its caches; CI saw it).
        filler.unlink()
        deadline = time.monotonic() + 20
        while True:
            try:
                result = run(lambda: backend.append(ref, [AppendItem(b"fits again")]))
                break
            except StorageFull:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert result.uids == (start.uidnext + stored,)  # the refused APPEND took no UID
        assert run(lambda: backend.status(ref)).messages == start.messages + stored + 1
    finally:
        close(backend)

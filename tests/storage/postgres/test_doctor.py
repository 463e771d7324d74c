"""``imapd doctor`` on a PostgreSQL store: the store a real server built
(tests/test_cli_doctor.py's history), corrupted per invariant with SQL;
the doctor finds it, ``--repair`` fixes it, a second run is clean, and a
real server then serves the mailboxes correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from imapd.storage.postgres import doctor
from tests.e2e.frontends import add_user, store_url
from tests.support.pinned_skips import Pin
from tests.support.postgres import MISSING, Cluster
from tests.support.server import run_cli
from tests.test_cli_doctor import populate, serves_correctly

PINNED_SKIPS = (Pin.exact(MISSING, "PostgreSQL binaries are a CI dependency (.ci/run)", in_ci=False),)
INBOX = "(SELECT id FROM mailboxes WHERE name='INBOX')"


@pytest.fixture
def store(tmp_path: Path, postgres_cluster: Cluster, postgres_dsn: str) -> Iterator[str]:
    """A database the server filled, as a ``--store`` URL."""
    url = store_url(postgres_dsn)
    add_user(url, None, "alice", "wonderland")
    populate(tmp_path, ["--store", url], users={})
    yield url


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def examine(dsn: str, repair: bool) -> Any:
    with connect(dsn) as conn:
        return doctor.examine(conn, repair)


REPAIRABLE = {
    "uidnext": ([f"UPDATE mailboxes SET uidnext=2 WHERE id={INBOX}"], "UID 5 given but UIDNEXT is 2"),
    "modseq": ([f"UPDATE mailboxes SET highestmodseq=1 WHERE id={INBOX}"], "HIGHESTMODSEQ is 1"),
    "expunged": ([f"INSERT INTO expunged SELECT mailbox_id, uid, modseq FROM messages "
                  f"WHERE mailbox_id={INBOX} AND uid=1",
                  "INSERT INTO expunged VALUES(9999, 1, 1)"], "is both a message and expunged"),
    "refs": (["UPDATE bodies SET refs=refs+3 WHERE id=(SELECT min(body_id) FROM messages)"],
             "message(s) point at it"),
    "orphan-body": (["INSERT INTO bodies(refs, size, meta) VALUES(1, 1, '')",
                     "INSERT INTO body_chunks VALUES(999999, 0, '\\x00')"],
                    "no message points at it"),
    "size": ([f"UPDATE messages SET size=size+10 WHERE mailbox_id={INBOX} AND uid=1"],
             "but its body is"),
    "keywords": ([f"DELETE FROM keywords WHERE mailbox_id={INBOX}"], "is set on messages but not listed"),
}


@pytest.mark.parametrize("name", sorted(REPAIRABLE))
def test_found_repaired_clean_and_served(name: str, tmp_path: Path, store: str,
                                         postgres_dsn: str) -> None:
    assert examine(postgres_dsn, repair=False).problems == []
    statements, text = REPAIRABLE[name]
    with connect(postgres_dsn) as conn:
        for statement in statements:
            conn.execute(statement.encode())
    found = examine(postgres_dsn, repair=False)
    assert name in found.remaining
    assert any(line.startswith(f"{name}: ") and text in line for line in found.problems), found.problems
    repaired = examine(postgres_dsn, repair=True)
    assert repaired.clean, repaired.remaining
    assert examine(postgres_dsn, repair=False).problems == []
    serves_correctly(tmp_path, ["--store", store])


def test_lost_bytes_are_reported_not_repaired(store: str, postgres_dsn: str) -> None:
    with connect(postgres_dsn) as conn:
        conn.execute("DELETE FROM body_chunks WHERE body_id=(SELECT max(body_id) FROM messages)")
    repaired = examine(postgres_dsn, repair=True)
    assert repaired.remaining == ["body-chunks"]
    result = run_cli("doctor", "--store", store, check=False)
    assert result.returncode == 1 and "imapd doctor: body-chunks: body #" in result.stdout

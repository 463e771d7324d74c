"""Schema versioning: ``init`` on an empty database, ``migrate``, and the
refusals (``SchemaMismatch``, one clear message) of a database without the
schema, with an unknown version, or with someone else's tables."""

from __future__ import annotations

from typing import Iterator

import psycopg
import pytest

from imapd.storage.postgres import SchemaMismatch, schema
from tests.storage.postgres.helpers import close, open_pg
from tests.support.postgres import Cluster


@pytest.fixture
def empty_dsn(postgres_cluster: Cluster) -> Iterator[str]:
    dsn = postgres_cluster.fresh_database(initialised=False)
    yield dsn
    postgres_cluster.drop_database(dsn)


@pytest.fixture
def own_dsn(postgres_cluster: Cluster) -> Iterator[str]:
    """A database with the schema that is dropped after the test (not given
    back for reuse: the test changes its schema)."""
    dsn = postgres_cluster.fresh_database()
    yield dsn
    postgres_cluster.drop_database(dsn)


def _set_version(dsn: str, version: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE settings SET value=%s WHERE key='schema_version'", (version,))


def test_init_creates_the_schema_once(empty_dsn: str) -> None:
    assert schema.current_version(empty_dsn) is None
    schema.init(empty_dsn)
    assert schema.current_version(empty_dsn) == schema.SCHEMA_VERSION
    schema.init(empty_dsn)  # already there: nothing to do
    with psycopg.connect(empty_dsn) as conn:
        tables = {str(r[0]) for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'").fetchall()}
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name='users' ORDER BY ordinal_position").fetchall()
    assert {"users", "mailboxes", "messages", "expunged", "bodies", "body_chunks"} <= tables
    assert columns == [("name", "text", "NO"), ("entry", "text", "NO"), ("scram", "text", "YES")]


def test_open_refuses_a_database_without_the_schema(empty_dsn: str) -> None:
    with pytest.raises(SchemaMismatch, match="no imapd schema.*imapd db init"):
        open_pg(empty_dsn)


def test_open_refuses_an_unknown_version(postgres_dsn: str) -> None:
    _set_version(postgres_dsn, schema.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaMismatch, match=f"version {schema.SCHEMA_VERSION + 1}.*upgrade imapd"):
        open_pg(postgres_dsn)
    with pytest.raises(SchemaMismatch, match="newer than this imapd"):
        schema.migrate(postgres_dsn)
    with pytest.raises(SchemaMismatch, match="imapd db migrate"):
        schema.init(postgres_dsn)
    _set_version(postgres_dsn, schema.SCHEMA_VERSION)
    close(open_pg(postgres_dsn))


def test_init_refuses_a_database_with_other_tables(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices(id int)")
    with pytest.raises(SchemaMismatch, match="not empty"):
        schema.init(empty_dsn)
    assert schema.current_version(empty_dsn) is None


def test_migrate_steps_up_one_version_at_a_time(
    own_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_dsn = own_dsn
    assert schema.migrate(postgres_dsn) == schema.SCHEMA_VERSION  # current: nothing to do
    # A pretend next version that adds a column: migrate applies it and
    # records the version, in one transaction; open then accepts it.
    pretend = schema.SCHEMA_VERSION + 1
    monkeypatch.setattr(schema, "SCHEMA_VERSION", pretend)
    monkeypatch.setitem(schema._MIGRATIONS, pretend, "ALTER TABLE mailboxes ADD COLUMN note TEXT")
    with pytest.raises(SchemaMismatch, match="imapd db migrate"):
        open_pg(postgres_dsn)
    assert schema.migrate(postgres_dsn) == pretend
    assert schema.current_version(postgres_dsn) == pretend
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("SELECT note FROM mailboxes")
    close(open_pg(postgres_dsn))


def test_migrate_refuses_a_database_without_the_schema(empty_dsn: str) -> None:
    with pytest.raises(SchemaMismatch, match="imapd db init"):
        schema.migrate(empty_dsn)

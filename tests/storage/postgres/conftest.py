"""Fixtures of the PostgreSQL engine tests: the session's throwaway cluster
and a fresh database per test (tests/support/postgres.py)."""

from __future__ import annotations

from tests.support.postgres import postgres_cluster, postgres_dsn

__all__ = ["postgres_cluster", "postgres_dsn"]

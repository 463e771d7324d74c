"""imapd.storage.postgres: the PostgreSQL engine, for several frontends over
one database (``open_backend``; schema versioning in ``schema``)."""

from __future__ import annotations

from imapd.storage.postgres.backend import PostgresBackend, open_backend
from imapd.storage.postgres.schema import SCHEMA_VERSION, SchemaMismatch

__all__ = ["PostgresBackend", "SCHEMA_VERSION", "SchemaMismatch", "open_backend"]

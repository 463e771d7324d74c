"""imapd.storage.sqlite: the default storage engine (``open_backend``)."""

from __future__ import annotations

from imapd.storage.sqlite.backend import SqliteBackend, open_backend

__all__ = ["SqliteBackend", "open_backend"]

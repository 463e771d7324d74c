"""The PostgreSQL engine reports each write transaction to the installed
telemetry (``imapd.core.telemetry.committed``: engine, latency, one change
per transaction); reads report nothing."""

from __future__ import annotations

from typing import Any

from imapd.core import telemetry
from imapd.core.telemetry import NullTelemetry
from imapd.mail.records import AppendItem
from tests.storage.postgres.helpers import close, inbox, open_pg, run


class Commits(NullTelemetry):
    def __init__(self) -> None:
        self.seen: list[tuple[str, float, int]] = []

    def committed(self, engine: str, seconds: float, changes: int) -> None:
        self.seen.append((engine, seconds, changes))


def test_each_write_transaction_is_reported(postgres_dsn: str) -> None:
    backend = open_pg(postgres_dsn)
    recorder = Commits()
    previous = telemetry.install(recorder)
    try:
        ref = inbox(backend)
        before = len(recorder.seen)
        assert before >= 1  # creating the user and INBOX wrote

        async def append_then_read() -> Any:
            await backend.append(ref, [AppendItem(b"Subject: a\r\n\r\na\r\n")])
            return await backend.lookup("alice", "INBOX")

        run(append_then_read)
        new = recorder.seen[before:]
        assert [(engine, changes) for engine, _, changes in new] == [("postgres", 1)]
        assert all(seconds >= 0 for _, seconds, _ in new)
    finally:
        telemetry.install(previous)
        close(backend)

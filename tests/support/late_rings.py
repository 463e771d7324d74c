"""A memory engine whose doorbells can arrive late (issue 14).

With PostgreSQL, reads run on pool threads: a commit is visible to a read
before its NOTIFY (or the runner's hop) reaches the reactor thread and
rings. ``LateRings`` reproduces that deterministically on the memory
engine: before the next ``changes_since`` (the read of a catch-up or of
QRESYNC's resync) it runs ``interfere`` with this backend's rings held;
``late.release()`` delivers them.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from imapd.mail.backend import Changes, MailboxRef, Ring
from imapd.storage.memory import MemoryBackend


class HeldFeed:
    """The inner feed, with rings queued instead of delivered while ``held``."""

    def __init__(self, inner: MemoryBackend) -> None:
        self.inner = inner.feed
        self.held: list[Callable[[], None]] | None = None

    def subscribe(self, mailbox_id: int, ring: Ring) -> Callable[[], None]:
        def deliver(box: int, modseq: int) -> None:
            if self.held is not None:
                self.held.append(lambda: ring(box, modseq))
            else:
                ring(box, modseq)
        return self.inner.subscribe(mailbox_id, deliver)

    def release(self) -> None:
        held, self.held = self.held or [], None
        for ring in held:
            ring()


class LateRings(MemoryBackend):
    """Before the next ``changes_since``, run ``interfere`` with this
    backend's rings held: the read sees the commit, no watch has heard it."""

    def __init__(self) -> None:
        super().__init__()
        self.late = HeldFeed(self)
        self.feed = self.late
        self.interfere: Callable[[], Awaitable[None]] | None = None

    async def changes_since(self, ref: MailboxRef, modseq: int, uidnext: int) -> Changes:
        if self.interfere is not None:
            interfere, self.interfere = self.interfere, None
            self.late.held = []
            await interfere()
        return await super().changes_since(ref, modseq, uidnext)

"""Writing scanned folders into a user's mailboxes through the mail core.

Everything goes through ``MailService`` (create, subscribe, deliver), so an
import works on every engine and beside a running server, whose sessions
see the new messages like any delivery. Messages are appended in batches
(one atomic, durable append each, RFC 3502 MULTIAPPEND semantics), so an
interrupted import has committed whole batches only; a re-run counts the
fingerprints already in each mailbox (``fingerprint``) and skips that
many of each, which imports every message exactly once in all.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence, TypeVar

from imapd.importer.fingerprint import Fingerprint, fingerprint, fingerprint_of_meta
from imapd.importer.progress import Progress, human_bytes
from imapd.importer.source import SourceFolder, SourceMessage
from imapd.mail import names
from imapd.mail.errors import MailError, OverQuota, StorageFull, TargetMissing, Unavailable
from imapd.mail.records import AppendItem, MessageRecord
from imapd.mail.service import MailService
from imapd.message import analyze

T = TypeVar("T")
# A batch is committed when it holds this many messages or bytes (one
# transaction each: fewer, larger commits are faster; smaller ones lose
# less work to an interruption, which a re-run redoes anyway).
DEFAULT_BATCH = 100
BATCH_BYTES = 16 * 1024 * 1024
META_CHUNK = 500  # stored messages whose analysis is read at once (resume)
# A source item larger than this is reported, not read: it bounds the
# memory one message takes (a stray disk image in a maildir's cur/ must
# not be loaded), far above any real mail (the server's APPEND default is
# 64 MiB).
MAX_MESSAGE = 512 * 1024 * 1024
# Errors after which nothing more can be stored: stop instead of failing
# every remaining message one by one.
FATAL = (OverQuota, StorageFull, Unavailable)


class Stopped(Exception):
    """The store refused further writes (over quota, disk full, gone)."""


@dataclass
class Summary:
    folders: int = 0
    messages: int = 0
    bytes: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.messages / self.seconds if self.seconds > 0 else 0.0
        return (f"imported {self.messages} messages ({human_bytes(self.bytes)}) into "
                f"{self.folders} folders, skipped {self.skipped} already there, "
                f"{self.errors} errors, {self.seconds:.1f} s ({rate:.0f} messages/s)")


def target_name(root: str | None, path: Sequence[str]) -> str:
    """The mailbox for a source folder: the root is INBOX (or ``root``),
    children are below ``root`` when given, else at the top level; a
    component holding ``/`` (our hierarchy delimiter) keeps it out of the
    hierarchy as ``_``."""
    parts = [part.replace(names.DELIMITER, "_") for part in path]
    if root:
        return names.DELIMITER.join([root.strip(names.DELIMITER), *parts])
    return names.DELIMITER.join(parts) if parts else names.INBOX


def load(message: SourceMessage) -> tuple[bytes, bytes, Fingerprint]:
    """Read and analyse one message (off the reactor thread): its bytes,
    the analysis blob the store keeps, and its fingerprint; ValueError
    for a message over ``MAX_MESSAGE``."""
    if message.size_hint > MAX_MESSAGE:
        raise ValueError(f"larger than {human_bytes(MAX_MESSAGE)}: not imported")
    data = message.read()
    info = analyze(data)
    return data, info.to_bytes(), fingerprint(info.envelope_data.message_id, len(data),
                                              message.internal_date)


def _fingerprints(records: Sequence[MessageRecord]) -> list[Fingerprint]:
    """The fingerprints of stored messages (JSON parsing: off the reactor)."""
    return [fingerprint_of_meta(r.meta, r.size, r.internal_date) for r in records]


class Importer:
    """One import run for ``user`` (see the module docstring)."""

    def __init__(self, mail: MailService, user: str, root: str | None, progress: Progress,
                 batch: int = DEFAULT_BATCH,
                 interrupted: Callable[[], bool] = lambda: False) -> None:
        self.mail, self.user, self.root = mail, user, root
        self.progress, self.batch = progress, max(1, batch)
        self.interrupted = interrupted  # polled between messages (Ctrl-C, SIGTERM)
        self.summary = Summary()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        runtime = self.mail.runtime
        if runtime is None:
            return fn(*args)
        result: Awaitable[T] = runtime.in_thread(fn, *args)
        return await result

    def problem(self, label: str, reason: str, count: int = 1) -> None:
        """One line for ``count`` items that could not be imported."""
        self.summary.errors += count
        self.progress.note(f"imapd import: {label}: {reason}")

    async def run(self, folders: Sequence[SourceFolder]) -> Summary:
        started = time.monotonic()
        try:
            for folder in folders:
                await self.folder(folder)
        except Stopped as stop:
            self.problem("stopped", str(stop))
        finally:
            self.summary.seconds = time.monotonic() - started
        return self.summary

    async def folder(self, folder: SourceFolder) -> None:
        for label, reason in folder.problems:
            self.problem(label, reason)
        if not folder.messages and folder.problems:
            return
        name = target_name(self.root, folder.path)
        try:
            await self._ensure(name)
            existing = await self._existing(name)
        except MailError as error:
            self.problem(folder.label, f"folder {name!r}: {error}", max(1, len(folder.messages)))
            self.progress.advance(len(folder.messages))
            return
        self.summary.folders += 1
        pending: list[tuple[SourceMessage, AppendItem]] = []
        pending_bytes = 0
        for message in folder.messages:
            if self.interrupted():
                raise Stopped("interrupted (run the same command again to resume)")
            try:
                data, meta, mark = await self._in_thread(load, message)
            except (OSError, ValueError) as error:
                why = error.strerror if isinstance(error, OSError) else None
                self.problem(message.label, str(why or error))
                self.progress.advance(1)
                continue
            if existing[mark] > 0:  # imported by an earlier run
                existing[mark] -= 1
                self.summary.skipped += 1
                self.progress.advance(1)
                continue
            pending.append((message, AppendItem(data, message.flags, message.internal_date, meta)))
            pending_bytes += len(data)
            if len(pending) >= self.batch or pending_bytes >= BATCH_BYTES:
                await self._flush(name, pending)
                pending, pending_bytes = [], 0
        await self._flush(name, pending)

    async def _ensure(self, name: str) -> None:
        """Create the mailbox unless it exists (parents included, RFC 3501
        §6.3.3) and subscribe it, so clients that list subscribed folders
        only (RFC 3501 §6.3.9 LSUB) show it."""
        try:
            await self.mail.target_entry(self.user, name)
        except TargetMissing:
            await self.mail.create_mailbox(self.user, name)
            await self.mail.subscribe(self.user, name)

    async def _existing(self, name: str) -> Counter[Fingerprint]:
        """How many messages of each fingerprint the mailbox holds now
        (analysis blobs read ``META_CHUNK`` messages at a time, so a big
        mailbox is not held in memory at once)."""
        entry = await self.mail.target_entry(self.user, name)
        backend = self.mail.backend
        uids = [record.uid for record in await backend.fetch_records(entry.ref)]
        found: Counter[Fingerprint] = Counter()
        for first in range(0, len(uids), META_CHUNK):
            chunk = uids[first:first + META_CHUNK]
            records = await backend.fetch_records(entry.ref, chunk, with_meta=True)
            found.update(await self._in_thread(_fingerprints, records))
        return found

    async def _flush(self, name: str, pending: list[tuple[SourceMessage, AppendItem]]) -> None:
        """Append ``pending`` in one transaction; if the store refuses the
        batch, each message alone, so one bad message costs only itself."""
        if not pending:
            return
        try:
            await self.mail.deliver(self.user, name, [item for _, item in pending])
        except FATAL as error:
            raise Stopped(f"{name}: {error}") from None
        except MailError as error:
            if len(pending) == 1:
                self.problem(pending[0][0].label, str(error))
                self.progress.advance(1)
                return
            for one in pending:
                await self._flush_one(name, one)
            return
        self._done(pending)

    async def _flush_one(self, name: str, one: tuple[SourceMessage, AppendItem]) -> None:
        try:
            await self.mail.deliver(self.user, name, [one[1]])
        except FATAL as error:
            raise Stopped(f"{name}: {error}") from None
        except MailError as error:
            self.problem(one[0].label, str(error))
            self.progress.advance(1)
            return
        self._done([one])

    def _done(self, stored: list[tuple[SourceMessage, AppendItem]]) -> None:
        size = sum(len(item.message) for _, item in stored)
        self.summary.messages += len(stored)
        self.summary.bytes += size
        self.progress.advance(len(stored), size)

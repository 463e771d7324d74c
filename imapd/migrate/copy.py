"""Copying one source folder into the local account through the mail core.

Which local mailbox a source folder goes to (``target_of``): INBOX to
INBOX; the source's hierarchy delimiter becomes ``/`` (a ``/`` inside a
source name component becomes ``_``, or it would make a level); ``--folder-map
A=B`` renames A and everything under it (an empty B skips them); a folder
with an RFC 6154 special use goes to the local mailbox that already has that
use (the account's default ``Sent`` takes the source's ``Sent Messages``).

What is already there: the fingerprint ``imapd import`` uses
(``imapd.importer.fingerprint``: Message-ID as imapd's analysis reads it,
size in octets, internal date to the second), counted as a multiset, so a re-run copies nothing, an interrupted run resumed copies each
message exactly once (every batch is one atomic append, RFC 3502 semantics
of ``MailService.deliver``), and two identical messages stay two.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

from imapd.core.config import SPECIAL_USES
from imapd.mail.errors import InvalidFlag, MailError, TargetMissing
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.mail.watch import check_flags
from imapd.importer.fingerprint import Fingerprint, fingerprint, fingerprint_of_meta
from imapd.migrate.client import Folder, MailSource, Summary

SUMMARY_CHUNK = 500            # messages per FETCH of summaries
BATCH_BYTES = 8 * 1024 * 1024  # bodies held at once (a larger message goes alone)
BATCH_MESSAGES = 100
META_CHUNK = 500               # local records read with their analysis at once

# Runs a blocking call in a worker thread (``Runtime.in_thread``).
InThread = Callable[..., Awaitable[Any]]
# Told (messages, octets) as messages are dealt with: copied, found already
# there, or failed (the progress bar's advance).
Tick = Callable[[int, int], None]


@dataclass
class FolderResult:
    """One source folder's outcome, for the table at the end."""

    source: str
    target: str | None   # None: skipped by --folder-map
    source_count: int = 0
    copied: int = 0
    present: int = 0     # source messages found locally after the copy
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.target is None or (not self.errors and self.present == self.source_count)


def parse_folder_map(pairs: Iterable[str]) -> dict[str, str]:
    """``A=B`` options into a dict (ValueError on a pair without ``=``)."""
    out: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source:
            raise ValueError(f"--folder-map {pair!r}: give SOURCE=TARGET (empty TARGET skips)")
        out[source] = target.strip("/")
    return out


def local_name(folder: Folder) -> str:
    """The source name without the personal namespace prefix, its
    delimiter translated to ``/``."""
    if folder.name.upper() == "INBOX":
        return "INBOX"
    name = folder.name
    if folder.prefix and name.startswith(folder.prefix) and len(name) > len(folder.prefix):
        name = name[len(folder.prefix):]
    if folder.delimiter in (None, "", "/"):
        return name
    parts = name.split(folder.delimiter)
    return "/".join(part.replace("/", "_") for part in parts)


def special_uses(folder: Folder) -> tuple[str, ...]:
    """The source's special-use attributes imapd can give (RFC 6154 §2;
    ``\\All`` and ``\\Flagged`` name virtual mailboxes imapd does not have)."""
    lowered = {a.lower(): a for a in SPECIAL_USES}
    return tuple(lowered[a.lower()] for a in folder.attributes if a.lower() in lowered)


def target_of(folder: Folder, folder_map: dict[str, str], local_uses: dict[str, str]) -> str | None:
    """The local mailbox for ``folder`` (None: skip it); see the module doc.
    ``local_uses``: special use -> the local mailbox that has it."""
    delimiter = folder.delimiter or "/"
    for source, target in folder_map.items():
        if folder.name == source:
            return target or None
        if folder.name.startswith(source + delimiter):
            rest = local_name(Folder(folder.name[len(source) + 1:], b"", folder.delimiter, ()))
            return f"{target}/{rest}" if target else None
    for use in special_uses(folder):
        if use in local_uses:
            return local_uses[use]
    return local_name(folder)


def usable_flags(flags: Sequence[str], errors: list[str]) -> tuple[str, ...]:
    """The flags imapd can store; others are dropped with a note (a source
    may allow keywords RFC 3501 §9 does not)."""
    kept: list[str] = []
    for flag in flags:
        try:
            check_flags([flag])
            kept.append(flag)
        except InvalidFlag:
            errors.append(f"flag {flag!r} dropped (not a valid IMAP flag here)")
    return tuple(kept)


class FolderCopy:
    """Copies one source folder into ``target`` of ``user``."""

    def __init__(self, mail: MailService, user: str, source: MailSource, in_thread: InThread,
                 tick: Tick = lambda messages, octets: None) -> None:
        self.mail = mail
        self.user = user
        self.source = source
        self.in_thread = in_thread
        self.tick = tick

    async def ensure_target(self, target: str, folder: Folder, local_uses: dict[str, str]) -> None:
        """Create ``target`` if missing, with the source's special use when
        no local mailbox has it yet (RFC 6154 §3: CREATE USE)."""
        try:
            await self.mail.target_entry(self.user, target)
            return
        except TargetMissing:
            pass
        uses = [use for use in special_uses(folder) if use not in local_uses]
        await self.mail.create_mailbox(self.user, target, " ".join(uses) or None)
        for use in uses:
            local_uses[use] = target

    async def local_fingerprints(self, target: str) -> Counter[Fingerprint]:
        """The fingerprints of the messages in ``target`` now (records, then
        their stored analysis in chunks: bounded memory)."""
        entry = await self.mail.target_entry(self.user, target)
        backend = self.mail.backend
        uids = [record.uid for record in await backend.fetch_records(entry.ref)]
        found: Counter[Fingerprint] = Counter()
        for start in range(0, len(uids), META_CHUNK):
            for record in await backend.fetch_records(entry.ref, uids[start:start + META_CHUNK],
                                                      with_meta=True):
                found[fingerprint_of_meta(record.meta, record.size, record.internal_date)] += 1
        return found

    async def run(self, folder: Folder, target: str, result: FolderResult) -> None:
        """Copy what ``target`` lacks, then count what is there (verify)."""
        count = await self.in_thread(self.source.examine, folder)
        result.source_count = count
        have = await self.local_fingerprints(target)
        wanted: Counter[Fingerprint] = Counter()
        for first in range(1, count + 1, SUMMARY_CHUNK):
            summaries = await self.in_thread(self.source.summaries, first,
                                              min(count, first + SUMMARY_CHUNK - 1))
            missing: list[Summary] = []
            for summary in summaries:
                key = fingerprint(summary.message_id, summary.size, summary.internal_date)
                wanted[key] += 1
                if have[key] > 0:
                    have[key] -= 1
                else:
                    missing.append(summary)
            self.tick(len(summaries) - len(missing), 0)
            for batch in batches(missing):
                await self.copy_batch(batch, target, result)
        now = await self.local_fingerprints(target)
        result.present = sum(min(n, now[key]) for key, n in wanted.items())
        result.source_count = sum(wanted.values())

    async def copy_batch(self, batch: list[Summary], target: str, result: FolderResult) -> None:
        try:
            await self._copy_batch(batch, target, result)
        finally:
            self.tick(len(batch), sum(s.size for s in batch))

    async def _copy_batch(self, batch: list[Summary], target: str, result: FolderResult) -> None:
        bodies: dict[int, bytes] = await self.in_thread(self.source.bodies, [s.uid for s in batch])
        items: list[AppendItem] = []
        for summary in batch:
            body = bodies.pop(summary.uid, None)
            if body is None:
                continue  # expunged on the source meanwhile: the verify counts it
            if len(body) != summary.size:
                result.errors.append(f"UID {summary.uid}: {len(body)} octets, the source said "
                                     f"{summary.size}; not copied")
                continue
            items.append(AppendItem(body, usable_flags(summary.flags, result.errors),
                                    summary.internal_date))
        if not items:
            return
        try:
            await self.mail.deliver(self.user, target, items)
        except MailError as error:
            result.errors.append(f"{len(items)} messages not stored: {error}")
            return
        result.copied += len(items)


def batches(summaries: Sequence[Summary]) -> Iterable[list[Summary]]:
    """Runs of at most ``BATCH_MESSAGES`` messages and ``BATCH_BYTES``
    octets (a larger message is a batch of its own)."""
    batch: list[Summary] = []
    size = 0
    for summary in summaries:
        if batch and (size + summary.size > BATCH_BYTES or len(batch) >= BATCH_MESSAGES):
            yield batch
            batch, size = [], 0
        batch.append(summary)
        size += summary.size
    if batch:
        yield batch


"""``imapd migrate``: every folder of the source account into the local one,
then a per-folder count of what is there (the verify table).

The source connection is blocking (``imaplib``): every call on it runs in a
worker thread (``InThread``); the mail core runs where its caller runs (the
reactor thread under ``imapd.app.run_with_mail``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Protocol, TextIO

from imapd.importer.progress import Progress
from imapd.mail.service import MailService
from imapd.migrate.client import Folder, MailSource, SourceError
from imapd.migrate.copy import FolderCopy, FolderResult, InThread, target_of


class ConnectedSource(MailSource, Protocol):
    def logout(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Plan:
    user: str
    folder_map: dict[str, str]


async def migrate_account(mail: MailService, connect: Callable[[], ConnectedSource], plan: Plan,
                          in_thread: InThread, stream: TextIO) -> int | str:
    """Connect (in a worker thread), copy (``migrate``), log out, print the
    table (``report``) on stdout: the exit status, or one line when the
    source could not be reached, logged in to or listed (exit status 2)."""
    try:
        source = await in_thread(connect)
    except SourceError as error:
        return str(error)
    try:
        results = await migrate(mail, source, plan, in_thread, stream)
    except SourceError as error:
        return str(error)
    finally:
        await in_thread(source.logout)
    return report(results)


async def migrate(mail: MailService, source: MailSource, plan: Plan, in_thread: InThread,
                  stream: TextIO, bar: bool | None = None) -> list[FolderResult]:
    """Copy every selectable source folder (LIST order), each into its
    target (``copy.target_of``); a folder that fails is noted and the
    others go on. A target is subscribed when its source folder is
    (RFC 3501 §6.3.6; existing subscriptions are kept). The progress bar (``imapd.importer.progress``: on a
    terminal only, unless ``bar``) counts the source's messages."""
    local_uses = {use: info.name for info in await mail.list_mailboxes(plan.user, "", "*")
                  for use in info.special_uses}
    work: list[tuple[Folder, str | None]] = []
    total = 0
    for folder in await in_thread(source.folders):
        if folder.selectable:
            target = target_of(folder, plan.folder_map, local_uses)
            work.append((folder, target))
            total += await in_thread(source.count, folder) if target is not None else 0
    subscribed = await in_thread(source.subscribed)
    progress = Progress(total, stream, bar, label="migrate")
    copier = FolderCopy(mail, plan.user, source, in_thread, progress.advance)
    results: list[FolderResult] = []
    try:
        for folder, target in work:
            result = FolderResult(folder.name, target)
            results.append(result)
            if target is not None:
                await _copy_folder(copier, folder, target, local_uses, result, folder.name in subscribed)
    finally:
        progress.close()
    return results


async def _copy_folder(copier: FolderCopy, folder: Folder, target: str, local_uses: dict[str, str],
                       result: FolderResult, subscribe: bool) -> None:
    try:
        await copier.ensure_target(target, folder, local_uses)
        if subscribe:  # clients that show subscribed folders only see it as before
            await copier.mail.subscribe(copier.user, target)
        await copier.run(folder, target, result)
    except Exception as error:  # noqa: BLE001 - reported in the table, the rest goes on
        result.errors.append(f"{type(error).__name__}: {error}")


def report(results: list[FolderResult], out: TextIO | None = None) -> int:
    """The verify table (source count, present locally, copied this run) on
    ``out`` (stdout) and the exit status: 1 if any folder is short or had errors."""
    out = out or sys.stdout
    width = max([len("source folder"), *(len(r.source) for r in results)])
    twidth = max([len("local mailbox"), *(len(r.target or "(skipped)") for r in results)])
    out.write(f"{'source folder':<{width}}  {'local mailbox':<{twidth}}  {'source':>7}  "
              f"{'local':>7}  {'copied':>7}  status\n")
    failed = False
    for r in results:
        status = "skipped" if r.target is None else ("ok" if r.ok else "MISMATCH")
        failed |= not r.ok
        out.write(f"{r.source:<{width}}  {r.target or '(skipped)':<{twidth}}  {r.source_count:>7}  "
                  f"{r.present:>7}  {r.copied:>7}  {status}\n")
        for error in r.errors[:20]:
            out.write(f"  {r.source}: {error}\n")
        if len(r.errors) > 20:
            out.write(f"  {r.source}: ... and {len(r.errors) - 20} more\n")
    copied = sum(r.copied for r in results)
    out.write(f"{copied} messages copied; {'errors or missing messages: see above' if failed else 'all present'}\n")
    return 1 if failed else 0

"""``imapd import maildir|mbox PATH --user NAME [--folder F]``: bring mail
from files into an account (issue 17; docs/migration.md).

The source is scanned first (no store open: a path that is not what it
claims is reported before anything is written), then written through the
mail core by ``imapd.importer.run`` on a reactor started for it, like
``imapd user quota``: works on SQLite and PostgreSQL and while the server
runs. Problems with single items are one line each on stderr and the
import goes on; the exit status is 1 if there were any, 2 for a usage
error or an unknown user. A progress bar is drawn on stderr when it is a
terminal; the summary goes to stdout.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from twisted.python import usage

from imapd.cli_serve import BaseOptions, StoreOptions


class _SourceOptions(StoreOptions):
    synopsis = "PATH --user NAME [--folder F] [--batch N] [--data DIR] [--store URL]"
    optParameters: list[list[Any]] = [
        ["user", "u", None, "the account to import into (it must exist)"],
        ["folder", "f", None, "put the source's top folder here and its folders below it "
                              "(default: INBOX, and the folders at the top level)"],
        ["batch", None, 100, "messages per transaction (a re-run redoes at most one batch)", int],
    ]

    def parseArgs(self, *args: str) -> None:
        if len(args) != 1:
            raise usage.UsageError("give exactly one PATH to import")
        self["path"] = Path(args[0])

    def postOptions(self) -> None:
        if not self["user"]:
            raise usage.UsageError("give the account to import into: --user NAME")
        if self["batch"] < 1:
            raise usage.UsageError("--batch must be at least 1")
        super().postOptions()


class MaildirImportOptions(_SourceOptions):
    """Maildir++ or nested maildirs (Dovecot, Courier, mutt, offlineimap)."""


class MboxImportOptions(_SourceOptions):
    """One mbox file (into INBOX or --folder), or a directory of them (Thunderbird)."""


class ImportOptions(BaseOptions):
    subCommands = [
        ["maildir", None, MaildirImportOptions, "Import a Maildir tree (flags, dates, folders)"],
        ["mbox", None, MboxImportOptions, "Import an mbox file or a directory of mbox files"],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("give a source format: maildir or mbox")


def run_import_mail(options: ImportOptions) -> int:
    """Scan, check the user, import, print the summary (see the module
    docstring)."""
    from imapd import app
    from imapd.importer import maildir, mbox
    from imapd.importer.progress import Progress
    from imapd.importer.run import Importer, Summary

    sub = options.subOptions
    config = sub.config()
    user: str = sub["user"]
    path: Path = sub["path"]
    if not path.exists():
        print(f"imapd import: {path}: no such file or directory", file=sys.stderr)
        return 2
    users = app.open_user_store(config)
    try:
        known = users.exists(user)
    finally:
        users.close()
    if not known:
        print(f"imapd import: {user}: no such user (imapd user add {user})", file=sys.stderr)
        return 2
    scan = maildir.scan if options.subCommand == "maildir" else mbox.scan
    try:
        folders = scan(path)
    except KeyboardInterrupt:
        print("imapd import: interrupted while reading the source", file=sys.stderr)
        return 1
    progress = Progress(sum(len(folder.messages) for folder in folders), sys.stderr)
    # The reactor would swallow KeyboardInterrupt and go on: Ctrl-C and
    # SIGTERM instead ask the importer to stop after the message at hand
    # (committed batches stay; a re-run resumes).
    stop: list[int] = []
    previous = {signum: signal.signal(signum, lambda number, _: stop.append(number))
                for signum in (signal.SIGINT, signal.SIGTERM)}

    async def work(mail: Any) -> Summary:
        importer = Importer(mail, user, sub["folder"], progress, sub["batch"], lambda: bool(stop))
        return await importer.run(folders)

    try:
        summary: Summary = app.run_with_mail(config, work)
    finally:
        progress.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(f"imapd import: {summary.line()}", flush=True)
    return 1 if summary.errors else 0

"""``imapd migrate --from imaps://USER@HOST --user NAME``: copy an account
from another IMAP server (``imapd.migrate``; docs/migration.md § IMAP).

The password comes from ``--password-file``, else ``$IMAPD_MIGRATE_PASSWORD``,
else a prompt on the terminal: never from the command line (other users can
read it in ``ps``) and never printed. Works while the server runs: the
store is opened as ``imapd deliver`` opens it (``imapd.app.run_with_mail``).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

from twisted.python import usage

from imapd.cli_serve import StoreOptions

PASSWORD_ENV = "IMAPD_MIGRATE_PASSWORD"


class MigrateOptions(StoreOptions):
    synopsis = "imapd migrate --from imaps://USER@HOST[:PORT] --user NAME [options]"
    optFlags = [
        ["starttls", None, "imap:// URL: upgrade with STARTTLS before logging in (RFC 3501 §6.2.1)"],
        ["plain-ok-on-loopback", None, "imap:// URL to a loopback address: allow no TLS at all"],
        ["insecure", None, "do not verify the source's TLS certificate (a warning is printed)"],
    ]
    optParameters: list[list[Any]] = [
        ["from", None, None, "the source account: imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]"],
        ["user", "u", None, "the local account to copy into (it must exist)"],
        ["password-file", None, None, f"read the source password from this file's first line "
         f"(else ${PASSWORD_ENV}, else a prompt)"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["folder-map"] = []

    def opt_folder_map(self, pair: str) -> None:
        """SOURCE=TARGET: SOURCE and its subfolders go to TARGET (empty: skipped); repeatable"""
        self["folder-map"].append(pair)

    def postOptions(self) -> None:
        from imapd.migrate.client import SourceURL
        from imapd.migrate.copy import parse_folder_map

        if not self["from"] or not self["user"]:
            raise usage.UsageError("give --from imaps://USER@HOST and --user NAME")
        try:
            self["url"] = SourceURL.parse(self["from"])
            self["map"] = parse_folder_map(self["folder-map"])
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        if self["starttls"] and self["url"].tls:
            raise usage.UsageError("--starttls is for imap:// URLs (imaps:// is TLS already)")
        super().postOptions()  # --store


def read_password(options: MigrateOptions) -> str:
    """See the module docstring; an empty password is refused."""
    if options["password-file"]:
        try:
            text = Path(options["password-file"]).read_text(encoding="utf-8")
        except OSError as error:
            raise usage.UsageError(f"--password-file: {error.strerror}: {options['password-file']}") from None
        password = text.splitlines()[0] if text else ""
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {options['url']}: ")
    else:
        raise usage.UsageError(f"no password: give --password-file or ${PASSWORD_ENV} (no terminal to ask on)")
    if not password:
        raise usage.UsageError("the source password is empty")
    return password


def run_migrate(options: MigrateOptions) -> int:
    """Exit 0 when every source message is present locally, 1 when a folder
    is short or had errors (the table says which), 2 on a usage problem or
    when the source cannot be reached or logged in to."""
    from imapd import app
    from imapd.mail.service import MailService
    from imapd.migrate.client import Source
    from imapd.migrate.run import Plan, migrate_account

    config = options.config()
    try:
        password = read_password(options)
    except usage.UsageError as error:
        print(f"imapd migrate: {error}", file=sys.stderr)
        return 2
    app.check_store(config)
    users = app.open_user_store(config)
    try:
        if not users.exists(options["user"]):
            print(f"imapd migrate: no local user {options['user']!r} (imapd user add first)", file=sys.stderr)
            return 2
    finally:
        users.close()
    if options["insecure"]:
        print("imapd migrate: warning: --insecure: the source's certificate is not checked; "
              "anyone on the path can read the password and the mail", file=sys.stderr)
    plan = Plan(options["user"], options["map"])

    async def work(mail: MailService) -> int | str:
        runtime = mail.runtime
        assert runtime is not None  # app.open_mail always gives one

        def connect() -> Source:
            return Source(options["url"], password, starttls=options["starttls"],
                          plain_ok=options["plain-ok-on-loopback"], insecure=options["insecure"])

        return await migrate_account(mail, connect, plan, runtime.in_thread, sys.stderr)

    try:
        outcome = app.run_with_mail(config, work)
    except KeyboardInterrupt:  # what was stored is complete (each batch is atomic): run again
        print("imapd migrate: interrupted; run the same command again to resume", file=sys.stderr)
        return 1
    if isinstance(outcome, str):
        print(f"imapd migrate: {outcome}", file=sys.stderr)
        return 2
    return int(outcome)

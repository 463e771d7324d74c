"""``imapd user del`` and ``imapd user rename``: a user is an entry in the
user store *and* mail in the mail store; these change both (issue 17).
``imapd.cli`` keeps the options classes and calls ``run_del`` /
``run_rename``.

``user del NAME`` removes the entry (no new logins from then on), asks
the running server(s) on the data directory to close NAME's sessions
(the admin socket, ``imapd.net.admin``; IMAP ``* BYE``, POP3 ``-ERR``),
then removes the mail: every mailbox and message, the subscriptions, the
quota limits and usage (``MailService.delete_account``). An account made
later under the same name starts empty.

``user del NAME --keep-mail NEWNAME`` removes the entry the same way but
gives the mail to NEWNAME (``MailService.rename_account``): mailboxes,
UIDVALIDITY and UIDs kept. NEWNAME must not be a user (``imapd user add
NEWNAME`` afterwards makes the mail reachable again) and must have no mail.

``user rename OLD NEW``: the entry (password and SCRAM keys kept) and the
mail move to NEW; OLD's sessions are closed. NEW must not be a user and
must have no mail.

Each step is atomic; the order (entry, sessions, mail) means a failure
part way leaves no one able to log in to half an account. Sessions on
other machines sharing a PostgreSQL store are not reached (each frontend
has its own admin socket); they notice the deleted mailboxes at their
next command (``MailboxDeleted``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imapd.accounts.store import UserStore
from imapd.accounts.users import UnknownUser, UserDatabaseError, UserExists, validate_name
from imapd.mail.errors import MailError
from imapd.mail.service import MailService


def kick(data_dir: Path, name: str) -> int | None:
    """Close ``name``'s sessions on the server(s) running on ``data_dir``
    (blocking); how many, or None when no server runs there."""
    from imapd.net.admin import ask

    reply = ask(data_dir, {"command": "kick", "user": name})
    if reply is None:
        return None
    return int(reply.get("closed", 0))


def _sessions(closed: int | None) -> str:
    if closed is None:
        return "no server running"
    return f"closed {closed} session{'' if closed == 1 else 's'}"


async def _in_thread(mail: MailService, fn: Any, *args: Any) -> Any:
    """Blocking store and socket calls off the reactor thread."""
    if mail.runtime is None:
        return fn(*args)
    return await mail.runtime.in_thread(fn, *args)


async def _require_no_mail(mail: MailService, name: str) -> None:
    if (await mail.quota(name)).messages_used:
        raise UserDatabaseError(f"{name!r} has mail: choose a name without any")


def _run(sub: Any, work: Any) -> Any:
    """``work(mail)`` on a mail service of the store; mail errors (the
    target got mail meanwhile) are one line like the user store's."""
    from imapd import app

    try:
        return app.run_with_mail(sub.config(), work)
    except MailError as error:
        raise UserDatabaseError(str(error)) from None


def run_del(sub: Any, db: UserStore) -> int:
    """``imapd user del NAME [--keep-mail NEWNAME]``."""
    name, keep = sub["name"], sub["keep-mail"]
    if not db.exists(name):
        raise UnknownUser(f"no such user: {name!r}")
    if keep is not None:
        validate_name(keep)
        if keep == name or db.exists(keep):
            raise UserExists(f"--keep-mail: {keep!r} is a user; give a name no user has")
    data_dir = sub.config().data_dir

    async def work(mail: MailService) -> int | None:
        if keep is not None:
            await _require_no_mail(mail, keep)
        await _in_thread(mail, db.delete, name)
        closed: int | None = await _in_thread(mail, kick, data_dir, name)
        if keep is not None:
            await mail.rename_account(name, keep)
        else:
            await mail.delete_account(name)
        return closed

    closed = _run(sub, work)
    kept = f", mail kept as {keep}" if keep is not None else " and their mail"
    print(f"imapd: deleted user {name}{kept} ({_sessions(closed)})")
    return 0


def run_rename(sub: Any, db: UserStore) -> int:
    """``imapd user rename OLD NEW``."""
    old, new = sub["old"], sub["new"]
    validate_name(new)
    if not db.exists(old):
        raise UnknownUser(f"no such user: {old!r}")
    if old == new or db.exists(new):
        raise UserExists(f"user {new!r} already exists")
    data_dir = sub.config().data_dir

    async def work(mail: MailService) -> int | None:
        await _require_no_mail(mail, new)
        await _in_thread(mail, db.rename, old, new)
        closed: int | None = await _in_thread(mail, kick, data_dir, old)
        await mail.rename_account(old, new)
        return closed

    closed = _run(sub, work)
    print(f"imapd: renamed user {old} to {new}, with their mail ({_sessions(closed)})")
    return 0

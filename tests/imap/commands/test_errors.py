"""The mail-error table (``imapd.imap.commands.errors``): every ``MailError``
a handler lets through becomes exactly one tagged NO/BAD with its RFC 5530
code and the error's own text (RFC 3501 §7.1, RFC 5530 §3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.imap.commands.context import ANY_STATE, CommandContext, CommandSpec, Completion
from imapd.imap.commands.dispatch import Dispatcher
from imapd.imap.commands.errors import ERROR_TABLE
from imapd.imap.commands.registry import Registry
from imapd.imap.wire import commands as c
from imapd.imap.wire.encode import encode_response
from imapd.mail import errors as e
from tests.imap.commands.harness import Client, MailServer
from tests.support.context import make_context, make_users, result_of

# Every MailError and the exact tagged line it must give.
EXPECTED: dict[type[e.MailError], bytes] = {
    e.NoSuchMailbox: b"t NO [NONEXISTENT] why not\r\n",
    e.TargetMissing: b"t NO [TRYCREATE] why not\r\n",
    e.AlreadyExists: b"t NO [ALREADYEXISTS] why not\r\n",
    e.HasChildren: b"t NO [HASCHILDREN] why not\r\n",
    e.Cannot: b"t NO [CANNOT] why not\r\n",
    e.ReadOnly: b"t NO [READ-ONLY] why not\r\n",
    e.OverQuota: b"t NO [OVERQUOTA] why not\r\n",
    e.OverLimit: b"t NO [LIMIT] why not\r\n",
    e.StorageFull: b"t NO [OVERQUOTA] why not\r\n",
    e.InvalidFlag: b"t BAD why not\r\n",
    e.Unavailable: b"t NO [UNAVAILABLE] why not\r\n",
    e.InUse: b"t NO [INUSE] why not\r\n",
    e.MailError: b"t NO why not\r\n",
}


def test_every_mail_error_has_a_row() -> None:
    """A new error kind must be given its IMAP answer on purpose."""
    kinds = {cls for cls in vars(e).values()
             if isinstance(cls, type) and issubclass(cls, e.MailError)}
    assert kinds == set(EXPECTED)
    assert set(ERROR_TABLE) == kinds - {e.MailError}


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda k: k.__name__)
def test_dispatcher_answers_each_mail_error(tmp_path: Path, kind: type[e.MailError]) -> None:
    async def failing(cmd: c.Noop, ctx: CommandContext) -> Completion:
        raise kind("why not")

    dispatcher = Dispatcher(Registry([CommandSpec(c.Noop, failing, ANY_STATE)]), 5)
    ctx, recorder, _ = make_context(make_users(tmp_path, alice="pw"))
    outcome = result_of(dispatcher.dispatch(c.Noop("t"), ctx))
    assert outcome is not None and recorder.sent == []
    assert encode_response(outcome.reply) == EXPECTED[kind]


def test_a_subclass_takes_its_parents_row(tmp_path: Path) -> None:
    class Vanished(e.NoSuchMailbox):
        pass

    async def failing(cmd: c.Noop, ctx: CommandContext) -> Completion:
        raise Vanished("gone meanwhile")

    dispatcher = Dispatcher(Registry([CommandSpec(c.Noop, failing, ANY_STATE)]), 5)
    ctx, _, _ = make_context(make_users(tmp_path, alice="pw"))
    outcome = result_of(dispatcher.dispatch(c.Noop("t"), ctx))
    assert outcome is not None
    assert encode_response(outcome.reply) == b"t NO [NONEXISTENT] gone meanwhile\r\n"


def test_mail_errors_over_the_wire(server: MailServer, client: Client) -> None:
    """The service's own errors, end to end, keep the texts clients saw."""
    server.create("Box")
    server.create("Box/Child")
    client.transcript(
        """
        C: a CREATE Box
        S: a NO [ALREADYEXISTS] Mailbox already exists: Box
        C: b DELETE INBOX
        S: b NO [CANNOT] INBOX cannot be deleted
        C: c STATUS Nope (MESSAGES)
        S: c NO [NONEXISTENT] Mailbox does not exist: Nope
        C: d APPEND Nope {1+}
        C: x
        S: d NO [TRYCREATE] Mailbox does not exist: Nope
        C: e CREATE "a*b"
        S: e NO [CANNOT] Invalid mailbox name: wildcards * and % are not allowed
        """
    )

"""Run handlers and the dispatcher without sockets or a reactor.

``make_context`` builds a real ``CommandContext`` whose ``send`` records
responses, whose continuation reader answers from a list of client lines,
and whose runtime sleeps on a ``task.Clock`` and runs "threads" inline, and
whose ``mail`` is a ``MailService`` when asked (``make_mail``: the SQLite
backend in inline mode, so its coroutines finish synchronously).
``result_of`` drives a coroutine and returns its result (it must finish
without the clock advancing unless the test advances it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Coroutine, Iterable, TypeVar

import argon2
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from imapd.imap.commands.context import CommandContext, ConnectionClosed, Features
from imapd.mail.service import MailService
from imapd.storage.sqlite.backend import open_backend
from imapd.core.config import Config, Limits
from imapd.core.model import Secret
from imapd.net.runtime import InlineRuntime
from imapd.imap.session.state import Session
from imapd.accounts.users import UserDatabase
from imapd.imap.wire.responses import Continuation, Response

T = TypeVar("T")


def cheap_hasher() -> argon2.PasswordHasher:
    """argon2id with the smallest costs: tests need speed, not strength."""
    return argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_mail(directory: Path, clock: Clock | None = None) -> MailService:
    """A mail service over the SQLite backend in ``directory``, inline mode
    (``hop=None``: every call completes before it returns)."""
    return MailService(open_backend(directory, hop=None), InlineRuntime(clock or Clock()))


def make_users(directory: Path, **passwords: str) -> UserDatabase:
    users = UserDatabase.in_data_dir(directory, hasher=cheap_hasher())
    for name, password in passwords.items():
        users.add(name, Secret(password.encode()))
    return users


@dataclass
class Recorder:
    """What a handler sent, and the lines the "client" will answer with."""

    sent: list[Response] = field(default_factory=list)
    prompts: list[Continuation] = field(default_factory=list)
    client_lines: deque[bytes | None] = field(default_factory=deque)

    def send(self, response: Response) -> None:
        self.sent.append(response)

    def read_continuation(self, prompt: Continuation) -> Deferred[bytes]:
        self.sent.append(prompt)
        self.prompts.append(prompt)
        if not self.client_lines:
            return fail(ConnectionClosed())
        line = self.client_lines.popleft()
        return fail(ConnectionClosed()) if line is None else succeed(line)


def make_context(
    users: UserDatabase,
    *,
    clock: Clock | None = None,
    limits: Limits | None = None,
    client_lines: Iterable[bytes | None] = (),
    features: Features | None = None,
    session: Session | None = None,
    mail: MailService | None = None,
) -> tuple[CommandContext, Recorder, Clock]:
    clock = clock or Clock()
    recorder = Recorder(client_lines=deque(client_lines))
    config = Config(data_dir=users.path.parent, limits=limits or Limits())
    ctx = CommandContext(
        session=session or Session(peer="127.0.0.1:1"),
        config=config,
        users=users,
        runtime=InlineRuntime(clock),
        features=features or Features(literal_plus=True),
        sender=recorder.send,
        continuation_reader=recorder.read_continuation,
        mail=mail,
        spawn=start,
    )
    return ctx, recorder, clock


def start(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    return Deferred.fromCoroutine(coro)


def result_of(d: Deferred[T] | Coroutine[Any, Any, T]) -> T:
    """The result of an already-finished Deferred/coroutine (else fail)."""
    if not isinstance(d, Deferred):
        d = start(d)
    results: list[T | Failure] = []
    d.addBoth(results.append)
    assert results, "coroutine did not finish"
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


class FakeView:
    """A stand-in for ``SelectedView``: hands out queued updates and
    records how the dispatcher drained it."""

    def __init__(self, pending: Iterable[Response] = ()) -> None:
        self.pending = list(pending)
        self.drains: list[bool] = []
        self.closed = False
        self.on_change: Any = None

    def drain(self, allow_expunge: bool) -> list[Response]:
        from imapd.imap.wire.responses import Expunge

        self.drains.append(allow_expunge)
        out = [r for r in self.pending if allow_expunge or not isinstance(r, Expunge)]
        self.pending = [r for r in self.pending if r not in out]
        return out

    def close(self) -> None:
        self.closed = True

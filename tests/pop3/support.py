"""A POP3 session without sockets: a recording ``Link``, a real
``MailService`` (SQLite, inline mode), the real ``Authenticator`` over a
cheap-hash user database; ``Rig.say`` runs one line and returns the exact
bytes the server sent."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from imapd.accounts.authenticator import Authenticator
from imapd.accounts.users import UserDatabase
from imapd.core.config import Limits
from imapd.mail.records import AppendItem
from imapd.mail.service import MailService
from imapd.net.runtime import InlineRuntime
from imapd.pop3.session import Outcome, Pop3Session, Pop3Settings
from tests.support.context import make_mail


@dataclass
class FakeLink:
    label: str = "pop3 session 1 (test)"
    peer_host: str = "192.0.2.1"
    is_secure: bool = False
    is_local: bool = True
    tls: bool = False
    sessions: dict[str, int] = field(default_factory=dict)
    out: list[bytes] = field(default_factory=list)
    # Answers a continuation prompt (None: the connection is gone).
    responder: Callable[[bytes], bytes | None] | None = None
    tls_started: int = 0

    @property
    def secure(self) -> bool:
        return self.is_secure

    @property
    def local(self) -> bool:
        return self.is_local

    def tls_available(self) -> bool:
        return self.tls

    def send(self, data: bytes | Iterator[bytes]) -> None:
        self.out.append(data if isinstance(data, bytes) else b"".join(data))

    def read_continuation(self, prompt: bytes) -> Deferred[bytes]:
        self.out.append(prompt)
        answer = self.responder(prompt) if self.responder is not None else None
        return fail(ConnectionError()) if answer is None else succeed(answer)

    def start_tls(self) -> None:
        self.tls_started += 1

    def user_session_count(self, user: str) -> int:
        return self.sessions.get(user, 0)

    def channel_bindings(self) -> dict[str, bytes]:
        return {}

    def take(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data


def result(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the command waited on something"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


@dataclass
class Rig:
    users: UserDatabase
    mail: MailService
    settings: Pop3Settings = field(default_factory=Pop3Settings)
    link: FakeLink = field(default_factory=FakeLink)
    clock: Clock = field(default_factory=Clock)
    session: Pop3Session = field(init=False)
    last: Outcome = field(default_factory=Outcome)

    def __post_init__(self) -> None:
        self.session = self.new_session()

    def new_session(self, **settings: Any) -> Pop3Session:
        self.settings = replace(self.settings, **settings)
        auth = Authenticator(self.users, InlineRuntime(self.clock), Limits(failed_login_delay=0))
        self.link = FakeLink(**{k: getattr(self.link, k) for k in ("is_secure", "is_local", "tls")})
        self.session = Pop3Session(self.mail, auth, self.settings, self.link)
        return self.session

    def say(self, line: bytes) -> bytes:
        self.last = result(Deferred.fromCoroutine(self.session.run(line)))
        return self.link.take()

    def login(self, user: str = "alice", password: str = "wonderland") -> bytes:
        assert self.say(f"USER {user}\r\n".encode()) == b"+OK\r\n"
        return self.say(f"PASS {password}\r\n".encode())

    def put(self, user: str, *messages: bytes, flags: tuple[str, ...] = ()) -> list[int]:
        d = Deferred.fromCoroutine(self.mail.deliver(
            user, "INBOX", [AppendItem(m, flags) for m in messages]))
        return list(result(d).uids)

    def flags(self, user: str = "alice") -> dict[int, tuple[str, ...]]:
        async def read() -> dict[int, tuple[str, ...]]:
            watch = await self.mail.open(user, "INBOX", readonly=True)
            try:
                return {rec.uid: rec.flags for rec in await watch.fetch_records()}
            finally:
                watch.close()
        return result(Deferred.fromCoroutine(read()))  # type: ignore[no-any-return]


def make_rig(tmp_path: Path, users: UserDatabase, **settings: Any) -> Rig:
    return Rig(users, make_mail(tmp_path / "mail"), Pop3Settings(**settings))

"""In-process IMAP server over ``StringTransport`` with the real mail core
(``MailService`` over the SQLite backend in inline mode: every backend call
finishes synchronously, so transcripts stay byte-exact), for command
transcripts (shared by every command test module).

    server = MailServer(tmp_path)            # mail service + users alice, bob
    client = server.connect("alice")         # greeting read, logged in
    client.transcript('''
        C: a SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        ...
        S: a OK [READ-WRITE] SELECT completed
    ''', uidvalidity=server.uidvalidity("INBOX"))

Transcript rules: each ``C:`` line is sent with CRLF appended; consecutive
``C:`` lines are sent together, then everything the server wrote must equal
the following ``S:`` lines (each with CRLF), byte for byte. So a literal is
written as ``C: a APPEND INBOX {5}`` / ``S: + Ready for literal data`` /
``C: hello``. ``${name}`` is replaced by the keyword argument ``name``
(``string.Template``; any other ``$`` is left alone). Blank lines and lines
starting with ``#`` are ignored. ``C:`` lines at the end with no ``S:``
after them assert that the server said nothing (yet).

Everything runs synchronously: the runtime is inline and the clock is a
``task.Clock`` (``server.clock.advance(s)`` for timers). Several clients of
one ``MailServer`` share one ``MailService``, as sessions of one process do.
"""

from __future__ import annotations

import datetime
import string
import textwrap
from pathlib import Path
from typing import Any, Coroutine, Iterable, Sequence, TypeVar

from twisted.internet.task import Clock

from imapd.core.config import Config, Limits
from imapd.mail.records import AppendItem, MailboxStatus, MessageRecord
from imapd.mail.service import MailService
from imapd.message import analyze
from imapd.storage.sqlite.backend import SqliteBackend, open_backend
from imapd.net.imap_factory import ImapServerFactory
from imapd.net.runtime import InlineRuntime
from imapd.imap.session.state import Session
from imapd.accounts.users import UserDatabase
from tests.support.context import make_users, result_of
from tests.support.transcript import Conversation

T = TypeVar("T")

DEFAULT_USERS = {"alice": "wonderland", "bob": "builder"}
CRLF = b"\r\n"


class TranscriptError(ValueError):
    """The transcript text itself is malformed (not a server failure)."""


def message(n: int, subject: str | None = None) -> bytes:
    """A small, valid RFC 5322 message numbered ``n``."""
    title = subject if subject is not None else f"message {n}"
    return (
        f"From: Sender <sender@example.org>\r\nTo: alice@example.org\r\n"
        f"Subject: {title}\r\nMessage-ID: <{n}@example.org>\r\n\r\nBody of {n}.\r\n"
    ).encode()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a mail coroutine (the inline SQLite backend finishes without waiting)."""
    return result_of(coro)


def parse_transcript(text: str, variables: dict[str, object]) -> list[tuple[bytes, bytes]]:
    """(client bytes, expected server bytes) steps from ``C:``/``S:`` text."""
    text = string.Template(textwrap.dedent(text)).safe_substitute(
        {k: str(v) for k, v in variables.items()}
    )
    steps: list[tuple[list[bytes], list[bytes]]] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        who, content = line[:2], line[3:] if line[2:3] == " " else line[2:]
        if who not in ("C:", "S:") or line[2:3] not in ("", " "):
            raise TranscriptError(f"transcript line must start with 'C: ' or 'S: ': {raw_line!r}")
        data = content.encode("utf-8") + CRLF
        if who == "C:":
            if not steps or steps[-1][1]:
                steps.append(([], []))
            steps[-1][0].append(data)
        else:
            if not steps:
                steps.append(([], []))  # server speaks first (e.g. after connect)
            steps[-1][1].append(data)
    return [(b"".join(c), b"".join(s)) for c, s in steps]


class Client:
    """One connection to a ``MailServer``."""

    def __init__(self, server: MailServer) -> None:
        self.server = server
        self.conv = Conversation(server.users, factory=server.factory, clock=server.clock)
        self.greeting = self.conv.read()
        self.disconnected = False

    # --- raw I/O -----------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.conv.send(data)
        # Let work deferred to the next reactor turn run (APPEND's group
        # commit waits one turn), as the real reactor would at once.
        self.server.clock.advance(0)

    def read(self) -> bytes:
        """Everything the server wrote since the last read."""
        return self.conv.read()

    def exchange(self, data: bytes) -> bytes:
        self.send(data)
        return self.read()

    def command(self, line: str) -> bytes:
        """Send one command line (CRLF added) and return the server's output."""
        return self.exchange(line.encode("utf-8") + CRLF)

    def lines(self, line: str) -> list[bytes]:
        """Like ``command`` but split into lines (without CRLF)."""
        out = self.command(line)
        assert out.endswith(CRLF), out
        return out[:-2].split(CRLF)

    def ok(self, line: str) -> list[bytes]:
        """Run a command that must end in tagged OK; return its output lines."""
        out = self.lines(line)
        tag = line.split(" ", 1)[0].encode()
        assert out[-1].startswith(tag + b" OK"), out
        return out

    # --- transcripts ---------------------------------------------------------

    def transcript(self, text: str, **variables: object) -> None:
        """Check a ``C:``/``S:`` transcript byte for byte (see module doc)."""
        for client_bytes, expected in parse_transcript(text, variables):
            if client_bytes:
                self.send(client_bytes)
            actual = self.read()
            # Compared line by line so pytest shows a readable diff; the
            # split is lossless, so this is still a byte-exact comparison.
            assert actual.split(CRLF) == expected.split(CRLF), (
                f"after sending {client_bytes!r}"
            )

    # --- connection ----------------------------------------------------------

    def login(self, user: str, password: str | None = None) -> None:
        secret = password if password is not None else self.server.passwords[user]
        out = self.command(f"login LOGIN {user} {secret}")
        assert out.startswith(b"login OK "), out

    @property
    def session(self) -> Session:
        """The server's state for this connection (for white-box checks)."""
        return self.conv.protocol.session

    @property
    def closing(self) -> bool:
        return self.conv.closing

    def disconnect(self) -> None:
        """The client goes away (the server's connectionLost runs)."""
        if not self.disconnected:
            self.disconnected = True
            self.conv.disconnect()


class MailServer:
    """One in-process server: users, a ``MailService`` over the SQLite
    backend (inline) in ``data_dir``, a factory and a clock, shared by every
    ``Client`` it connects.
    ``default_mailboxes``: (name, special use) pairs every account gets."""

    def __init__(
        self,
        tmp_path: Path,
        users: dict[str, str] | None = None,
        limits: Limits | None = None,
        default_mailboxes: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.data_dir = tmp_path / "data"
        self.passwords = dict(DEFAULT_USERS if users is None else users)
        self.users: UserDatabase = make_users(self.data_dir, **self.passwords)
        # No default special-use mailboxes unless asked (the real server
        # gives them, see imapd.core.config.DEFAULT_MAILBOXES): transcripts list
        # exactly the mailboxes they create.
        self.clock = Clock()
        self.runtime = InlineRuntime(self.clock)
        self.backend: SqliteBackend = open_backend(self.data_dir)
        self.mail = MailService(self.backend, self.runtime, default_mailboxes)
        self.factory = ImapServerFactory(
            Config(data_dir=self.data_dir, limits=limits or Limits()),
            self.users, self.mail, clock=self.clock, runtime=self.runtime,
        )
        self.clients: list[Client] = []

    def connect(self, user: str | None = "alice") -> Client:
        """A new connection, logged in as ``user`` (None: not logged in)."""
        client = Client(self)
        if user is not None:
            client.login(user)
        self.clients.append(client)
        return client

    # --- direct mail access (set-up and checks, not over IMAP) -------------

    def create(self, name: str, user: str = "alice") -> None:
        run(self.mail.create_mailbox(user, name))

    def append(
        self,
        name: str,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime.datetime | None = None,
        user: str = "alice",
    ) -> int:
        """Deliver through the mail service (with the message analysis as
        meta, as APPEND does); returns the UID."""
        item = AppendItem(message, tuple(flags), internal_date, analyze(message).to_bytes())
        uid = run(self.mail.deliver(user, name, [item])).uid
        self.clock.advance(0)  # the reactor's next turn: IDLE pushes run
        return uid

    def append_many(
        self,
        name: str,
        messages: Sequence[bytes],
        flags: Sequence[Iterable[str]] | None = None,
        user: str = "alice",
    ) -> list[int]:
        """Append several messages in one delivery (fast set-up);
        ``flags[i]`` are the flags of ``messages[i]``. Returns the UIDs."""
        items = [
            AppendItem(m, tuple(flags[i]) if flags else (), None, analyze(m).to_bytes())
            for i, m in enumerate(messages)
        ]
        uids = list(run(self.mail.deliver(user, name, items)).uids)
        self.clock.advance(0)  # the reactor's next turn: IDLE pushes run
        return uids

    def read_messages(
        self, name: str, user: str = "alice"
    ) -> list[tuple[MessageRecord, bytes]]:
        """Every message of ``name`` straight from the backend (record with
        meta, exact bytes), ascending by UID. Uses a read-only watch, so no
        \\Recent is consumed."""
        watch = run(self.mail.open(user, name, readonly=True))
        try:
            records = run(watch.fetch_records(None, with_meta=True))
            result = []
            for record in records:
                data = run(watch.read_message(record.uid))
                assert data is not None
                result.append((record, data))
            return result
        finally:
            watch.close()

    def status(self, name: str, user: str = "alice") -> MailboxStatus:
        return run(self.mail.status(user, name))

    def uidvalidity(self, name: str, user: str = "alice") -> int:
        return self.status(name, user).uidvalidity

    def mailbox_names(self, user: str = "alice") -> list[str]:
        return [info.name for info in run(self.mail.list_mailboxes(user, "", "*"))]

    def other_process(self) -> MailService:
        """A second mail service over its own backend on the same data
        directory, as a second server process has. (In inline mode backends
        over one file in one process ring each other at once; a real second
        process is heard by the threaded backend's poller.) Close it with
        ``run(service.close())``."""
        return MailService(open_backend(self.data_dir), self.runtime)

    def poll(self) -> None:
        """What the threaded backend's poller thread does: ring for commits
        of other processes (``poll_now``). Backends over one file in one
        process already rang each other at once, so this rings nothing new
        for them; sessions catch up at their next command either way."""
        self.backend.poll_now()

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
        run(self.mail.close())

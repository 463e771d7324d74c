"""One stress client: a raw asyncio connection, its MailboxModel, and the
pipelined commands it sends (RFC 3501 §5.5: the client pipelines; the
server's answers are applied in the order they arrive).

Commands are chosen by ``tests.support.stress_ops``; this module sends
them, reads every response, feeds untagged ones to the model, applies what
a real client applies itself at the end of a command (its own STORE
.SILENT, RFC 3501 §6.4.6) and records outcome and latency per command.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from tests.support.stress_model import MailboxModel, Message, uid_set_members
from tests.support.stress_wire import LineReader, Response, parse_response

MAILBOX = "INBOX"
SELECTS = ("SELECT", "EXAMINE")


class ClientFailed(Exception):
    """The connection broke or a response never came: the client stops."""


@dataclass
class StoreChange:
    """A STORE .SILENT the client applies itself once it succeeded."""

    members: str  # sequence set text
    by_uid: bool
    sign: str  # "+", "-" or ""
    flags: list[str]
    mark: int = 0  # the model's flag_updates when the command was sent


@dataclass
class Command:
    """``name`` labels statistics; ``verb`` is what the server runs
    (``FETCH``, ``UID FETCH``, ...); ``text`` the bytes after the tag."""

    name: str
    verb: str
    text: bytes
    store: StoreChange | None = None
    resync: str = ""  # SELECT (QRESYNC ...): "known" (with known UIDs) or "all"


@dataclass
class Stats:
    """Shared by all clients of a run."""

    operations: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    rejection_samples: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def record(self, name: str, seconds: float, status: str, line: bytes) -> None:
        self.operations[name] += 1
        self.latencies.setdefault(name, []).append(seconds)
        if status != "OK":
            self.rejected[name] += 1
            if len(self.rejection_samples) < 20:
                self.rejection_samples.append(line.decode("utf-8", "replace"))


Sink = Callable[[str, str, str], None]  # (client, kind, detail)


class StressClient:
    """A connection that logs in, selects INBOX and runs batches."""

    def __init__(self, name: str, address: tuple[str, int], credentials: tuple[str, str],
                 stats: Stats, sink: Sink, *, qresync: bool = False, timeout: float = 60.0) -> None:
        self.name = name
        self.address = address
        self.credentials = credentials
        self.stats = stats
        self.sink = sink
        self.qresync = qresync
        self.timeout = timeout
        self.model = MailboxModel(lambda kind, detail: sink(self.name, kind, detail))
        self.pending: deque[tuple[str, Command]] = deque()
        self.tags = 0
        self.reader: LineReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.failed = False
        self.refetch = False  # a QRESYNC SELECT did not add up: fetch everything
        self.selected_here = False  # a mailbox is selected on this connection

    # --- connection ----------------------------------------------------------

    async def connect(self, *, examine: bool = False, resync: str = "") -> None:
        """Connect, log in, ENABLE QRESYNC (RFC 7162 §3.2.3) if asked, and
        select INBOX: plainly (then fetch every UID and flag, as a client
        without a cache does) or, with ``resync``, with QRESYNC parameters
        from the model (see ``select``)."""
        stream_reader, self.writer = await asyncio.open_connection(*self.address, limit=1 << 22)
        self.selected_here = False
        self.reader = LineReader(stream_reader)
        greeting = parse_response(await self._read())
        if greeting.word != "OK":
            self.failed = True
            self.sink(self.name, "greeting-refused", greeting.raw.decode("utf-8", "replace"))
            raise ClientFailed(self.name)
        user, password = self.credentials
        login = await self.run([Command("LOGIN", "LOGIN", f"LOGIN {user} {password}".encode())])
        if login[0].word != "OK":
            self.failed = True
            self.sink(self.name, "login-refused", login[0].raw.decode("utf-8", "replace"))
            raise ClientFailed(self.name)
        if self.qresync:
            await self.run([Command("ENABLE", "ENABLE", b"ENABLE QRESYNC")])
        await self.select(examine=examine, resync=resync)

    def _select_text(self, verb: str, resync: str) -> str:
        """``SELECT INBOX`` or ``SELECT INBOX (QRESYNC (uidvalidity modseq
        [known-uids]))`` (RFC 7162 §3.2.5) with the last HIGHESTMODSEQ the
        server reported in a response code."""
        text = f"{verb} {MAILBOX}"
        if resync:
            model = self.model
            text += f" (QRESYNC ({model.uidvalidity} {model.highestmodseq}"
            known = ",".join(str(uid) for uid in sorted(model.by_uid()))
            text += f" {known}))" if resync == "known" and known else "))"
        return text

    async def select(self, *, examine: bool = False, resync: str = "") -> None:
        """SELECT or EXAMINE INBOX; with ``resync`` ("known": with the
        known-UIDs list, "all": without) a QRESYNC resynchronisation, then
        a fetch of the messages above the known ones; otherwise (or if the
        resynchronisation did not add up) ``UID FETCH 1:* (UID FLAGS)``."""
        verb = "EXAMINE" if examine else "SELECT"
        resync = resync if self.model.uidvalidity else ""
        command = Command(verb, verb, self._select_text(verb, resync).encode(), resync=resync)
        base = {uid: Message(uid, m.flags, None, m.modseq) for uid, m in self.model.by_uid().items()}
        top = max(base, default=0)
        # RFC 7162 §3.2.11: with QRESYNC, a SELECT while selected first gets [CLOSED].
        self.model.reset(after_closed=self.qresync and self.selected_here)
        # EXAMINE is read-only from its first response on (RFC 3501 §6.3.2):
        # a FETCH drained before its tagged [READ-ONLY] may show a keyword
        # its PERMANENTFLAGS () does not list.
        self.model.readonly = examine
        self.model.resync_base = base if resync else None
        await self.run([command])
        self.selected_here = self.model.selected
        if resync and not self.refetch and len(self.model.messages) > len(self.model.known_uids()):
            await self.run([Command("UID FETCH", "UID FETCH", f"UID FETCH {top + 1}:* (UID FLAGS)".encode())])
        if not resync or self.refetch:
            await self.run([Command("UID FETCH", "UID FETCH", b"UID FETCH 1:* (UID FLAGS)")])

    async def logout(self) -> None:
        if self.writer is None:
            return
        try:
            await self.run([Command("LOGOUT", "LOGOUT", b"LOGOUT")])
        except ClientFailed:
            pass
        await self.drop()

    async def drop(self) -> None:
        """Close the socket without LOGOUT."""
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.writer = self.reader = None

    # --- commands -------------------------------------------------------------

    async def _read(self) -> bytes:
        assert self.reader is not None
        try:
            async with asyncio.timeout(self.timeout):  # no task per read, unlike wait_for
                return await self.reader.response()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError) as error:
            self.failed = True
            self.sink(self.name, "no-answer", f"{type(error).__name__} waiting for {self._waiting()}")
            raise ClientFailed(self.name) from error

    def _waiting(self) -> str:
        return ", ".join(f"{tag} {command.text[:60]!r}" for tag, command in self.pending) or "greeting"

    def _write(self, commands: list[Command]) -> None:
        assert self.writer is not None
        data = bytearray()
        for command in commands:
            self.tags += 1
            tag = f"{self.name}.{self.tags}"
            if command.store is not None:
                command.store.mark = self.model.flag_updates
            data += tag.encode() + b" " + command.text + b"\r\n"
            self.pending.append((tag, command))
        self.writer.write(bytes(data))

    async def run(self, commands: list[Command]) -> list[Response]:
        """Send ``commands`` pipelined; read until every one completed.
        Returns the tagged responses in order."""
        self._write(commands)
        assert self.writer is not None
        await self.writer.drain()
        return await self._collect(time.perf_counter())

    async def _collect(self, started: float) -> list[Response]:
        done: list[Response] = []
        while self.pending:
            response = parse_response(await self._read())
            self.dispatch(response, started, done)
        return done

    def dispatch(self, response: Response, started: float, done: list[Response]) -> None:
        """Route one response: untagged to the model (under the oldest
        pending command: the server answers commands in order), tagged to
        ``finish``."""
        if response.tag == "*":
            if response.word == "BYE" and self.pending[0][1].verb != "LOGOUT":
                self.sink(self.name, "unexpected-bye", response.raw.decode("utf-8", "replace"))
            self.model.untagged(response, self.pending[0][1].verb)
            return
        if response.tag == "+":
            return  # IDLE's continuation; no command here uses a synchronising literal
        for index, (tag, command) in enumerate(self.pending):
            if tag == response.tag:
                del self.pending[index]
                self.finish(command, response, time.perf_counter() - started)
                done.append(response)
                return
        self.sink(self.name, "unknown-tag", response.raw.decode("utf-8", "replace"))

    def finish(self, command: Command, response: Response, seconds: float) -> None:
        """A command's tagged response: statistics and end-of-command rules."""
        self.stats.record(command.name, seconds, response.word, response.raw)
        ok = response.word == "OK"
        if response.code:
            self.model.code(response)
        if command.verb in SELECTS:
            self.model.select_completed(ok, response.code)
            self.refetch = bool(command.resync) and ok and \
                not self.model.finish_resync(complete=command.resync == "all")
        elif command.store is not None:
            self._finish_store(command.store, ok)
        self.model.completed(command.name)

    def _finish_store(self, change: StoreChange, ok: bool) -> None:
        top = (max(self.model.known_uids(), default=0) if change.by_uid else len(self.model.messages))
        members = uid_set_members(change.members, top) if top else []
        if "*" in change.members:  # the server's "*" may not be the client's: do not guess
            members = list(range(min(members, default=1), top + 1))
            ok = False
        if ok:
            self.model.apply_silent_store(members, change.by_uid, change.sign, change.flags, change.mark)
        else:
            self.model.forget_flags(members, change.by_uid)

    async def idle(self, seconds: float) -> None:
        """IDLE (RFC 2177) for about ``seconds``, applying what is pushed."""
        command = Command("IDLE", "IDLE", b"IDLE")
        self._write([command])
        assert self.writer is not None
        await self.writer.drain()
        started = time.perf_counter()
        done: list[Response] = []
        while True:  # until the continuation request
            response = parse_response(await self._read())
            self.dispatch(response, started, done)
            if response.tag == "+" or done:
                break
        if not done:
            await self._idle_listen(seconds, started, done)
            self.writer.write(b"DONE\r\n")
            await self._collect(started)

    async def _idle_listen(self, seconds: float, started: float, done: list[Response]) -> None:
        assert self.reader is not None
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            try:
                line = await asyncio.wait_for(self.reader.response(), left)
            except asyncio.TimeoutError:
                return
            self.dispatch(parse_response(line), started, done)


def seeded(seed: int, index: int) -> random.Random:
    """Each client's own generator, derived from the run's seed."""
    return random.Random(seed * 1_000_003 + index)

"""Durability: SIGKILL the real server in the middle of a load of APPEND /
STORE / EXPUNGE on several connections, restart it on the same data
directory, and check over IMAP that every acknowledged change (tagged OK)
is there and nothing else is, except possibly each connection's one
command that was in flight when the server died. Then check the database
is intact and that UIDs are not reused after the restart.

Each connection works alone in its own mailbox and waits for every reply
before sending the next command, so the expected state of a mailbox is
exact: acknowledged commands happened, in order; at most the last, unanswered
one may or may not have.
"""

from __future__ import annotations

import imaplib
import random
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

WORKERS = 3
LOAD_SECONDS = (0.8, 1.8)  # kill at a random moment in this window of load
FLAG_CHOICES = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Work", "$Later")
Mailbox = dict[int, tuple[bytes, frozenset[str]]]  # uid -> (bytes, flags)


class Gone(Exception):
    """The server connection died under a command."""


class DurabilityClient(RawClient):
    """Commands over a raw socket; ``command`` returns only on the tagged
    reply and raises ``Gone`` if the connection breaks first."""

    def __init__(self, server: RunningServer) -> None:
        super().__init__(server.host, server.port)
        self.tags = 0
        self.line()  # greeting

    def _fill(self) -> None:
        try:
            super()._fill()
        except EOFError:
            raise Gone("connection closed") from None
        except OSError as error:
            raise Gone(str(error)) from None

    def command(self, text: bytes, literal: bytes | None = None) -> bytes:
        self.tags += 1
        tag = b"d%d" % self.tags
        data = tag + b" " + text
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal  # LITERAL+ (RFC 7888)
        try:
            self.send(data + b"\r\n")
        except OSError as error:
            raise Gone(str(error)) from None
        return self.until_tagged(tag)[-1][len(tag) + 1:-2]

def flag_list(flags: frozenset[str]) -> bytes:
    return b"(" + " ".join(sorted(flags)).encode() + b")"


@dataclass
class Worker:
    """One connection's load and its record of what was acknowledged."""

    mailbox: str
    seed: int
    expected: Mailbox = field(default_factory=dict)
    next_uid: int = 1
    acked: dict[str, int] = field(default_factory=lambda: {"append": 0, "store": 0, "expunge": 0})
    # What the unanswered command would have made the mailbox, if anything.
    in_flight: Mailbox | None = None
    error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def run(self, server: RunningServer, stop: threading.Event) -> None:
        rng = random.Random(self.seed)
        try:
            client = DurabilityClient(server)
            assert client.command(b"LOGIN alice wonderland").startswith(b"OK")
            assert client.command(b"CREATE " + self.mailbox.encode()).startswith(b"OK")
            assert client.command(b"SELECT " + self.mailbox.encode()).startswith(b"OK")
            self.ready.set()  # logged in (argon2 takes a while): the load starts
            while not stop.is_set():
                self.step(client, rng)
        except Gone:
            pass  # the server was killed: the in-flight command stays undecided
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            self.ready.set()

    def step(self, client: DurabilityClient, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.55 or not self.expected:
            self.append(client, rng)
        elif roll < 0.85:
            self.store(client, rng)
        else:
            self.expunge(client)

    def _acknowledge(self, kind: str, reply: bytes, after: Mailbox) -> None:
        assert reply.startswith(b"OK"), (kind, reply)
        self.expected = after
        self.in_flight = None
        self.acked[kind] += 1

    def append(self, client: DurabilityClient, rng: random.Random) -> None:
        flags = frozenset(rng.sample(FLAG_CHOICES, rng.randint(0, 2)))
        if rng.random() < 0.3:
            flags |= {"\\Deleted"}
        uid = self.next_uid
        body = (
            f"Message-ID: <{self.mailbox}.{uid}@durability>\r\nSubject: {uid}\r\n\r\n".encode()
            + bytes(rng.choice(b"abcdefghij \r\n") for _ in range(rng.randint(200, 4000)))
            + b"\r\n"
        )
        after = dict(self.expected)
        after[uid] = (body, flags)
        self.in_flight = after
        reply = client.command(b"APPEND " + self.mailbox.encode() + b" " + flag_list(flags), body)
        self.next_uid += 1
        self._acknowledge("append", reply, after)

    def store(self, client: DurabilityClient, rng: random.Random) -> None:
        uid = rng.choice(sorted(self.expected))
        flags = frozenset(rng.sample(FLAG_CHOICES + ("\\Deleted",), rng.randint(0, 3)))
        after = dict(self.expected)
        after[uid] = (after[uid][0], flags)
        self.in_flight = after
        reply = client.command(b"UID STORE %d FLAGS.SILENT " % uid + flag_list(flags))
        self._acknowledge("store", reply, after)

    def expunge(self, client: DurabilityClient) -> None:
        after = {u: m for u, m in self.expected.items() if "\\Deleted" not in m[1]}
        self.in_flight = after
        reply = client.command(b"EXPUNGE")
        self._acknowledge("expunge", reply, after)


FETCH_UID = re.compile(rb"UID (\d+)")
FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def read_mailbox(imap: imaplib.IMAP4, mailbox: str) -> tuple[Mailbox, int]:
    """(uid -> (bytes, flags without \\Recent), UIDNEXT) as the server reports them."""
    typ, data = imap.select(mailbox, readonly=True)  # EXAMINE: CLOSE expunges nothing
    assert typ == "OK", data
    uidnext = imap.untagged_responses["UIDNEXT"][-1]
    assert isinstance(uidnext, bytes)
    typ, items = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    assert typ == "OK", items
    found: Mailbox = {}
    current: bytes = b""
    for item in items:
        if isinstance(item, tuple):
            current, body = item
            uid_match, flags_match = FETCH_UID.search(current), FETCH_FLAGS.search(current)
            assert uid_match and flags_match, current
            flags = frozenset(flags_match.group(1).decode().split()) - {"\\Recent"}
            found[int(uid_match.group(1))] = (body, flags)
    imap.close()
    return found, int(uidnext)


def test_acknowledged_changes_survive_sigkill(tmp_path: Path) -> None:
    workers = [Worker(f"Load{i}", seed=i) for i in range(WORKERS)]
    stop = threading.Event()
    with running_server(tmp_path, {"alice": "wonderland"}) as first:
        threads = [threading.Thread(target=w.run, args=(first, stop)) for w in workers]
        for thread in threads:
            thread.start()
        for worker in workers:
            assert worker.ready.wait(15)
        time.sleep(random.uniform(*LOAD_SECONDS))
        first.process.kill()  # SIGKILL: no shutdown code runs
        first.process.wait()
        stop.set()
        for thread in threads:
            thread.join(10)
    for worker in workers:
        assert worker.error is None, worker.error
        assert worker.acked["append"] >= 10, worker.acked  # the load really ran
    assert sum(w.acked["store"] for w in workers) > 0
    assert sum(w.acked["expunge"] for w in workers) > 0

    with running_server(tmp_path, {}) as second:
        imap = imaplib.IMAP4(second.host, second.port)
        imap.login("alice", "wonderland")
        for worker in workers:
            found, uidnext = read_mailbox(imap, worker.mailbox)
            allowed = [worker.expected] + ([worker.in_flight] if worker.in_flight else [])
            assert found in allowed, (worker.mailbox, worker.acked)
            # UIDs are never reused, even after a crash and restart.
            assert uidnext >= worker.next_uid
            typ, _ = imap.append(worker.mailbox, None, None, b"Subject: after\r\n\r\nx\r\n")
            assert typ == "OK"
            new_uids = set(read_mailbox(imap, worker.mailbox)[0]) - set(found)
            assert len(new_uids) == 1 and min(new_uids) >= worker.next_uid
        imap.logout()

    database = sqlite3.connect(second.data_dir / "mail.sqlite3")
    try:
        assert database.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        database.close()

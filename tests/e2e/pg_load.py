"""Load clients that keep a ledger of what the server acknowledged, for the
kill tests (issue 14: tests/e2e/test_postgres_kills.py).

Each ``Loader`` logs in on its home frontend, selects INBOX and repeats:

1. a MULTIAPPEND (RFC 3502) of two messages, each with a unique
   ``X-Load`` header; RFC 3502 §6.3.11: either all of them are appended or
   none, so seeing one of a pair without the other is a half-applied change;
2. ``UID STORE u1,u2 +FLAGS (\\Flagged)`` on the pair it appended last
   (one command on two messages: both flagged or neither).

Every answer is recorded: OK (with APPENDUID, RFC 4315 §3, the UIDs the
messages got) is *acknowledged*; ``NO [UNAVAILABLE]`` (RFC 5530 §3: the
store is down) or a connection lost mid-command leaves the outcome
*unknown*; anything else (BAD, NO with another code, BYE) is a protocol
error the tests forbid. A loader whose connection is lost (its frontend
was killed) comes back on the next frontend, as behind a load balancer.

``verify`` then reads the mailbox through a fresh session and returns what
is wrong: an acknowledged message missing or at another UID, a message
twice, a message nobody appended, UIDs not strictly ascending, half a
pair, an acknowledged STORE not applied, a STORE applied to one message
of its pair only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from bench.load.checks import fetches, flag_set, require_ok
from bench.load.client import ConnectionLost, ImapClient, Reply
from bench.load.wire import Malformed
from tests.e2e.frontends import Frontend, session

LOST = (ConnectionLost, OSError, TimeoutError, asyncio.IncompleteReadError)
COMMAND_TIMEOUT = 20.0


def message(key: str) -> bytes:
    return (f"From: load@example.org\r\nSubject: {key}\r\nX-Load: {key}\r\n\r\n"
            f"body of {key}\r\n").encode()


def uid_set(text: bytes) -> list[int]:
    """An APPENDUID/COPYUID uid-set (``5:6`` or ``5,6``), in order."""
    out: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        a, b = int(low), int(high or low)
        out += range(min(a, b), max(a, b) + 1)
    return out


@dataclass
class Ledger:
    """What the server told the loaders (shared by all of them)."""

    acked: dict[str, int] = field(default_factory=dict)       # key -> UID from APPENDUID
    unknown: set[str] = field(default_factory=set)            # appended maybe
    pairs: list[tuple[str, str]] = field(default_factory=list)  # every MULTIAPPEND sent
    flagged: set[str] = field(default_factory=set)            # +FLAGS (\Flagged) acknowledged
    stores: list[tuple[str, str]] = field(default_factory=list)  # every STORE sent
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)           # forbidden answers
    lost: Counter[str] = field(default_factory=Counter)       # connections lost, per loader
    ok_times: dict[str, list[float]] = field(default_factory=dict)  # per loader: each OK APPEND
    uid_order: dict[str, list[int]] = field(default_factory=dict)  # per loader, in ack order

    def answer(self, loader: str, what: str, reply: Reply) -> bool:
        """Record one tagged answer; True when it is OK."""
        code = (reply.code or b"").split(b" ")[0].upper().decode("ascii", "replace")
        if reply.status == b"OK":
            self.statuses["OK"] += 1
            return True
        label = f"{reply.status.decode()} [{code}]" if code else reply.status.decode()
        self.statuses[label] += 1
        if not (reply.status == b"NO" and code == "UNAVAILABLE"):
            self.errors.append(f"{loader} {what}: {label} {reply.text[:120]!r}")
        return False


class Loader:
    """One client of the load (see the module docstring)."""

    def __init__(self, name: str, fronts: list[Frontend], home: int, ledger: Ledger) -> None:
        self.name = name
        self.fronts = fronts
        self.at = home
        self.ledger = ledger
        self.client: ImapClient | None = None
        self.batches = 0
        self.last_pair: tuple[str, str, list[int]] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.client is None:
                    await self.connect()
                else:
                    await self.step()
            except LOST:
                self.drop()
                await asyncio.sleep(0.05)
            except Malformed as error:
                self.ledger.errors.append(f"{self.name}: malformed response: {error}")
                self.drop()
        if self.client is not None:
            self.client.abort()

    def drop(self) -> None:
        """The connection broke: count it and go to the next frontend
        (a killed one refuses connections; a live one takes us)."""
        if self.client is not None:
            self.client.abort()
            self.ledger.lost[self.name] += 1
        self.client = None
        self.at = (self.at + 1) % len(self.fronts)

    async def connect(self) -> None:
        front = self.fronts[self.at]
        client = await ImapClient.connect(front.host, front.port, COMMAND_TIMEOUT)
        for text in (b"LOGIN alice wonderland", b"SELECT INBOX"):
            reply = await client.command(text, timeout=COMMAND_TIMEOUT)
            if not self.ledger.answer(self.name, text.split()[0].decode(), reply):
                client.abort()
                await asyncio.sleep(0.1)  # the store is down: try again soon
                return
        self.client = client

    async def step(self) -> None:
        assert self.client is not None
        self.batches += 1
        keys = (f"{self.name}-{self.batches}-1", f"{self.name}-{self.batches}-2")
        self.ledger.pairs.append(keys)
        first, second = message(keys[0]), message(keys[1])
        text = (b"APPEND INBOX {%d+}\r\n" % len(first) + first + b" {%d+}\r\n" % len(second) + second)
        self.ledger.unknown.update(keys)  # until the answer says otherwise
        reply = await self.client.command(text, timeout=COMMAND_TIMEOUT)
        if self.ledger.answer(self.name, "APPEND", reply):
            code = (reply.code or b"").split()
            assert len(code) == 3 and code[0].upper() == b"APPENDUID", reply.code
            uids = uid_set(code[2])
            assert len(uids) == 2, reply.code
            self.ledger.unknown.difference_update(keys)
            self.ledger.acked.update(zip(keys, uids))
            self.ledger.ok_times.setdefault(self.name, []).append(time.perf_counter())
            self.ledger.uid_order.setdefault(self.name, []).extend(uids)
            self.last_pair = (keys[0], keys[1], uids)
        if self.last_pair is not None:
            k1, k2, uids = self.last_pair
            self.ledger.stores.append((k1, k2))
            reply = await self.client.command(b"UID STORE %d,%d +FLAGS (\\Flagged)" % tuple(uids),
                                              timeout=COMMAND_TIMEOUT)
            if self.ledger.answer(self.name, "STORE", reply):
                self.ledger.flagged.update((k1, k2))


async def run_load(loaders: list[Loader], stop: asyncio.Event) -> None:
    await asyncio.gather(*(loader.run(stop) for loader in loaders))


async def until(condition: Callable[[], bool], what: str, timeout: float) -> float:
    """Wait (polling every 20 ms) until ``condition()``; the seconds it took.
    AssertionError naming ``what`` after ``timeout``."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"{what} (not within {timeout:.0f} s)")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


def acked_since(ledger: Ledger, name: str, moment: float) -> int:
    """OK APPENDs loader ``name`` got after ``moment`` (perf_counter)."""
    return sum(1 for t in ledger.ok_times.get(name, []) if t > moment)


async def read_mailbox(front: Frontend) -> list[tuple[int, str, set[str]]]:
    """(UID, X-Load key, flags) of every INBOX message, in sequence order."""
    client = await session(front, None)
    require_ok(await client.command(b"EXAMINE INBOX"), "EXAMINE")
    reply = require_ok(await client.command(b"FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-Load)])",
                                            timeout=60), "FETCH")
    await client.close()
    out = []
    for _, items in fetches(reply):
        header = next(v for k, v in items.items() if k.startswith(b"BODY[HEADER"))
        assert isinstance(header, bytes)
        key = header.split(b":", 1)[1].strip().decode() if b":" in header else ""
        out.append((int(items[b"UID"]), key, flag_set(items[b"FLAGS"])))  # type: ignore[arg-type]
    return out


def verify(ledger: Ledger, mailbox: list[tuple[int, str, set[str]]]) -> list[str]:
    """What is wrong with ``mailbox`` given ``ledger`` (see the module docstring)."""
    problems: list[str] = []
    uids = [uid for uid, _, _ in mailbox]
    if any(b <= a for a, b in zip(uids, uids[1:])):
        problems.append(f"UIDs not strictly ascending: {uids}")
    seen: dict[str, int] = {}
    flagged = {key for _, key, flags in mailbox if "\\flagged" in {f.lower() for f in flags}}
    for uid, key, _ in mailbox:
        if key in seen:
            problems.append(f"{key} twice (UIDs {seen[key]} and {uid})")
        seen[key] = uid
        if key not in ledger.acked and key not in ledger.unknown:
            problems.append(f"UID {uid}: {key!r} was never appended")
    for key, uid in ledger.acked.items():
        if seen.get(key) != uid:
            problems.append(f"acknowledged {key} (APPENDUID {uid}) is {'at ' + str(seen[key]) if key in seen else 'missing'}")
    for k1, k2 in ledger.pairs:
        if (k1 in seen) != (k2 in seen):
            problems.append(f"half a MULTIAPPEND: {k1} {'present' if k1 in seen else 'absent'}, "
                            f"{k2} {'present' if k2 in seen else 'absent'}")
    for key in ledger.flagged - flagged:
        problems.append(f"acknowledged +FLAGS (\\Flagged) on {key} not applied")
    for k1, k2 in ledger.stores:
        if k1 in seen and k2 in seen and (k1 in flagged) != (k2 in flagged):
            problems.append(f"half a STORE: \\Flagged on {k1 if k1 in flagged else k2} only")
    for name, order in ledger.uid_order.items():
        if order != sorted(order):
            problems.append(f"{name}: APPENDUIDs not ascending in acknowledgement order: {order}")
    return problems

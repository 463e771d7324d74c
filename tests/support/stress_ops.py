"""What a stress client does next: random commands from a seeded generator.

A step is either a pipelined batch of 1..``max_pipeline`` commands (FETCH,
UID FETCH, STORE ±FLAGS [.SILENT] with system flags and keywords, new ones
included, EXPUNGE, UID EXPUNGE, APPEND with flags, COPY/MOVE into the
mailbox itself, NOOP) or a lone IDLE, re-SELECT/EXAMINE or (QRESYNC runs)
a disconnect and QRESYNC reconnect. Commands that may expunge go last in a
batch so the sequence numbers chosen for the others still mean something
(RFC 3501 §5.5); a number can still be stale by the time the server runs
the command (other clients expunge meanwhile), and the answer is then NO or
BAD, which is counted, not treated as an inconsistency.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.support.stress_client import Command, StoreChange
from tests.support.stress_model import MailboxModel

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft")
KEYWORDS = ("$Label1", "$Label2", "Work", "Todo", "$Junk", "NIL")
# Relative weights of batch commands.
WEIGHTS: dict[str, int] = {
    "FETCH": 12, "UID FETCH": 12, "STORE": 14, "STORE.SILENT": 6, "DELETE": 5,
    "EXPUNGE": 3, "UID EXPUNGE": 3, "APPEND": 8, "COPY": 3, "MOVE": 3, "NOOP": 8,
}
WRITES = {"STORE", "STORE.SILENT", "DELETE", "EXPUNGE", "UID EXPUNGE", "MOVE"}
EXPUNGING = {"EXPUNGE", "UID EXPUNGE", "MOVE"}


@dataclass(frozen=True)
class StressConfig:
    """A run: how many clients, how long, checkpoints, seed, QRESYNC."""

    clients: int = 10
    seconds: float = 5.0
    checkpoint_every: float = 1.0
    seed: int = 1
    qresync: bool = False
    initial_messages: int = 20
    max_messages: int = 60
    max_pipeline: int = 4
    new_keyword_rate: float = 0.04
    max_new_keywords: int = 8  # per client
    keywords: tuple[str, ...] = KEYWORDS
    special_rate: float = 0.06  # IDLE / re-select / reconnect instead of a batch
    user: str = "alice"
    password: str = "wonderland"


@dataclass
class Special:
    """A step that is not a batch: ``idle`` (seconds), ``select``
    (examine?) or ``reconnect`` (seconds offline; with the known-UIDs list?)."""

    kind: str
    seconds: float = 0.0
    examine: bool = False
    known_uids: bool = False


class Chooser:
    """One client's generator of steps."""

    def __init__(self, name: str, rng: random.Random, config: StressConfig) -> None:
        self.name = name
        self.rng = rng
        self.config = config
        self.new_keywords = 0
        self.appended = 0

    def step(self, model: MailboxModel) -> list[Command] | Special:
        rng = self.rng
        if rng.random() < self.config.special_rate:
            kinds = ["idle", "idle", "select"] + (["reconnect"] * 2 if self.config.qresync else [])
            kind = rng.choice(kinds)
            return Special(kind, rng.uniform(0.02, 0.2), examine=rng.random() < 0.25,
                           known_uids=rng.random() < 0.5)
        names = self._names(model)
        names.sort(key=lambda name: name in EXPUNGING)
        return [self.command(name, model) for name in names]

    def _names(self, model: MailboxModel) -> list[str]:
        weights = dict(WEIGHTS)
        size = len(model.messages)
        if model.readonly:
            weights = {k: v for k, v in weights.items() if k not in WRITES}
        elif size > self.config.max_messages:
            weights.update(DELETE=30, EXPUNGE=15, APPEND=1, COPY=0)
        elif size < self.config.initial_messages // 2:
            weights.update(APPEND=25, DELETE=1)
        count = self.rng.randint(1, self.config.max_pipeline)
        return self.rng.choices(list(weights), list(weights.values()), k=count)

    # --- sets and flags -----------------------------------------------------

    def seq_set(self, model: MailboxModel, *, wide: bool = True) -> str:
        """A few sequence numbers; ``1:*`` sometimes if ``wide``."""
        size = len(model.messages)
        if size == 0 or (wide and self.rng.random() < 0.1):
            return "1:*"
        first = self.rng.randint(1, size)
        last = min(size, first + self.rng.randint(0, 2))
        return str(first) if first == last else f"{first}:{last}"

    def uid_set(self, model: MailboxModel, *, wide: bool = True, star: bool = True) -> str:
        """A few known UIDs, the ones above them, or ``1:*`` if ``wide``;
        never ``*`` if not ``star`` (and there are known UIDs)."""
        known = model.known_uids()
        roll = self.rng.random()
        if not known or (wide and star and roll < 0.1):
            return "1:*" if wide or not known else f"{max(known) + 1}:*"
        if star and roll < 0.2:
            return f"{max(known) + 1}:*"
        return ",".join(str(uid) for uid in sorted(self.rng.sample(known, min(len(known), 3))))

    def flags(self) -> list[str]:
        rng = self.rng
        if self.new_keywords < self.config.max_new_keywords and rng.random() < self.config.new_keyword_rate:
            self.new_keywords += 1
            return [f"$New{self.name}x{self.new_keywords}"]
        pool = list(SYSTEM_FLAGS) + list(self.config.keywords)
        return rng.sample(pool, rng.randint(1, 2))

    # --- commands -----------------------------------------------------------

    def command(self, name: str, model: MailboxModel) -> Command:
        builder = getattr(self, "_" + name.lower().replace(" ", "_").replace(".", "_"))
        result: Command = builder(model)
        return result

    def _fetch(self, model: MailboxModel) -> Command:
        return Command("FETCH", "FETCH", f"FETCH {self.seq_set(model)} (FLAGS)".encode())

    def _uid_fetch(self, model: MailboxModel) -> Command:
        text = f"UID FETCH {self.uid_set(model)} (UID FLAGS)"
        return Command("UID FETCH", "UID FETCH", text.encode())

    def _store(self, model: MailboxModel, *, silent: bool = False, flags: list[str] | None = None,
               sign: str | None = None) -> Command:
        by_uid = self.rng.random() < 0.5 and bool(model.known_uids())
        wide = flags is None and not silent  # never \Deleted on 1:*
        # A client applying its own .SILENT change must know which messages
        # it hit: "*" is the server's largest UID/number, which the client
        # may not know yet (new messages), so silent sets name them all.
        members = self.uid_set(model, wide=wide, star=not silent) if by_uid else self.seq_set(model, wide=wide)
        sign = sign if sign is not None else self.rng.choice(["+", "+", "-"])
        flags = flags or self.flags()
        suffix = ".SILENT" if silent else ""
        text = f"{'UID ' if by_uid else ''}STORE {members} {sign}FLAGS{suffix} ({' '.join(flags)})"
        change = StoreChange(members, by_uid, sign, flags) if silent else None
        name = "STORE.SILENT" if silent else ("DELETE" if flags == ["\\Deleted"] else "STORE")
        return Command(name, "UID STORE" if by_uid else "STORE", text.encode(), store=change)

    def _store_silent(self, model: MailboxModel) -> Command:
        return self._store(model, silent=True)

    def _delete(self, model: MailboxModel) -> Command:
        return self._store(model, flags=["\\Deleted"], sign="+")

    def _expunge(self, model: MailboxModel) -> Command:
        return Command("EXPUNGE", "EXPUNGE", b"EXPUNGE")

    def _uid_expunge(self, model: MailboxModel) -> Command:
        return Command("UID EXPUNGE", "UID EXPUNGE", f"UID EXPUNGE {self.uid_set(model)}".encode())

    def _append(self, model: MailboxModel) -> Command:
        self.appended += 1
        body = (f"From: {self.name}@example.org\r\nSubject: stress {self.name} #{self.appended}\r\n"
                f"\r\nbody {self.rng.random()}\r\n").encode()
        flags = self.flags() if self.rng.random() < 0.7 else []
        text = f"APPEND INBOX ({' '.join(flags)}) {{{len(body)}+}}\r\n".encode() + body
        return Command("APPEND", "APPEND", text)

    def _copy(self, model: MailboxModel) -> Command:
        return self._transfer(model, "COPY")

    def _move(self, model: MailboxModel) -> Command:
        return self._transfer(model, "MOVE")

    def _transfer(self, model: MailboxModel, verb: str) -> Command:
        if self.rng.random() < 0.5:
            uids = self.uid_set(model, wide=False)
            return Command(verb, "UID " + verb, f"UID {verb} {uids} INBOX".encode())
        return Command(verb, verb, f"{verb} {self.seq_set(model, wide=False)} INBOX".encode())

    def _noop(self, model: MailboxModel) -> Command:
        return Command("NOOP", "NOOP", b"NOOP")

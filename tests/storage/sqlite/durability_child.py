"""The process test_durability.py kills with SIGKILL.

Runs APPEND / STORE / EXPUNGE on INBOX forever. Before each operation it
prints ``I <op>`` (intent), and after the store call returned (so the store
acknowledged it as durable) ``K <result>``. Every line is flushed at once, so
the parent sees exactly what was acknowledged before the kill.

Usage: python -m tests.storage.sqlite.durability_child DATA_DIR SEED
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from imapd.mail.flags import FlagOp
from imapd.storage.sqlite.store import open_store
from tests.storage.sqlite.helpers import run

USER = "alice"
FLAGS = ["\\Seen", "\\Deleted", "\\Flagged", "$Junk"]


def body(counter: int, seed: int) -> bytes:
    return b"Subject: %d-%d\r\n\r\n" % (seed, counter) + b"x" * (counter % 7 * 1000)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(data_dir: str, seed: int) -> None:
    store = open_store(Path(data_dir))
    selection = run(store.select(USER, "INBOX", readonly=False))
    existing = list(selection.snapshot.uids)
    rng = random.Random(seed)
    say("READY")
    for counter in range(10**9):
        choice = rng.random()
        if choice < 0.5 or not existing:
            say(f"I A {seed} {counter}")
            uid = run(store.append(USER, "INBOX", body(counter, seed))).uid
            existing.append(uid)
            say(f"K {uid}")
        elif choice < 0.9:
            uid = rng.choice(existing)
            op = rng.choice(list(FlagOp))
            flags = rng.sample(FLAGS, rng.randint(0, 2))
            say(f"I S {uid} {op.name} {' '.join(flags)}".rstrip())
            run(store.store_flags(selection, [uid], op, flags))
            say("K")
        else:
            say("I X")
            gone = run(store.expunge(selection))
            existing = [u for u in existing if u not in gone]
            say("K " + " ".join(map(str, gone)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""The process test_backend_durability.py kills with SIGKILL.

A threaded ``SqliteBackend`` (real reactor, writer thread, group commit)
runs forever on INBOX: batches of 1-4 concurrent APPENDs (so several share a
COMMIT), STOREs and EXPUNGEs. Before each operation it prints ``I ...``
(intent), and after the backend call returned (the backend acknowledged it
as durable) ``K ...``. Lines are flushed at once, so the parent sees
exactly what was acknowledged before the kill.

Usage: python -m tests.storage.sqlite.backend_durability_child DATA_DIR SEED
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from imapd.mail.flags import FlagOp
from imapd.mail.records import AppendItem
from tests.storage.sqlite.backend_helpers import call, inbox, start, threaded

FLAGS = ["\\Seen", "\\Deleted", "\\Flagged", "$Junk"]


def body(counter: int, seed: int) -> bytes:
    return b"Subject: %d-%d\r\n\r\n" % (seed, counter) + b"x" * (counter % 7 * 1000)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(data_dir: str, seed: int) -> None:
    backend = threaded(Path(data_dir))
    ref = inbox(backend)
    existing = [s.uid for s in call(lambda: backend.fetch_flags(ref))]
    rng = random.Random(seed)
    counter = 0
    say("READY")
    while True:
        choice = rng.random()
        if choice < 0.5 or not existing:
            batch = list(range(counter, counter + rng.randint(1, 4)))
            counter += len(batch)
            for n in batch:
                say(f"I A {seed} {n}")
            pendings = start(*[
                (lambda n=n: backend.append(ref, [AppendItem(body(n, seed))])) for n in batch
            ])
            for n, pending in zip(batch, pendings):
                uid = pending.result().uid
                existing.append(uid)
                say(f"K A {n} {uid}")
        elif choice < 0.9:
            uid = rng.choice(existing)
            op = rng.choice(list(FlagOp))
            flags = rng.sample(FLAGS, rng.randint(0, 2))
            say(f"I S {uid} {op.name} {' '.join(flags)}".rstrip())
            call(lambda: backend.store_flags(ref, [uid], op, flags))
            say("K S")
        else:
            say("I X")
            gone = call(lambda: backend.expunge(ref))
            existing = [u for u in existing if u not in gone]
            say("K X " + " ".join(map(str, gone)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

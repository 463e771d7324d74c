"""The ``--workers`` supervisor (``imapd.net.workers.Supervisor``) with
stand-in worker processes: a worker that can never start makes the parent
give up with its status instead of restarting it forever, a worker that
became ready is restarted when it dies, and the worker description
survives the environment round trip."""

from __future__ import annotations

import os
import signal
import sys
import threading

from imapd.net.workers import Supervisor, WorkerSpec, worker_spec

# A stand-in worker: reports ready on the status pipe (as imapd serve
# does), then exits with the status given in its first argument once the
# file named in the second one exists ("" : exit at once).
STAND_IN = """
import os, sys, time
spec = os.environ["IMAPD_WORKER"].split(";")
os.write(int(spec[1]), b"ready %d\\n" % os.getpid())
flag = sys.argv[2]
while flag and not os.path.exists(flag):
    time.sleep(0.01)
sys.exit(int(sys.argv[1]))
"""


def test_spec_round_trip() -> None:
    spec = WorkerSpec(2, 4, 7, 8, (3, 5))
    assert WorkerSpec.decode(spec.encode()) == spec
    assert worker_spec({"IMAPD_WORKER": spec.encode()}) == spec
    assert worker_spec({}) is None


def test_a_worker_that_cannot_start_makes_the_parent_give_up() -> None:
    never = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor = Supervisor(never, [], 2, backoff=0.01)
    assert supervisor.run() == 3  # not a restart loop for ever
    # The first slot to fail MAX_FAILED_STARTS times stops them all; the
    # other may be a start behind on a loaded machine.
    starts = sorted(len(slot.pid_history) for slot in supervisor.slots)
    assert starts[-1] >= 5 and starts[0] >= 1, starts


def test_a_ready_worker_that_dies_is_restarted_and_sigterm_stops_all(tmp_path: object) -> None:
    flag = os.path.join(str(tmp_path), "exit")
    command = [sys.executable, "-c", STAND_IN, "0", flag]
    supervisor = Supervisor(command, [], 1, backoff=0.01)
    seen: list[int] = []

    def drive() -> None:
        import time

        deadline = time.monotonic() + 30
        while len(supervisor.slots[0].pid_history) < 2 and time.monotonic() < deadline:
            if not seen and supervisor.slots[0].ready:
                seen.append(supervisor.slots[0].pid_history[0])
                open(flag, "w").close()  # the first worker exits after being ready
            time.sleep(0.01)
        os.unlink(flag)  # the restarted one waits
        os.kill(os.getpid(), signal.SIGTERM)  # the parent is told to stop

    threading.Thread(target=drive, daemon=True).start()
    assert supervisor.run() == 0
    assert len(supervisor.slots[0].pid_history) >= 2 and seen

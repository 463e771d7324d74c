"""THREAD REFERENCES / ORDEREDSUBJECT on a large mailbox (issue 18).

    .venv/bin/python bench/thread_bench.py [--messages 100000] [--runs 3]

Fills a mailbox with threads of 1 to 20 messages (each reply's References
names the thread's root and its parent; every seventh reply has only
In-Reply-To; subjects ``topic N`` / ``Re: topic N``; one thread in 50 lost
its root, so a dummy stays at the top), starts the real server and times,
over a loopback socket, ``THREAD REFERENCES UTF-8 ALL``, ``THREAD
ORDEREDSUBJECT UTF-8 ALL`` and ``UID THREAD REFERENCES UTF-8 SEEN`` (median
of ``--runs``, server peak RSS). Then the algorithm alone on the same input
(``imapd.message.threading.references``) and on a reply chain as deep as
the mailbox. Prints the load average before and after: figures move with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.message_bench import PASSWORD, USER, Client, Server, run  # noqa: E402
from imapd.accounts.users import UserDatabase  # noqa: E402
from imapd.core.model import Secret  # noqa: E402
from imapd.mail.records import AppendItem  # noqa: E402
from imapd.mail.service import MailService  # noqa: E402
from imapd.message import analyze  # noqa: E402
from imapd.message.threading import ThreadMessage, references  # noqa: E402
from imapd.storage.sqlite import open_backend  # noqa: E402


def mail(index: int, thread: int, position: int) -> bytes:
    """One message; ``position`` 0 is the thread's root, ``<t{thread}@...>``."""
    headers = [
        f"Date: Mon, 1 Jan 2024 {index // 3600 % 24:02d}:{index // 60 % 60:02d}:{index % 60:02d} +0000",
        "From: someone@example.org",
        f"Subject: {'Re: ' if position else ''}topic {thread}",
        f"Message-ID: <{'t%d' % thread if position == 0 else 'm%d' % index}@bench.example>",
    ]
    if position:
        root = f"<t{thread}@bench.example>"
        parent = root if position == 1 else f"<m{index - 1}@bench.example>"
        if position % 7 == 0:
            headers.append(f"In-Reply-To: {parent}")
        else:
            headers.append(f"References: {root} {parent}" if position > 1 else f"References: {root}")
    return ("\r\n".join(headers) + "\r\n\r\nbody text\r\n").encode()


def messages(count: int) -> list[bytes]:
    """Threads of 1..20 messages; one in 50 lost its root (never arrives)."""
    out: list[bytes] = []
    thread = position = 0
    while len(out) < count:
        if position == thread % 20 + 1:
            thread, position = thread + 1, 0
        if not (position == 0 and thread % 50 == 49):
            out.append(mail(len(out), thread, position))
        position += 1
    return out


def fill(data_dir: Path, raws: list[bytes]) -> float:
    UserDatabase.in_data_dir(data_dir).add(USER, Secret(PASSWORD.encode()))
    service = MailService(open_backend(data_dir))
    start = time.perf_counter()
    for first in range(0, len(raws), 1000):
        items = [
            AppendItem(raw, ("\\Seen",) if i % 2 else (), None, analyze(raw).to_bytes())
            for i, raw in enumerate(raws[first:first + 1000], start=first)
        ]
        run(service.deliver(USER, "INBOX", items))
    elapsed = time.perf_counter() - start
    run(service.close())
    return elapsed


def over_imap(data_dir: Path, runs: int) -> None:
    server = Server(data_dir)
    try:
        client = Client(server)
        client.command(f"LOGIN {USER} {PASSWORD}")
        client.command("SELECT INBOX")
        for command in ("THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL",
                        "UID THREAD REFERENCES UTF-8 SEEN"):
            times: list[float] = []
            size = 0
            server.reset_peak()
            for _ in range(runs):
                start = time.perf_counter()
                _, _, last = client.command(command)
                times.append(time.perf_counter() - start)
                size = len(last)
            print(f"{command:<36} median {statistics.median(times):7.2f} s  "
                  f"min {min(times):6.2f}  max {max(times):6.2f}  response {size:,} bytes  "
                  f"server peak RSS {server.status('VmHWM') // 1024} MiB", flush=True)
        client.command("LOGOUT")
    finally:
        server.stop()


def algorithm_only(count: int) -> None:
    from imapd.message.basesubject import base_subject
    from imapd.message.headers import first_values
    from imapd.message.threading import parent_ids, parse_msg_ids

    inputs = []
    for seq, raw in enumerate(messages(count), start=1):
        fields = first_values(raw.split(b"\r\n\r\n")[0], (b"message-id", b"references",
                                                          b"in-reply-to", b"subject"))
        base = base_subject(fields.get(b"subject"))
        inputs.append(ThreadMessage(seq, seq, float(seq), base.text.upper(), base.is_reply_or_forward,
                                    parse_msg_ids(fields.get(b"message-id"))[0],
                                    parent_ids(fields.get(b"references"), fields.get(b"in-reply-to"))))
    start = time.perf_counter()
    references(inputs)
    print(f"references() alone, {count:,} messages: {time.perf_counter() - start:.2f} s")
    chain = [ThreadMessage(i, i, float(i), "", False, b"c%d@x" % i,
                           (b"c%d@x" % (i - 1),) if i > 1 else ()) for i in range(1, count + 1)]
    start = time.perf_counter()
    references(chain)
    print(f"references() alone, one {count:,}-deep reply chain: {time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        print(f"filled {args.messages:,} messages in {fill(data_dir, messages(args.messages)):.1f} s",
              flush=True)
        over_imap(data_dir, args.runs)
    algorithm_only(args.messages)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

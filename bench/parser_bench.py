"""Parser throughput: a realistic mix of client commands through framer + parser.

Usage: ``python bench/parser_bench.py [--seconds 3] [--chunk 4096]``

The mix is what a desktop client sends while syncing: many UID FETCHes of
flags and headers, body fetches with sections, SEARCH, STORE, the odd
APPEND with a 10 KB message, SELECT, LIST, NOOP. The commands are encoded
once with ``encode_command`` (synchronizing literals, as a client without
LITERAL+ sends them), concatenated into one pipelined stream, and fed to a
``Framer`` in fixed-size chunks; every frame is parsed. Prints
commands/second.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imapd.core.config import Limits  # noqa: E402
from imapd.core.model import SeqRange, Secret, SequenceSet
from imapd.imap.wire import commands as c
from imapd.imap.wire.encode_command import encode_command
from imapd.imap.wire.framer import CommandFrame, Framer
from imapd.imap.wire.parse import parse_command

K = c.FetchKind


def _message(size: int) -> bytes:
    header = (
        b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\n"
        b"Subject: quarterly report\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
        b"Message-ID: <1234@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    body = line * ((size - len(header)) // len(line) + 1)
    return (header + body)[:size]


def command_mix() -> list[c.Command]:
    """One round of a client session; weights follow a typical sync."""
    headers = c.Section((), c.SectionText.HEADER_FIELDS, ("FROM", "TO", "CC", "SUBJECT", "DATE", "MESSAGE-ID"))
    sync_fetch = c.Fetch("f1", True, SequenceSet((SeqRange(1, None),)), (
        c.FetchAttribute(K.UID), c.FetchAttribute(K.FLAGS), c.FetchAttribute(K.RFC822_SIZE),
        c.FetchAttribute(K.BODY_SECTION, headers, peek=True),
    ))
    body_fetch = c.Fetch("f2", False, SequenceSet((SeqRange(42, 42),)), (
        c.FetchAttribute(K.BODYSTRUCTURE),
        c.FetchAttribute(K.BODY_SECTION, c.Section((1, 2), c.SectionText.MIME), peek=True),
        c.FetchAttribute(K.BODY_SECTION, c.Section((1,)), peek=True, partial=c.Partial(0, 65536)),
    ))
    flags_fetch = c.Fetch("f3", True, SequenceSet((SeqRange(100, 200), SeqRange(205, 205))), (
        c.FetchAttribute(K.UID), c.FetchAttribute(K.FLAGS),
    ))
    fast = c.Fetch("f4", False, SequenceSet((SeqRange(1, 50),)), (
        c.FetchAttribute(K.FLAGS), c.FetchAttribute(K.INTERNALDATE), c.FetchAttribute(K.RFC822_SIZE),
        c.FetchAttribute(K.ENVELOPE),
    ))
    search = c.Search("s1", True, None, c.SearchAnd((
        c.SearchFlag("\\Seen", False),
        c.SearchDate(c.DateField.INTERNAL, c.DateOp.SINCE, datetime.date(2024, 1, 1)),
        c.SearchOr(c.SearchHeader("FROM", "alice"), c.SearchHeader("SUBJECT", "report")),
        c.SearchNot(c.SearchFlag("\\Deleted", True)),
    )))
    store = c.Store("t1", True, SequenceSet((SeqRange(17, 19),)), c.StoreMode.ADD, True, ("\\Seen",))
    append = c.Append(
        "a1", "Sent", ("\\Seen",),
        datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc), _message(10 * 1024),
    )
    return [
        c.Login("l1", "alice", Secret(b"correct horse")),
        c.List("l2", "", "*"),
        c.Select("s0", "INBOX"),
        sync_fetch, sync_fetch, flags_fetch, flags_fetch, flags_fetch, fast,
        body_fetch, body_fetch, search, store, store, c.Noop("n1"), c.Noop("n2"),
        c.Status("st", "Archive", ("MESSAGES", "UIDNEXT", "UNSEEN")),
        c.Copy("cp", True, SequenceSet((SeqRange(17, 19),)), "Archive"),
        append,
    ]


def run(seconds: float, chunk: int) -> tuple[int, float, int]:
    """Feed the stream repeatedly for about ``seconds``; return (commands,
    elapsed, bytes)."""
    stream = b"".join(encode_command(command) for command in command_mix())
    commands = 0
    fed = 0
    limits = Limits()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        framer = Framer(limits)
        for offset in range(0, len(stream), chunk):
            for event in framer.feed(stream[offset:offset + chunk]):
                if isinstance(event, CommandFrame):
                    result = parse_command(event.data)
                    if isinstance(result, c.CommandSyntaxError):
                        raise SystemExit(f"benchmark command failed to parse: {result}")
                    commands += 1
        fed += len(stream)
    return commands, time.perf_counter() - start, fed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per feed() call")
    args = parser.parse_args()
    commands, elapsed, fed = run(args.seconds, args.chunk)
    print(f"{commands} commands in {elapsed:.2f} s: {commands / elapsed:,.0f} commands/second "
          f"({fed / elapsed / 1e6:.1f} MB/s, chunk {args.chunk} B, mix of {len(command_mix())} commands)")


if __name__ == "__main__":
    main()

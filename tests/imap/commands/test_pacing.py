"""One connection's big command does not stall everyone (issue 13, item 2:
10 pipelined ``FETCH 1:*`` over 5,000 messages made another client wait
10.9 s). Per-message loops (FETCH, SEARCH, STORE) call ``ctx.pace()``,
which yields to the reactor once the connection's slice budget is spent
(``imapd.net.pipeline``: about 5 ms, or ``TURN_COMMANDS`` units with a
still clock) and stops the command when the client has gone.

In process on a ``task.Clock`` the slices are deterministic: a FETCH over
1,000 messages is answered over several reactor turns, at most one
slice's worth each. Over sockets against the real server: while one
client's SEARCH grinds through a mailbox, another client's NOOPs are
answered (before, each waited for the whole SEARCH: 3.4 s here).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from twisted.internet.task import Clock

from imapd.imap.commands import dispatch
from imapd.net import pipeline
from tests.imap.commands.harness import MailServer, message
from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

COUNT = 1000


def one_turn(clock: Clock) -> None:
    """Run the calls due now, not those they schedule (one reactor turn)."""
    calls: list[Any] = list(clock.getDelayedCalls())
    for call in [c for c in calls if c.getTime() <= clock.seconds()]:
        if call.active():
            clock.calls.remove(call)
            call.called = True
            call.func(*call.args, **call.kw)


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path)
    server.append_many("INBOX", [message(n) for n in range(COUNT)])
    yield server


def test_a_fetch_over_many_messages_is_answered_a_slice_per_turn(mailbox: MailServer) -> None:
    client = mailbox.connect()
    client.ok("s SELECT INBOX")
    client.conv.send(b"f FETCH 1:* (INTERNALDATE RFC822.SIZE)\r\n")
    answered = client.read()
    assert b"f OK" not in answered, "the whole FETCH ran in one reactor turn"
    assert 0 < answered.count(b" FETCH (") <= pipeline.TURN_COMMANDS
    turns = 1
    while b"f OK FETCH completed" not in answered:
        one_turn(mailbox.clock)
        turns += 1
        out = client.read()
        assert out.count(b" FETCH (") <= pipeline.TURN_COMMANDS
        answered += out
        assert turns < COUNT
    assert answered.count(b" FETCH (") == COUNT
    assert turns >= COUNT // pipeline.TURN_COMMANDS


def test_a_search_reading_every_message_takes_several_turns(mailbox: MailServer) -> None:
    client = mailbox.connect()
    client.ok("s SELECT INBOX")
    client.conv.send(b"q SEARCH NOT HEADER X-Missing nothing\r\n")
    assert client.read() == b"", "the whole SEARCH ran in one reactor turn"
    turns, out = 0, b""
    while b"q OK" not in out:
        one_turn(mailbox.clock)
        turns += 1
        out += client.read()
        assert turns < COUNT
    assert out.startswith(b"* SEARCH 1 2 3 ")
    assert turns >= COUNT // pipeline.TURN_COMMANDS


def test_a_command_stops_when_its_client_goes_away(mailbox: MailServer) -> None:
    client = mailbox.connect()
    client.ok("s SELECT INBOX")
    client.conv.send(b"f FETCH 1:* (INTERNALDATE)\r\n")
    assert b"f OK" not in client.read()
    client.disconnect()
    for _ in range(3):
        one_turn(mailbox.clock)
    # Nothing more is scheduled: the FETCH ended at its next yield point.
    assert mailbox.clock.getDelayedCalls() == []


def test_updates_from_another_session_are_sent_in_slices(
    mailbox: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session's STORE 1:* is one FETCH per message for this one,
    sent before its next tagged reply: paced too (every 64 by default;
    every one here, so that 1,000 need several turns of a still clock)."""
    monkeypatch.setattr(dispatch, "PACE_EVERY", 1)
    watcher = mailbox.connect()
    watcher.ok("s SELECT INBOX")
    writer = mailbox.connect()
    writer.ok("s SELECT INBOX")
    writer.ok("w STORE 1:* +FLAGS.SILENT (\\Flagged)")
    watcher.conv.send(b"n NOOP\r\n")
    out = watcher.read()
    assert b"n OK" not in out, "all updates were sent in one reactor turn"
    turns = 0
    while b"n OK NOOP completed" not in out:
        one_turn(mailbox.clock)
        turns += 1
        out += watcher.read()
        assert turns < COUNT
    assert out.count(b" FETCH (FLAGS (\\Flagged") == COUNT
    assert turns >= COUNT // pipeline.TURN_COMMANDS


# --- over sockets ------------------------------------------------------------------

MESSAGES = 2000
CRITERIA = 150  # header criteria a SEARCH evaluates for every message
MESSAGE = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("pacing")) as running:
        client = logged_in(running)
        one = b" {%d+}\r\n%s" % (len(MESSAGE), MESSAGE)
        for batch in range(MESSAGES // 500):
            client.send(b"s%d APPEND INBOX" % batch + one * 500 + b"\r\n")
            assert client.until_tagged(b"s%d" % batch)[-1].startswith(b"s%d OK " % batch)
        client.close()
        yield running


def logged_in(server: RunningServer) -> RawClient:
    client = RawClient.for_server(server, timeout=120)
    assert client.line().startswith(b"* OK ")
    client.send(b"a LOGIN alice wonderland\r\n")
    assert client.until_tagged(b"a")[-1].startswith(b"a OK ")
    return client


def test_others_are_served_while_a_search_grinds(server: RunningServer) -> None:
    heavy = logged_in(server)
    heavy.send(b"s SELECT INBOX\r\n")
    heavy.until_tagged(b"s")
    other = logged_in(server)
    criteria = b" ".join([b"NOT HEADER X-Missing foo"] * CRITERIA)
    done = threading.Event()
    reply: list[bytes] = []

    def search() -> None:
        heavy.send(b"h SEARCH " + criteria + b"\r\n")
        reply.extend(heavy.until_tagged(b"h"))
        done.set()

    thread = threading.Thread(target=search, daemon=True)
    thread.start()
    time.sleep(0.2)  # the SEARCH is under way (it takes seconds)
    answered = 0
    while not done.is_set():
        other.send(b"n%d NOOP\r\n" % answered)
        other.until_tagged(b"n%d" % answered)
        if not done.is_set():
            answered += 1
    thread.join(60)
    assert reply[-1] == b"h OK SEARCH completed\r\n"
    assert len(reply[0].split()) == MESSAGES + 2  # "* SEARCH 1 ... 2000"
    # Before: the first NOOP waited for the whole SEARCH (0 answered).
    assert answered >= 5, f"only {answered} NOOPs were answered during the SEARCH"
    heavy.close()
    other.close()

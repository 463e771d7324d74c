"""Properties of the strict checks: a well-behaved client talking to a real
imapd never triggers one, whatever it does and however its bytes are cut;
random bytes in either direction never make a check raise."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.imap.wire.mutf7 import encode_mutf7
from imapd.testing.checks import CheckSuite, ConnectionChecker
from tests.support.context import make_mail, make_users
from tests.support.transcript import Conversation
from twisted.internet.task import Clock

_EXISTS = re.compile(rb"^\* ([0-9]+) EXISTS\r$", re.MULTILINE)
_EXPUNGE = re.compile(rb"^\* ([0-9]+) EXPUNGE\r$", re.MULTILINE)
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\/%*')


class Client:
    """A careful client: waits for every answer, counts EXISTS and EXPUNGE,
    waits for '+' before literal octets and DONE. What it sends and what the
    server answers go to the checker, the client's bytes cut where
    ``cuts`` says."""

    def __init__(self, conversation: Conversation, checker: ConnectionChecker,
                 cuts: list[int]) -> None:
        self.conversation, self.checker, self.cuts = conversation, checker, cuts
        self.exists = 0
        self.tag = 0
        self.checker.server_data(conversation.read())

    def send(self, data: bytes) -> bytes:
        cut = self.cuts.pop() % (len(data) + 1) if self.cuts else len(data)
        self.checker.client_data(data[:cut])
        self.checker.client_data(data[cut:])
        answer = self.conversation.exchange(data)
        self.checker.server_data(answer)
        for line in answer.split(b"\n"):
            if _EXISTS.match(line + b"\n"):
                self.exists = int(line.split()[1])
            elif _EXPUNGE.match(line + b"\n"):
                self.exists -= 1
        return answer

    def command(self, text: bytes) -> bytes:
        self.tag += 1
        return self.send(b"t%d %s\r\n" % (self.tag, text))

    def number(self, choice: int) -> int | None:
        return choice % self.exists + 1 if self.exists else None


def act(client: Client, op: str, choice: int, name: str) -> None:
    """One client action, each in its correct form."""
    number = client.number(choice)
    if op == "append":
        client.tag += 1
        body = b"Subject: %d\r\n\r\nhi\r\n" % choice
        answer = client.send(b"t%d APPEND INBOX {%d}\r\n" % (client.tag, len(body)))
        if answer.startswith(b"+"):
            client.send(body + b"\r\n")
    elif op == "append+":
        client.command(b"APPEND INBOX (\\Seen) {2+}\r\nhi")
    elif op == "idle":
        client.tag += 1
        if client.send(b"t%d IDLE\r\n" % client.tag).startswith(b"+"):
            client.send(b"DONE\r\n")
    elif op == "create":
        client.command(b'CREATE "' + encode_mutf7(name or "x") + b'"')
    elif op == "expunge":
        client.command(b"EXPUNGE")
    elif op in ("fetch", "store", "copy") and number is not None:
        client.command({
            "fetch": b"FETCH %d (UID FLAGS)", "store": b"STORE %d +FLAGS (\\Deleted)",
            "copy": b"COPY %d INBOX",
        }[op] % number)
    elif op == "search":
        client.command(b"UID SEARCH ALL")
    elif op == "star" and client.exists:
        client.command(b"FETCH 1:* FLAGS")
    else:
        client.command(b"NOOP")


ACTIONS = st.tuples(
    st.sampled_from(["append", "append+", "idle", "create", "expunge", "fetch", "store",
                     "copy", "search", "star", "noop"]),
    st.integers(0, 50), st.text(NAME_CHARS, max_size=8))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTIONS, max_size=14), cuts=st.lists(st.integers(0, 400)))
def test_a_careful_client_never_triggers_a_check(
        actions: list[tuple[str, int, str]], cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "data"
        clock = Clock()
        conversation = Conversation(make_users(data, alice="pw"), store=make_mail(data, clock),
                                    clock=clock)
        suite = CheckSuite()
        client = Client(conversation, suite.connection("imap", 1), cuts)
        assert client.command(b"LOGIN alice pw").startswith(b"t1 OK")
        client.command(b"APPEND INBOX {0+}\r\n")
        client.command(b"SELECT INBOX")
        for op, choice, name in actions:
            act(client, op, choice, name)
        conversation.disconnect()
        assert suite.internal_errors == []
        assert suite.violations == []


IMAPISH = st.lists(st.one_of(
    st.sampled_from([b"{5}", b"{3+}", b"~{2}", b"\r\n", b"\n", b"a1 ", b"UID ", b"FETCH ",
                     b"STORE ", b"SELECT ", b"IDLE", b"DONE", b"* ", b"+ ", b"OK ", b"NO ",
                     b"EXISTS", b"EXPUNGE", b"SEARCH ", b"VANISHED ", b"(UID 7)", b"1:*",
                     b"&AOk-", b"&", b"\xff", b'"', b"(", b")", b"LOGIN x y", b"AUTHENTICATE",
                     b"[CAPABILITY LITERAL+]", b"ENABLED UTF8=ACCEPT", b"0", b"4294967296"]),
    st.binary(max_size=12)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(client=IMAPISH, server=IMAPISH, order=st.lists(st.booleans(), max_size=80))
def test_garbage_never_makes_a_check_raise(
        client: list[bytes], server: list[bytes], order: list[bool]) -> None:
    suite = CheckSuite()
    checker = suite.connection("imap", 1)
    for from_client in order:
        source = client if from_client else server
        if source:
            (checker.client_data if from_client else checker.server_data)(source.pop())
    checker.client_data(b"".join(client))
    checker.server_data(b"".join(server))
    assert suite.internal_errors == []
    for found in suite.violations:
        assert found.check and found.rfc and found.message


MISTAKES = [
    [b"a1 LOGIN alice pw\r\n", b"a2 APPEND INBOX {5}\r\nhello\r\n", b"a3 SELECT caf\xc3\xa9\r\n",
     b"a4 FETCH 9 FLAGS\n", b"a4 NOOP\r\n", b"DONE\r\n", b"a5 STORE 1 +FLAGS (\\Recent)\r\n"],
    [b"a1 FETCH 1 FLAGS\r\n", b"a2 LOGIN {5}\r\n", b"alice pw\r\n", b"a3 IDLE\r\n",
     b"a4 NOOP\r\n", b'a5 SEARCH SUBJECT "\xc3\xa9"\n'],
]
SERVER_SIDE = {b"a1": b"* 3 EXISTS\r\na1 OK\r\n", b"a2": b"+ go\r\n", b"a3": b"+ idling\r\n"}


@settings(max_examples=100, deadline=None)
@given(script=st.sampled_from(MISTAKES), cuts=st.lists(st.integers(1, 30), max_size=40))
def test_where_the_bytes_are_cut_does_not_change_the_verdict(
        script: list[bytes], cuts: list[int]) -> None:
    """The same dialogue, client bytes cut anywhere (a CR and its LF, a
    literal, a tag apart), gives the same violations as whole lines do."""
    def run(pieces_of: list[list[bytes]]) -> list[tuple[str, bytes]]:
        suite = CheckSuite()
        checker = suite.connection("imap", 1)
        checker.server_data(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n")
        for line, pieces in zip(script, pieces_of):
            for piece in pieces:
                checker.client_data(piece)
            checker.server_data(SERVER_SIDE.get(line.split(b" ")[0], b""))
        assert suite.internal_errors == []
        return [(v.check, v.line) for v in suite.violations]

    whole = run([[line] for line in script])
    assert whole
    cut: list[list[bytes]] = []
    sizes = iter(cuts)
    for line in script:
        pieces, start = [], 0
        while start < len(line):
            size = next(sizes, len(line))
            pieces.append(line[start:start + size])
            start += size
        cut.append(pieces)
    assert run(cut) == whole

"""End to end against ``imapd serve`` with stdlib imaplib (an independent
client) and raw sockets: the default special-use mailboxes of a new
account and the options that name them, LIST-EXTENDED / LIST-STATUS /
SPECIAL-USE, CREATE (USE), STATUS=SIZE, APPENDLIMIT with TOOBIG, and a
MULTIAPPEND over a socket."""

from __future__ import annotations

import imaplib
import re
import socket
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from tests.support.raw import RawClient
from tests.support.server import RunningServer, running_server

DEFAULTS = [
    b'(\\HasNoChildren) "/" INBOX',
    b'(\\HasNoChildren \\Archive) "/" Archive',
    b'(\\HasNoChildren \\Drafts) "/" Drafts',
    b'(\\HasNoChildren \\Junk) "/" Junk',
    b'(\\HasNoChildren \\Sent) "/" Sent',
    b'(\\HasNoChildren \\Trash) "/" Trash',
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    users = {"alice": "wonderland", "bob": "builder"}
    with running_server(tmp_path_factory.mktemp("mailbox-ext"), users, ["--max-literal", "1000"]) as s:
        yield s


def login(server: RunningServer, user: str = "alice", password: str = "wonderland") -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(user, password)
    return imap


def ok(result: tuple[str, Sequence[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return list(data)


def test_a_new_account_has_the_special_use_mailboxes(server: RunningServer) -> None:
    imap = login(server, "bob", "builder")
    assert ok(imap.list('""', "*")) == DEFAULTS
    assert ok(imap.lsub('""', "*")) == [
        b'() "/" Archive', b'() "/" Drafts', b'() "/" Junk', b'() "/" Sent', b'() "/" Trash']
    assert ok(imap.list('(SPECIAL-USE) ""', '"*"')) == DEFAULTS[1:]
    imap.logout()


def test_capabilities(server: RunningServer) -> None:
    imap = imaplib.IMAP4(server.host, server.port)
    for name in ("LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE",
                 "MULTIAPPEND", "APPENDLIMIT=1000", "STATUS=SIZE"):
        assert name in imap.capabilities, name
    imap.logout()


def test_create_special_use_list_status_and_status_size(server: RunningServer) -> None:
    imap = login(server)
    ok(imap._simple_command("CREATE", "Outgoing", "(USE (\\Sent))"))
    typ, data = imap._simple_command("CREATE", "All", "(USE (\\All))")
    assert typ == "NO" and imap.response("USEATTR")[1] == [b""], data
    assert ok(imap.list('""', "Outgoing")) == [b'(\\HasNoChildren \\Sent) "/" Outgoing']
    ok(imap.append("Outgoing", "(\\Seen)", None, b"Subject: a\r\n\r\n12345\r\n"))
    ok(imap.append("Outgoing", None, None, b"Subject: b\r\n\r\n1\r\n"))
    size = len(b"Subject: a\r\n\r\n12345\r\n") + len(b"Subject: b\r\n\r\n1\r\n")
    assert ok(imap.status("Outgoing", "(MESSAGES UNSEEN SIZE)")) == [
        f"Outgoing (MESSAGES 2 UNSEEN 1 SIZE {size})".encode()]
    imap.untagged_responses.pop("STATUS", None)
    listed = ok(imap.list('""', '(Outgoing Drafts) RETURN (STATUS (MESSAGES SIZE) SUBSCRIBED)'))
    assert listed == [b'(\\HasNoChildren \\Drafts \\Subscribed) "/" Drafts',
                      b'(\\HasNoChildren \\Sent) "/" Outgoing']
    assert imap.untagged_responses.pop("STATUS") == [
        b"Drafts (MESSAGES 0 SIZE 0)", f"Outgoing (MESSAGES 2 SIZE {size})".encode()]
    imap.logout()


class Raw(RawClient):
    """A line-reading socket client (imaplib cannot send MULTIAPPEND); its
    lines come without their CRLF."""

    def __init__(self, server: RunningServer) -> None:
        super().__init__(server.host, server.port)
        self.line()  # greeting

    def line(self) -> bytes:
        return super().line()[:-2]

    def command(self, data: bytes, tag: bytes | None = None) -> list[bytes]:
        self.send(data)
        return self.until_tagged(tag if tag is not None else data.split(b" ", 1)[0])

def test_multiappend_and_appendlimit_over_a_socket(server: RunningServer) -> None:
    raw = Raw(server)
    assert raw.command(b"a LOGIN alice wonderland\r\n")[-1].startswith(b"a OK")
    assert raw.command(b"b CREATE Batch\r\n") == [b"b OK CREATE completed"]
    reply = raw.command(b"c APPEND Batch (\\Seen) {5+}\r\nfirst {6+}\r\nsecond () {5+}\r\nthird\r\n")
    assert re.fullmatch(rb"c OK \[APPENDUID \d+ 1:3\] APPEND completed", reply[-1]), reply
    assert raw.command(b"d STATUS Batch (MESSAGES SIZE UNSEEN)\r\n") == [
        b"* STATUS Batch (MESSAGES 3 SIZE 16 UNSEEN 2)", b"d OK STATUS completed"]
    # RFC 7889: over the advertised limit, NO [TOOBIG] before any upload.
    assert raw.command(b"e APPEND Batch {1001}\r\n") == [b"e NO [TOOBIG] Literal too big"]
    raw.sock.sendall(b"f APPEND Batch {1000}\r\n")
    assert raw.line() == b"+ Ready for literal data"
    reply = raw.command(b"x" * 1000 + b"\r\n", tag=b"f")
    assert re.fullmatch(rb"f OK \[APPENDUID \d+ 4\] APPEND completed", reply[-1]), reply
    raw.sock.close()


@pytest.mark.parametrize(("args", "expected"), [
    (["--special-use", "Sent=Sent Items", "--special-use", "junk="], [
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasNoChildren \\Archive) "/" Archive',
        b'(\\HasNoChildren \\Drafts) "/" Drafts',
        b'(\\HasNoChildren \\Sent) "/" "Sent Items"',
        b'(\\HasNoChildren \\Trash) "/" Trash',
    ]),
    (["--no-default-mailboxes"], [b'(\\HasNoChildren) "/" INBOX']),
])
def test_operator_options_name_the_defaults(tmp_path: Path, args: list[str], expected: list[bytes]) -> None:
    with running_server(tmp_path, {"carol": "secret"}, args) as running:
        imap = login(running, "carol", "secret")
        assert ok(imap.list('""', "*")) == expected
        imap.logout()

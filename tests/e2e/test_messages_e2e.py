"""End to end: FETCH, STORE, SEARCH, COPY and their UID forms against the
real server process over a loopback socket, driven by stdlib ``imaplib``
(an independent client) and by a raw socket."""

from __future__ import annotations

import imaplib
import re
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.raw import RawClient
from tests.support.server import REPO_ROOT, RunningServer, running_server

FIXTURES = REPO_ROOT / "fixtures" / "messages"
PLAIN = (FIXTURES / "plain.eml").read_bytes()
MIXED = (FIXTURES / "mixed-attachments.eml").read_bytes()
NONASCII = (FIXTURES / "nonascii-headers.eml").read_bytes()
FLAG_TIME = time.mktime((2024, 3, 5, 9, 14, 7, 0, 0, -1))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    users = {"alice": "wonderland", "bob": "builder"}
    with running_server(tmp_path_factory.mktemp("e2e-messages"), users,
                        ["--failed-login-delay", "0.1"]) as s:
        yield s


def login(server: RunningServer, user: str = "alice", password: str = "wonderland") -> imaplib.IMAP4:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(user, password)
    return imap


def fresh_mailbox(imap: imaplib.IMAP4, name: str, messages: list[bytes]) -> None:
    assert imap.create(name)[0] == "OK"
    for message in messages:
        typ, _ = imap.append(name, "(\\Flagged)" if message is MIXED else None,
                             imaplib.Time2Internaldate(FLAG_TIME), message)
        assert typ == "OK"
    assert imap.select(name)[0] == "OK"


def test_fetch_with_imaplib(server: RunningServer) -> None:
    imap = login(server)
    fresh_mailbox(imap, "FetchBox", [PLAIN, MIXED])
    typ, data = imap.fetch("1:2", "(FLAGS INTERNALDATE RFC822.SIZE)")
    assert typ == "OK" and len(data) == 2
    first = data[0]
    assert isinstance(first, bytes)
    assert imaplib.ParseFlags(first) == (b"\\Recent",)
    assert imaplib.Internaldate2tuple(first) == time.localtime(FLAG_TIME)
    assert f"RFC822.SIZE {len(PLAIN)}".encode() in first
    typ, data = imap.fetch("2", "(BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    body_item, header_item = data[0], data[1]
    assert isinstance(body_item, tuple) and body_item[1] == MIXED
    assert isinstance(header_item, tuple)
    assert header_item[1] == b"Subject: Quarterly report\r\n\r\n"
    typ, data = imap.fetch("1", "(BODY[TEXT])")
    assert typ == "OK" and isinstance(data[0], tuple)
    assert PLAIN.endswith(data[0][1])
    assert data[1] == b" FLAGS (\\Seen \\Recent))"  # \Seen set, reported unasked
    typ, data = imap.uid("FETCH", "9999:*", "(FLAGS)")
    assert typ == "OK" and data == [b"2 (FLAGS (\\Flagged \\Recent) UID 2)"]
    typ, data = imap.fetch("2", "BODYSTRUCTURE")
    assert typ == "OK" and isinstance(data[0], bytes)
    assert data[0].startswith(b'2 (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "iso-8859-1")')
    with pytest.raises(imaplib.IMAP4.error, match="Invalid message sequence number 3"):
        imap.fetch("3", "FLAGS")
    imap.logout()


def test_store_search_copy_with_imaplib(server: RunningServer) -> None:
    imap = login(server)
    fresh_mailbox(imap, "SearchBox", [PLAIN, MIXED, NONASCII])
    typ, data = imap.store("1,3", "+FLAGS", "(\\Answered $Label1)")
    assert typ == "OK"
    assert sorted(data) == [b"1 (FLAGS (\\Answered $Label1 \\Recent))",
                            b"3 (FLAGS (\\Answered $Label1 \\Recent))"]
    assert imap.store("2", "-FLAGS.SILENT", "(\\Flagged)") == ("OK", [None])
    assert imap.search(None, "ANSWERED") == ("OK", [b"1 3"])
    assert imap.search(None, "KEYWORD", "$label1", "NOT", "FROM", "alice") == ("OK", [b"3"])
    assert imap.search(None, "OR", "FROM", "erin", "SUBJECT", "lunch") == ("OK", [b"1 2"])
    # Raw UTF-8 in a quoted string, without CHARSET (clients do send it).
    utf8_quoted: Any = '"Grüße"'.encode("utf-8")  # imaplib sends bytes arguments as they are
    assert imap.search(None, "BODY", utf8_quoted) == ("OK", [b"2"])
    assert imap.uid("SEARCH", "UNANSWERED") == ("OK", [b"2"])
    imap.literal = "Grüße".encode("utf-8")  # type: ignore[assignment]
    assert imap.search("UTF-8", "TEXT") == ("OK", [b"2"])
    typ, data = imap.search("KOI8-R", "ALL")
    assert typ == "NO" and data == [b"[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R"]
    assert imap.create("Kept")[0] == "OK"
    typ, data = imap.copy("1:2", "Kept")  # with UIDPLUS's COPYUID (RFC 4315)
    assert typ == "OK" and re.fullmatch(rb"\[COPYUID \d+ 1:2 1:2\] COPY completed", data[0])
    typ, data = imap.copy("1", "Nowhere")
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")
    assert imap.uid("COPY", "3", "SearchBox")[0] == "OK"
    typ, data = imap.noop()
    assert typ == "OK"
    assert imap.select("Kept", readonly=True)[0] == "OK"
    typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
    assert typ == "OK"
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    assert bodies == [PLAIN, MIXED]
    typ, data = imap.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "NO" and data == [b"[READ-ONLY] Mailbox is read-only"]
    imap.logout()


class Raw(RawClient):
    """A raw socket client: exact bytes in, exact bytes out."""

    recv_size = 1 << 20

    def __init__(self, server: RunningServer) -> None:
        super().__init__(server.host, server.port)
        self.line()  # greeting

    def command(self, line: bytes) -> bytes:
        """Send one command; everything up to and including its tagged reply
        (the messages here hold no line that starts with the tag)."""
        self.send(line + b"\r\n")
        return b"".join(self.until_tagged(line.split(b" ", 1)[0]))

def test_raw_two_sessions(server: RunningServer) -> None:
    imap = login(server, "bob", "builder")
    assert imap.append("INBOX", None, None, PLAIN)[0] == "OK"
    big = b"Subject: big\r\n\r\n" + b"x" * 4_000_000 + b"\r\n"
    assert imap.append("INBOX", None, None, big)[0] == "OK"
    imap.logout()
    first, second = Raw(server), Raw(server)
    for raw in (first, second):
        raw.command(b"l LOGIN bob builder")
        raw.command(b"s SELECT INBOX")
    out = first.command(b"a STORE 1 +FLAGS (\\Flagged)")
    assert out == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\na OK STORE completed\r\n"
    out = second.command(b"b NOOP")
    assert out == b"* 1 FETCH (FLAGS (\\Flagged))\r\nb OK NOOP completed\r\n"
    out = second.command(b"c FETCH 2 BODY.PEEK[]")
    header = b"* 2 FETCH (BODY[] {%d}\r\n" % len(big)
    assert out == header + big + b")\r\nc OK FETCH completed\r\n"
    out = second.command(b"d UID SEARCH FLAGGED")
    assert out == b"* SEARCH 1\r\nd OK UID SEARCH completed\r\n"
    first.close()
    second.close()


def test_fixture_files_exist() -> None:
    assert isinstance(FIXTURES, Path) and PLAIN and MIXED and NONASCII

"""CATENATE (RFC 4469): APPEND of text literals and IMAP URLs (RFC 5092)
of the user's own messages, byte-exact through the in-process server with
a real SQLite store; the stored result is read back from the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.core.config import Limits
from imapd.imap.wire.catenate_command import CatText, CatUrl
from imapd.imap.wire.lexer import ParseError, Reader
from imapd.imap.wire.parse.catenate import parse_catenate
from tests.imap.commands.harness import Client, MailServer

SOURCE = (b"From: a@example.com\r\nSubject: src\r\n"
          b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
          b"--B\r\n\r\npart one\r\n--B--\r\n")
HEADER = SOURCE[:SOURCE.index(b"\r\n\r\n") + 4]


def lit(data: bytes) -> bytes:
    return b"{%d+}\r\n%s" % (len(data), data)


@pytest.fixture
def source(server: MailServer, client: Client) -> int:
    """Drafts holds SOURCE as UID 1; the UIDVALIDITY is returned."""
    server.create("Drafts")
    server.append("Drafts", SOURCE)
    out = client.command("s STATUS Drafts (UIDVALIDITY)")
    return int(out.split(b"UIDVALIDITY ")[1].split(b")")[0])


def stored(server: MailServer, mailbox: str = "INBOX") -> list[bytes]:
    return [data for _, data in server.read_messages(mailbox)]


def test_text_and_urls_are_joined(server: MailServer, client: Client, source: int) -> None:
    body = b"\r\nnew body\r\n"
    out = client.exchange(
        b'a APPEND INBOX (\\Seen) CATENATE (URL "/Drafts;UIDVALIDITY=%d/;UID=1/;SECTION=HEADER" TEXT %s'
        b' URL "/Drafts/;uid=1/;section=1" URL "/Drafts/;UID=1/;PARTIAL=6.13")\r\n'
        % (source, lit(body)))
    assert out.startswith(b"a OK [APPENDUID "), out
    assert stored(server) == [HEADER + body + b"part one" + b"a@example.com"]


def test_bad_url_is_no_badurl_and_nothing_is_stored(
    server: MailServer, client: Client, source: int,
) -> None:
    """RFC 4469 §5: the first URL that cannot be resolved is named."""
    for url in (f"/Drafts;UIDVALIDITY={source + 1}/;UID=1", "/Drafts/;UID=9",
                "/Nowhere/;UID=1", "/Drafts/;UID=1/;SECTION=7", "imap://alice@host/Drafts/;UID=1"):
        out = client.exchange(b'a APPEND INBOX CATENATE (TEXT %s URL "%s")\r\n'
                              % (lit(b"x: y\r\n\r\n"), url.encode()))
        assert out == b"a NO [BADURL %s] Cannot use URL %s\r\n" % (url.encode(), url.encode()), out
    assert stored(server) == []


def test_missing_target_is_trycreate_before_urls(client: Client, source: int) -> None:
    out = client.exchange(b'a APPEND Nowhere CATENATE (URL "/Drafts/;UID=99")\r\n')
    assert out == b"a NO [TRYCREATE] Mailbox does not exist: Nowhere\r\n"


def test_empty_result_is_refused(server: MailServer, client: Client) -> None:
    out = client.exchange(b"a APPEND INBOX CATENATE (TEXT {0+}\r\n)\r\n")
    assert out == b"a NO Catenated message is empty\r\n"
    assert stored(server) == []


def test_appendlimit_applies_to_the_result(tmp_path: Path) -> None:
    """Each literal fits APPENDLIMIT; together they do not: NO [TOOBIG]."""
    server = MailServer(tmp_path, limits=Limits(max_literal=100))
    client = server.connect()
    server.create("Drafts")
    server.append("Drafts", b"x" * 60)
    out = client.exchange(b'a APPEND INBOX CATENATE (TEXT %s URL "/Drafts/;UID=1")\r\n'
                          % lit(b"y" * 50))
    assert out == b"a NO [TOOBIG] Catenated message too big\r\n"
    assert stored(server) == []


def test_multiappend_with_catenate_is_all_or_nothing(
    server: MailServer, client: Client, source: int,
) -> None:
    """RFC 3502 with RFC 4469: plain and catenated messages in one APPEND;
    one bad URL and none is stored."""
    plain = b"Subject: plain\r\n\r\nhi\r\n"
    out = client.exchange(b'a APPEND INBOX CATENATE (URL "/Drafts/;UID=1") %s'
                          b' CATENATE (URL "/Drafts/;UID=1/;SECTION=HEADER" TEXT %s)\r\n'
                          % (lit(plain), lit(b"b\r\n")))
    assert out.startswith(b"a OK [APPENDUID "), out
    assert stored(server) == [SOURCE, plain, HEADER + b"b\r\n"]
    out = client.exchange(b'b APPEND INBOX %s CATENATE (URL "/Drafts/;UID=5")\r\n' % lit(plain))
    assert out.startswith(b"b NO [BADURL /Drafts/;UID=5] "), out
    assert len(stored(server)) == 3


def test_badurl_text_leaves_out_what_would_end_the_code(client: Client) -> None:
    out = client.exchange(b'a APPEND INBOX CATENATE (URL "/a]b/;UID=1")\r\n')
    assert out == b"a NO [BADURL /ab/;UID=1] Cannot use URL /ab/;UID=1\r\n"


def test_parser() -> None:
    reader = Reader(b'CATENATE (TEXT {2}\r\nab url "/x/;UID=1" TEXT ~{1}\r\n\x00)')
    assert parse_catenate(reader) == (CatText(b"ab"), CatUrl("/x/;UID=1"), CatText(b"\x00"))
    for bad in (b"CATENATE ()", b'CATENATE (TEXT "quoted")', b"CATENATE (FILE x)"):
        with pytest.raises(ParseError):
            parse_catenate(Reader(bad))

"""BINARY (RFC 3516): FETCH BINARY[part]<partial>, BINARY.PEEK, BINARY.SIZE
and APPEND with literal8, as byte-exact exchanges through the in-process
server with a real SQLite store. Expected octets are written out by hand
(the base64 / quoted-printable sources are encoded by the test, not by
the server)."""

from __future__ import annotations

import base64

import pytest

from imapd.imap.commands import fetch_binary
from tests.imap.commands.harness import Client, MailServer

PAYLOAD = b"\x00\x01bin\r\nary\xff\x00"
QP_BODY = b"caf=C3=A9 =\r\nsoft  \r\nend=3D\r\n"
MESSAGE = (
    b"From: a@example.com\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n"
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n")
    + b"\r\n--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    + QP_BODY
    + b"\r\n--XX\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 x\r\n"
    b"\r\n--XX--\r\n"
)


@pytest.fixture
def mailbox(server: MailServer, client: Client) -> Client:
    server.append("INBOX", MESSAGE)
    client.ok("s SELECT INBOX")
    return client


def test_capability_advertised(client: Client) -> None:
    assert b" BINARY" in client.command("c CAPABILITY")


def test_base64_part_with_nul_is_literal8(mailbox: Client) -> None:
    """RFC 3516 §4.2: decoded data holding a NUL is sent as ``~{n}``."""
    out = mailbox.command("a FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
    assert len(PAYLOAD) == 12
    assert out == (b"* 1 FETCH (BINARY.SIZE[1] 12 BINARY[1] ~{12}\r\n" + PAYLOAD + b")\r\n"
                   b"a OK FETCH completed\r\n")


def test_partial_of_decoded_data(mailbox: Client) -> None:
    """The partial counts decoded octets; without a NUL it is a plain literal."""
    out = mailbox.command("a FETCH 1 (BINARY.PEEK[1]<2.5> BINARY.PEEK[1]<100.5>)")
    assert out == (b'* 1 FETCH (BINARY[1]<2> {5}\r\nbin\r\n BINARY[1]<100> "")\r\n'
                   b"a OK FETCH completed\r\n")


def test_quoted_printable(mailbox: Client) -> None:
    """RFC 2045 §6.7: soft break joins, trailing blanks go, =XX decodes."""
    decoded = "café soft\r\nend=\r\n".encode()
    out = mailbox.command("a FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])")
    assert out == (b"* 1 FETCH (BINARY.SIZE[2] %d BINARY[2] {%d}\r\n%s)\r\n"
                   b"a OK FETCH completed\r\n" % (len(decoded), len(decoded), decoded))


def test_unknown_encoding_is_no_unknown_cte(mailbox: Client) -> None:
    """RFC 3516 §4.1."""
    for line in ("a FETCH 1 BINARY.PEEK[3]", "b FETCH 1 BINARY.SIZE[3]"):
        out = mailbox.command(line)
        tag = line.split()[0].encode()
        assert out.startswith(tag + b" NO [UNKNOWN-CTE] "), out


def test_binary_sets_seen_peek_does_not(mailbox: Client) -> None:
    assert b"FLAGS" not in mailbox.command("a FETCH 1 BINARY.PEEK[2]<0.4>")
    out = mailbox.command("b FETCH 1 BINARY[2]<0.4>")
    assert out == (b"* 1 FETCH (BINARY[2]<0> {4}\r\ncaf\xc3 FLAGS (\\Seen \\Recent))\r\n"
                   b"b OK FETCH completed\r\n")


def test_whole_message_and_missing_part(mailbox: Client) -> None:
    out = mailbox.command("a FETCH 1 (BINARY.SIZE[] BINARY.SIZE[9] BINARY.PEEK[9])")
    assert out == (b'* 1 FETCH (BINARY.SIZE[] %d BINARY.SIZE[9] 0 BINARY[9] "")\r\n'
                   b"a OK FETCH completed\r\n" % len(MESSAGE))


@pytest.mark.parametrize("item", ["BINARY[1.HEADER]", "BINARY.SIZE[1]<0.5>", "BINARY.PEEK[TEXT]"])
def test_only_part_numbers(mailbox: Client, item: str) -> None:
    """RFC 3516 §6 section-binary: part numbers only; no partial on SIZE."""
    assert mailbox.command(f"a FETCH 1 {item}").startswith(b"a BAD ")


def test_append_literal8_with_nul(client: Client) -> None:
    """RFC 3516 §4.3: the NUL-holding part is stored base64-encoded, so
    BODY[1] carries no NUL, and BINARY[1] gives the client's octets back."""
    raw = (b"From: a@example.com\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + PAYLOAD + b"\r\n")
    out = client.exchange(b"a APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(raw), raw))
    assert b"a OK [APPENDUID " in out, out
    client.ok("s SELECT INBOX")
    body = client.command("b FETCH 1 BODY.PEEK[1]")
    encoded = base64.encodebytes(PAYLOAD + b"\r\n").replace(b"\n", b"\r\n")
    assert body == b"* 1 FETCH (BODY[1] {%d}\r\n%s)\r\nb OK FETCH completed\r\n" % (
        len(encoded), encoded)
    out = client.command("c FETCH 1 BINARY.PEEK[1]")
    assert out == b"* 1 FETCH (BINARY[1] ~{14}\r\n%s\r\n)\r\nc OK FETCH completed\r\n" % PAYLOAD


def test_large_part_is_streamed_as_literal8(
    server: MailServer, client: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above the threshold the decoded size is counted first, then the
    decoded octets streamed (always ``~{n}``)."""
    monkeypatch.setattr(fetch_binary, "STREAM_THRESHOLD", 64)
    payload = bytes(range(256)) * 40
    raw = (b"From: a@example.com\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(payload).replace(b"\n", b"\r\n"))
    server.append("INBOX", raw)
    client.ok("s SELECT INBOX")
    out = client.command("a FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1]<1000.3000>)")
    assert out == (b"* 1 FETCH (BINARY.SIZE[1] %d BINARY[1]<1000> ~{3000}\r\n%s)\r\n"
                   b"a OK FETCH completed\r\n" % (len(payload), payload[1000:4000]))

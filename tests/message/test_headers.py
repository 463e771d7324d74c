"""Header blocks, parameters (RFC 2045 / RFC 2231), encoded words (RFC 2047),
dates and addresses (RFC 5322 §3.4 -> RFC 3501 §7.4.2 address structures)."""

from __future__ import annotations

import datetime

import pytest

from imapd.message.addresses import parse_address_list
from imapd.message.headers import (
    decode_charset,
    decode_rfc2231_value,
    decode_words,
    find_header_end,
    parse_sent_date,
    parse_structured,
    split_fields,
    unfold,
)


@pytest.mark.parametrize(
    ("raw", "end"),
    [
        (b"A: 1\r\n\r\nbody", 8),
        (b"A: 1\n\nbody", 6),
        (b"\r\nbody", 2),
        (b"\nbody", 1),
        (b"A: 1\r\nB: 2\r\n", 12),          # no blank line: all header
        (b"", 0),
        (b"A: 1\n\r\nbody", 7),             # LF line, CRLF blank line
        (b"A: 1\r\n\r\nx\n\nmore", 8),      # first blank line wins
        (b"A: 1\n\nx\r\n\r\nmore", 6),
    ],
)
def test_find_header_end(raw: bytes, end: int) -> None:
    assert find_header_end(raw, 0, len(raw)) == end


def test_find_header_end_respects_span() -> None:
    raw = b"xxA: 1\r\n\r\nbodyyy"
    assert find_header_end(raw, 2, 8) == 8
    assert find_header_end(raw, 2, len(raw)) == 10


def test_split_fields_keeps_bytes_and_continuations() -> None:
    block = (
        b"From user@host  Fri Feb 22 17:06:23 2008\r\n"
        b"Subject: a\r\n  folded\r\n"
        b"X-Empty:\r\n"
        b"Bad line without colon\r\n"
        b"Name : spaced colon\r\n"
        b"\r\n"
    )
    fields, blank = split_fields(block)
    assert blank == b"\r\n"
    assert [f.name for f in fields] == [b"", b"Subject", b"X-Empty", b"", b"Name"]
    assert fields[1].raw == b"Subject: a\r\n  folded\r\n"
    assert fields[1].value == b" a\r\n  folded\r\n"
    assert fields[2].value == b"\r\n"
    assert fields[4].key == b"name" and fields[4].value == b" spaced colon\r\n"
    assert b"".join(f.raw for f in fields) + blank == block


@pytest.mark.parametrize(
    ("block", "blank"),
    [(b"A: 1\n\n", b"\n"), (b"A: 1\r\n", b""), (b"\r\n", b"\r\n"), (b"A: 1", b"")],
)
def test_split_fields_blank_line(block: bytes, blank: bytes) -> None:
    fields, found = split_fields(block)
    assert found == blank
    assert b"".join(f.raw for f in fields) + found == block


def test_unfold() -> None:
    assert unfold(b" Lunch on\r\n Thursday?\r\n") == b"Lunch on Thursday?"
    assert unfold(b"\ta\n\tb\n") == b"a\tb"
    assert unfold(b" x\0y ") == b"xy"
    assert unfold(b"") == b""


@pytest.mark.parametrize(
    ("value", "main", "params"),
    [
        (b"text/plain", b"text/plain", ()),
        (b"TEXT/Plain ; CharSet=\"UTF-8\"", b"TEXT/Plain", ((b"charset", b"UTF-8"),)),
        (b'multipart/mixed; boundary="foo bar"', b"multipart/mixed", ((b"boundary", b"foo bar"),)),
        (b"multipart/mixed; boundary=----=_Part_1", b"multipart/mixed",
         ((b"boundary", b"----=_Part_1"),)),
        (b"text/plain (comment); charset=(c) us-ascii (more)", b"text/plain",
         ((b"charset", b"us-ascii"),)),
        (b'a/b; x="semi;colon"; y=2', b"a/b", ((b"x", b"semi;colon"), (b"y", b"2"))),
        (b'a/b; x="esc\\"aped"', b"a/b", ((b"x", b'esc"aped'),)),
        (b"a/b; junk; =nothing; x=1;;", b"a/b", ((b"x", b"1"),)),
        (b"a/b; x=1; X=2", b"a/b", ((b"x", b"1"),)),
        (b'a/b; x="unterminated', b"a/b", ((b"x", b"unterminated"),)),
        (b"attachment; filename=report.pdf", b"attachment", ((b"filename", b"report.pdf"),)),
        (b"", b"", ()),
    ],
)
def test_parse_structured(value: bytes, main: bytes, params: tuple[tuple[bytes, bytes], ...]) -> None:
    assert parse_structured(value) == (main, params)


def test_rfc2231_continuations() -> None:
    # RFC 2231 §3 and §4.1 examples.
    _, params = parse_structured(
        b'message/external-body; access-type=URL; URL*0="ftp://"; URL*1="cs.utk.edu/pub"'
    )
    assert params == ((b"access-type", b"URL"), (b"url", b"ftp://cs.utk.edu/pub"))
    _, params = parse_structured(
        b"application/x-stuff; title*0*=us-ascii'en'This%20is%20even%20more%20;"
        b" title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2=\"isn't it!\""
    )
    assert params == ((
        b"title*",
        b"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!",
    ),)
    assert decode_rfc2231_value(params[0][1]) == "This is even more ***fun*** isn't it!"


def test_rfc2231_sections_out_of_order_and_single_encoded() -> None:
    _, params = parse_structured(b"a/b; n*1=world; n*0=hello-; m*=utf-8''%C3%A9")
    assert params == ((b"n", b"hello-world"), (b"m*", b"utf-8''%C3%A9"))
    assert decode_rfc2231_value(b"utf-8''%C3%A9") == "é"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # RFC 2047 §8 examples.
        (b"(=?ISO-8859-1?Q?a?=)", "(a)"),
        (b"(=?ISO-8859-1?Q?a?= b)", "(a b)"),
        (b"(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"),
        (b"(=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=)", "(ab)"),
        (b"(=?ISO-8859-1?Q?a_b?=)", "(a b)"),
        (b"(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"),
        (b"=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>", "Keith Moore <moore@cs.utk.edu>"),
        (b"=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
        (b"=?utf-8?b?5pel5pys6Kqe?=", "日本語"),
        (b"=?utf-8?B?5pel5pys6Kqe?", "=?utf-8?B?5pel5pys6Kqe?"),      # not a word
        (b"=?UTF-8?Q?caf=C3?= =?UTF-8?Q?=A9?=", "café"),  # character split across words
        (b"=?utf-8*en?Q?hi?=", "hi"),                       # RFC 2231 language suffix
        (b"=?x-unknown?Q?caf=C3=A9?=", "café"),             # unknown charset: UTF-8 guess
        (b"=?utf-8?B?w6k?=", "é"),                          # missing padding
        (b"plain \xc3\xa9 utf-8", "plain é utf-8"),
        (b"latin \xe9", "latin é"),
    ],
)
def test_decode_words(value: bytes, text: str) -> None:
    assert decode_words(value) == text


def test_decode_charset_rejects_non_text_codecs() -> None:
    assert decode_charset(b"hello", "base64_codec") == "hello"
    assert decode_charset(b"hello", "rot13") == "hello"
    assert decode_charset(b"\xe9", "windows-1252") == "é"
    assert decode_charset(b"\xe9", None) == "é"


@pytest.mark.parametrize(
    ("value", "date"),
    [
        (b"Sat, 24 Mar 2007 23:00:00 +0200", datetime.date(2007, 3, 24)),
        (b"24 Mar 2007 23:59:59 -1200", datetime.date(2007, 3, 24)),  # zone ignored
        (b"Thu, 1 Jan 98 00:00:00 GMT", datetime.date(1998, 1, 1)),
        (b"garbage", None),
        (b"Mon, 31 Feb 2024 10:00:00 +0000", None),
        (None, None),
    ],
)
def test_parse_sent_date(value: bytes | None, date: datetime.date | None) -> None:
    assert parse_sent_date(value) == date


N = None


@pytest.mark.parametrize(
    ("value", "addresses"),
    [
        (b"user@domain", ((N, N, b"user", b"domain"),)),
        (b"User Name <user@domain>", ((b"User Name", N, b"user", b"domain"),)),
        (b'"Doe, John" <j@x.org>', ((b"Doe, John", N, b"j", b"x.org"),)),
        (b'"esc\\"aped" <a@b>', ((b'esc"aped', N, b"a", b"b"),)),
        (b"user@domain (Real Name)", ((b"Real Name", N, b"user", b"domain"),)),
        (b"Name (comment) <a@b>", ((b"Name", N, b"a", b"b"),)),
        (b"<@route:user@domain>", ((N, b"@route", b"user", b"domain"),)),
        (b"<@a,@b:user@domain>", ((N, b"@a,@b", b"user", b"domain"),)),
        (b"John Q. Public <jqp@x>", ((b"John Q. Public", N, b"jqp", b"x"),)),
        (b'"john doe"@example.com', ((N, N, b'"john doe"', b"example.com"),)),
        (b"a@[192.0.2.1]", ((N, N, b"a", b"[192.0.2.1]"),)),
        (b"first.last @ example . com", ((N, N, b"first.last", b"example.com"),)),
        (b"a@b, , c@d,", ((N, N, b"a", b"b"), (N, N, b"c", b"d"))),
        (b"g: a@b, c@d;, e@f", (
            (N, N, b"g", N), (N, N, b"a", b"b"), (N, N, b"c", b"d"), (N, N, N, N),
            (N, N, b"e", b"f"),
        )),
        (b"undisclosed-recipients:;", ((N, N, b"undisclosed-recipients", N), (N, N, N, N))),
        (b"Group Name: a@b", ((N, N, b"Group Name", N), (N, N, b"a", b"b"), (N, N, N, N))),
        (b"localonly", ((N, N, b"localonly", b"MISSING_DOMAIN"),)),
        (b"<>", ((N, N, b"MISSING_MAILBOX", b"MISSING_DOMAIN"),)),
        (b"John Smith john@x.org", ((b"John Smith", N, b"john", b"x.org"),)),
        (b"=?utf-8?q?J=C3=B6rg?= <j@x>", ((b"=?utf-8?q?J=C3=B6rg?=", N, b"j", b"x"),)),
        (b"J\xc3\xb6rg <j@x>", ((b"J\xc3\xb6rg", N, b"j", b"x"),)),
        (b"<a@b", ((N, N, b"a", b"b"),)),                 # unterminated angle
        (b"a@b; c@d", ((N, N, b"a", b"b"), (N, N, b"c", b"d"))),  # stray ";" separates
        (b"", ()),
        (b"(only a comment)", ()),
    ],
)
def test_parse_address_list(value: bytes, addresses: tuple[object, ...]) -> None:
    assert parse_address_list(value) == addresses


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (b'"a\\\\" <x@y>', b"a\\"),            # escaped backslash, then closing quote
        (b'"a\\" <x@y>', None),                # escaped quote: the string never closes,
        (b'"unterminated <x@y>', None),        # so everything is one broken local part
        (b'"" <x@y>', None),                   # empty display name is NIL
        (b"(outer (inner) \\) x) <x@y>", b"outer (inner) ) x"),
    ],
)
def test_address_name_quoting(value: bytes, name: bytes | None) -> None:
    assert parse_address_list(value)[0][0] == name

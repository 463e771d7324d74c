"""The source client's parsing (imapd.migrate.client), without a server:
FETCH responses as imaplib hands them over, LIST lines, dates, URLs."""

from __future__ import annotations

import datetime

import pytest

from imapd.migrate.client import (
    Source, SourceError, SourceURL, fetch_items, message_id_of, parse_internal_date, parse_values,
)


def test_fetch_items_with_literals_and_items_after_them() -> None:
    body = b"Subject: x\r\n\r\n(unbalanced ) \"quote\r\n"
    data = [
        (b'1 (UID 7 FLAGS (\\Seen $Label1) BODY[HEADER.FIELDS (MESSAGE-ID)] {22}',
         b"Message-ID: <a@b>\r\n\r\n"),
        b' INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 40)',
        (b"2 (UID 9 BODY[] {%d}" % len(body), body),
        b" FLAGS ())",
        b"3 (FLAGS (\\Deleted))",  # an unsolicited update: no literal
    ]
    first, second, third = list(fetch_items(data))
    assert first[b"UID"] == b"7" and first[b"FLAGS"] == [b"\\Seen", b"$Label1"]
    assert first[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] == b"Message-ID: <a@b>\r\n\r\n"
    assert first[b"INTERNALDATE"] == b"17-Jul-1996 02:44:25 -0700"
    assert second[b"BODY[]"] is body and second[b"FLAGS"] == []
    assert third == {b"FLAGS": [b"\\Deleted"]}


def test_list_line_with_quoted_and_literal_names() -> None:
    assert parse_values(b'(\\HasNoChildren \\Sent) "." "Sent Messages"', []) == \
        [[b"\\HasNoChildren", b"\\Sent"], b".", b"Sent Messages"]
    assert parse_values(b'(\\Noselect) NIL \x00', [b'a "b"']) == [[b"\\Noselect"], None, b'a "b"']
    assert parse_values(b'() "\\\\" "x\\"y"', []) == [[], b"\\", b'x"y']
    with pytest.raises(SourceError):
        parse_values(b"(a (b)", [])


def test_internal_date_keeps_the_instant_and_zone() -> None:
    when = parse_internal_date(" 7-Jul-1996 02:44:25 -0700")
    assert when == datetime.datetime(1996, 7, 7, 9, 44, 25, tzinfo=datetime.timezone.utc)
    assert when.utcoffset() == datetime.timedelta(hours=-7)
    with pytest.raises(SourceError):
        parse_internal_date("7-Foo-1996 02:44:25 -0700")


def test_message_id_read_as_imapd_reads_it() -> None:
    assert message_id_of(b"Message-ID:\r\n  <a@b>\r\n\r\n") == b"<a@b>"
    assert message_id_of(b"\r\n") is None


def test_source_url() -> None:
    assert SourceURL.parse("imaps://bob%40example.org@mail.example.org") == \
        SourceURL(True, "bob@example.org", "mail.example.org", 993)
    assert SourceURL.parse("imap://bob@127.0.0.1:1143") == SourceURL(False, "bob", "127.0.0.1", 1143)
    with pytest.raises(ValueError, match="no password in the URL"):
        SourceURL.parse("imaps://bob:secret@host")
    for bad in ("http://bob@host", "imaps://host", "imaps://bob@host:99999"):
        with pytest.raises(ValueError):
            SourceURL.parse(bad)


def test_no_password_in_clear_to_a_remote_host() -> None:
    # Refused before any connection is made (the host does not resolve).
    with pytest.raises(SourceError, match="refusing to send the password in clear"):
        Source(SourceURL.parse("imap://bob@mail.invalid"), "pw", plain_ok=True)
    with pytest.raises(SourceError, match="refusing"):
        Source(SourceURL.parse("imap://bob@127.0.0.1:9"), "pw")

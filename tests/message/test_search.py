"""SEARCH helpers (RFC 3501 §6.4.4): decoded, case-insensitive substrings."""

from __future__ import annotations

import datetime

import pytest

from imapd.message import (
    MessageInfo,
    address_search_text,
    analyze,
    decode_transfer,
    header_values,
    matches_text,
    searchable_text,
    sent_date,
)
from imapd.imap.wire.commands import TextScope

from .conftest import load_fixture


def _load(name: str) -> tuple[bytes, MessageInfo]:
    raw = load_fixture(name)
    return raw, analyze(raw)


def test_header_values_decode_encoded_words_and_unfold() -> None:
    raw, info = _load("nonascii-headers.eml")
    assert header_values(raw, info, "Subject") == ["Café crème and 日本語 text"]
    assert header_values(raw, info, "FROM") == ["André Dupont <andre@example.fr>"]
    assert header_values(raw, info, "x-missing") == []


def test_header_values_all_occurrences_and_empty_values() -> None:
    raw = b"Subject: one\r\nX-Empty:\r\nsubject: two\r\n\r\nbody\r\n"
    info = analyze(raw)
    assert header_values(raw, info, "subject") == ["one", "two"]
    assert header_values(raw, info, "X-EMPTY") == [""]


def test_header_values_8bit() -> None:
    raw, info = _load("malformed-8bit-headers.eml")
    assert header_values(raw, info, "subject") == ["Grüße aus Köln"]
    assert header_values(raw, info, "x-latin1") == ["café"]


def test_header_values_ignore_body_and_attached_headers() -> None:
    raw, info = _load("nested-rfc822.eml")
    assert header_values(raw, info, "subject") == ["Fwd: Project kickoff"]


def test_address_search_text() -> None:
    raw, info = _load("plain.eml")
    (to,) = address_search_text(raw, info, "To")
    assert "carol@example.net" in to and "Carol, C." in to and "Bob" in to
    raw, info = _load("nonascii-headers.eml")
    (sender,) = address_search_text(raw, info, "sender")
    assert "Françoise" in sender and "francoise@example.fr" in sender
    raw = b"From: user (Real Name) @ example . org\r\n\r\n"
    (text,) = address_search_text(raw, analyze(raw), "from")
    assert "user@example.org" in text
    assert address_search_text(raw, analyze(raw), "cc") == []


@pytest.mark.parametrize(
    ("fixture", "needle", "body", "text"),
    [
        ("nonascii-headers.eml", "NAÏVE RÉSUMÉ", True, True),
        ("nonascii-headers.eml", "日本語.", True, True),
        ("nonascii-headers.eml", "andré dupont", False, True),     # From, decoded
        ("alternative.eml", "café equipment until sunday.", True, True),  # quoted-printable
        ("alternative.eml", "<p>spring sale: 20% off", True, True),       # base64 html
        ("alternative.eml", "caf=C3=A9", False, False),            # encoded form is not text
        ("mixed-attachments.eml", "grüße, erin", True, True),       # latin-1 QP
        ("mixed-attachments.eml", "catalog", False, False),         # application/pdf skipped
        ("mixed-attachments.eml", "quarterly report", False, True),
        ("8bit-body.eml", "STRASSE", False, False),                 # RFC 5051: ß has no titlecase
        ("8bit-body.eml", "STRAßE UND GRÜSSE", False, False),       # ... so ß is not SS
        ("8bit-body.eml", "STRAßE UND GRÜßE", True, True),          # but Ü is ü
        ("8bit-body.eml", "straße und grüße, à bientôt", True, True),
        ("malformed-bad-encodings.eml", "hello not quite", True, True),
        ("malformed-bad-encodings.eml", "softbreak joined", True, True),
        ("malformed-bad-encodings.eml", "begin 644", True, True),
        ("malformed-bad-encodings.eml", "invalid content type", True, True),
        ("nested-rfc822.eml", "kickoff is on <b>monday", True, True),
        ("nested-rfc822.eml", "ivan@example.net", True, True),     # attached message header
        ("nested-rfc822.eml", "heidi", False, True),
        ("digest.eml", "hello list!", True, True),
        ("no-content-type.eml", "second line", True, True),
        ("header-only.eml", "nobody", False, True),
        ("smime-signed.eml", "this message is signed", True, True),
        ("plain.eml", "", True, True),
    ],
)
def test_matches_text(fixture: str, needle: str, body: bool, text: bool) -> None:
    raw, info = _load(fixture)
    assert matches_text(raw, info, needle, "BODY") is body
    assert matches_text(raw, info, needle, "TEXT") is text
    assert matches_text(raw, info, needle, TextScope.TEXT) is text


def test_searchable_text_is_folded_with_unicode_casemap() -> None:
    raw, info = _load("8bit-body.eml")
    # RFC 5051 §2: titlecase, then decomposition (ü = U+0075 U+0308, upper-cased)
    assert "STRAßE UND GRU\u0308ßE" in searchable_text(raw, info, TextScope.BODY)


def test_decode_transfer_is_lenient() -> None:
    assert decode_transfer(b"aGVsbG8=", b"base64") == b"hello"
    assert decode_transfer(b"aGVs\r\nbG8=", b"base64") == b"hello"
    assert decode_transfer(b"aGVsbG8", b"base64") == b"hel"  # truncated group dropped
    assert decode_transfer(b"caf=C3=A9=\r\nx", b"quoted-printable") == b"caf\xc3\xa9x"
    assert decode_transfer(b"as is", b"x-unknown") == b"as is"


def test_sent_date() -> None:
    _, info = _load("plain.eml")
    assert sent_date(info) == datetime.date(2024, 3, 5)
    _, info = _load("header-only.eml")
    assert sent_date(info) is None
    raw = b"Date: Sat, 24 Mar 2007 23:30:00 -0800\r\n\r\n"
    assert sent_date(analyze(raw)) == datetime.date(2007, 3, 24)  # not shifted to UTC

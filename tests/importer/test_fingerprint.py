"""The identity imports and migrations compare messages by."""

from __future__ import annotations

import datetime

from imapd.importer.fingerprint import fingerprint, fingerprint_of_meta, normalize_id
from imapd.message import analyze

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_message_id_whitespace_and_absence() -> None:
    assert normalize_id(b" <a@b>\r\n ") == b"<a@b>"
    assert normalize_id(None) == b""
    assert len(normalize_id(b"<" + b"x" * 5000 + b">")) == 998


def test_same_instant_in_another_zone_is_the_same_fingerprint() -> None:
    there = WHEN.astimezone(datetime.timezone(datetime.timedelta(hours=-5)))
    assert fingerprint(b"<a@b>", 10, WHEN) == fingerprint(b"<a@b>", 10, there)
    assert fingerprint(b"<a@b>", 10, WHEN) != fingerprint(b"<a@b>", 11, WHEN)
    assert fingerprint(b"<a@b>", 10, WHEN) != fingerprint(b"<a@c>", 10, WHEN)
    later = WHEN + datetime.timedelta(seconds=1)
    assert fingerprint(b"<a@b>", 10, WHEN) != fingerprint(b"<a@b>", 10, later)


def test_from_the_stored_analysis() -> None:
    raw = b"Message-ID:  <id@example.org>\r\nSubject: x\r\n\r\nbody\r\n"
    meta = analyze(raw).to_bytes()
    assert fingerprint_of_meta(meta, len(raw), WHEN) == fingerprint(b"<id@example.org>", len(raw), WHEN)
    # Unreadable analysis: still size and date.
    assert fingerprint_of_meta(b"junk", 5, WHEN) == fingerprint(None, 5, WHEN)

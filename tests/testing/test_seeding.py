"""imapd.testing.seeding: messages from bytes, email objects, .eml and mbox files."""

from __future__ import annotations

import datetime
import email.message
from pathlib import Path

import pytest

from imapd.testing.seeding import SeedError, messages_from

UTC = datetime.timezone.utc
PLAIN = b"From: a@example.org\nSubject: one\n\nbody\n"


def test_bytes_and_messages_are_stored_with_crlf_and_given_flags() -> None:
    made = email.message.EmailMessage()
    made["Subject"] = "two"
    made.set_content("hello\n")
    items = messages_from([PLAIN, made], flags=["\\Seen", "$Forwarded"])
    assert items[0].message == PLAIN.replace(b"\n", b"\r\n")
    assert b"Subject: two\r\n" in items[1].message and b"\r\n\r\nhello\r\n" in items[1].message
    assert all(item.flags == ("\\Seen", "$Forwarded") for item in items)
    assert all(item.internal_date is None for item in items)  # "now", at delivery


def test_internal_date_naive_is_utc(tmp_path: Path) -> None:
    (tmp_path / "one.eml").write_bytes(PLAIN)
    when = datetime.datetime(2020, 5, 17, 12, 30)
    [item] = messages_from([tmp_path / "one.eml"], internal_date=when)
    assert item.internal_date == when.replace(tzinfo=UTC)
    assert item.message == PLAIN.replace(b"\n", b"\r\n")


def test_an_mbox_gives_every_message_with_its_flags_and_date(tmp_path: Path) -> None:
    box = tmp_path / "saved"
    box.write_bytes(
        b"From alice@example.org Sat Jan  3 01:05:34 1996\n"
        b"Subject: first\nStatus: RO\nX-Keywords: $Junk\n\n>From the start\n\n"
        b"From bob@example.org Sun Jan  4 02:00:00 1996\n"
        b"Subject: second\n\nbody\n")
    first, second = messages_from([str(box)], flags=["\\Flagged"])
    assert first.message == b"Subject: first\r\n\r\nFrom the start\r\n"  # bookkeeping gone, unquoted
    assert first.flags == ("\\Seen", "$Junk", "\\Flagged")
    assert first.internal_date == datetime.datetime(1996, 1, 3, 1, 5, 34, tzinfo=UTC)
    assert second.flags == ("\\Flagged",)
    assert second.internal_date == datetime.datetime(1996, 1, 4, 2, 0, tzinfo=UTC)


def test_bad_sources_say_which(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="cannot read .*missing.eml"):
        messages_from([tmp_path / "missing.eml"])
    (tmp_path / "empty.eml").write_bytes(b"\n")
    with pytest.raises(SeedError, match="empty.eml: empty message"):
        messages_from([tmp_path / "empty.eml"])
    with pytest.raises(SeedError, match="cannot seed from a int"):
        messages_from([42])  # type: ignore[list-item]

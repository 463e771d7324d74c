"""mbox sources: separators, flags from Status/X-Status, dates, quoting,
Thunderbird directories (fixtures by stdlib ``mailbox``)."""

from __future__ import annotations

import datetime
from pathlib import Path

from imapd.importer import mbox
from tests.importer.fixtures import crlf, make_mbox, text

UTC = datetime.timezone.utc


def test_stdlib_mbox_flags_dates_and_bytes(tmp_path: Path) -> None:
    make_mbox(tmp_path / "box", {1: "RO", 2: "AF", 3: "D", 4: ""})
    [folder] = mbox.scan(tmp_path / "box")
    assert folder.path == () and not folder.problems
    assert [set(m.flags) for m in folder.messages] == [
        {"\\Seen"}, {"\\Answered", "\\Flagged"}, {"\\Deleted"}, set()]
    assert folder.messages[0].internal_date == datetime.datetime(2024, 1, 3, 3, 4, 5, tzinfo=UTC)
    # The stored message is the original: Status/X-Status gone, the
    # writer's ">From " quoting undone, the separator's empty line not part of it.
    assert [m.read() for m in folder.messages] == [crlf(text(n)) for n in (1, 2, 3, 4)]


def test_mboxrd_unquoting_and_keywords() -> None:
    raw = (b"Subject: q\nX-Keywords: $Label1 Work\nX-UID: 7\nStatus: RO\n"
           b"X-IMAPbase: 1700000000 0000000008\n  $Label1 Work\nContent-Length: 44\n\n"
           b">From one\n>>From two\n> From three\nFrom: x\n")
    assert mbox.unquote(raw) == crlf(b"Subject: q\n\nFrom one\n>From two\n> From three\nFrom: x\n")
    values = mbox.header_values(raw.split(b"\n\n")[0] + b"\n")
    assert mbox.flags_of(values) == ("\\Seen", "$Label1", "Work")


def test_from_line_dates() -> None:
    assert mbox.from_line_date(b"From a@b Sat Jan  3 01:05:34 1996\n") == datetime.datetime(
        1996, 1, 3, 1, 5, 34, tzinfo=UTC)
    zoned = mbox.from_line_date(b"From a@b Sat Jan 3 01:05:34 1996 +0100\n")
    assert zoned is not None and zoned.utcoffset() == datetime.timedelta(hours=1)
    assert mbox.from_line_date(b"From a@b Sat Jan 3 01:05 -0500 1996\n") == datetime.datetime(
        1996, 1, 3, 6, 5, tzinfo=UTC)
    assert mbox.from_line_date(b"From a@b yesterday\n") is None


def test_date_falls_back_to_the_date_header(tmp_path: Path) -> None:
    (tmp_path / "box").write_bytes(
        b"From nobody\nDate: Tue, 2 Jan 2024 10:00:00 +0000\nSubject: a\n\nbody\n\n"
        b"From nobody\nSubject: b\n\nbody\nFrom inside the body, no empty line before\n")
    [folder] = mbox.scan(tmp_path / "box")
    assert len(folder.messages) == 2  # "From " after a non-empty line is body
    assert folder.messages[0].internal_date == datetime.datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert folder.messages[1].read().endswith(b"From inside the body, no empty line before\r\n")


def test_thunderbird_directory(tmp_path: Path) -> None:
    make_mbox(tmp_path / "Inbox", {1: "R"})
    (tmp_path / "Inbox.msf").write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->")
    (tmp_path / "Archives").write_bytes(b"")  # a folder with no mail
    (tmp_path / "Archives.sbd").mkdir()
    make_mbox(tmp_path / "Archives.sbd" / "2023", {2: "", 3: ""})
    (tmp_path / "notes.txt").write_bytes(b"not mail\n")
    folders = mbox.scan(tmp_path)
    assert [(f.path, len(f.messages)) for f in folders] == [
        (("Archives",), 0), (("Archives", "2023"), 2), (("Inbox",), 1), (("notes.txt",), 0)]
    assert "not an mbox" in folders[3].problems[0][1]


def test_uw_imap_pseudo_message_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "box").write_bytes(
        b"From MAILER-DAEMON Sat Jan  3 01:05:34 1996\nSubject: DON'T DELETE THIS MESSAGE"
        b" -- FOLDER INTERNAL DATA\nX-IMAP: 1 2\n\ninternal\n\n"
        b"From a@b Sat Jan  3 01:05:34 1996\nSubject: real\n\nhi\n")
    [folder] = mbox.scan(tmp_path / "box")
    assert [m.read() for m in folder.messages] == [b"Subject: real\r\n\r\nhi\r\n"]

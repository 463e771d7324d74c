"""Maildir sources: flags, dates, layouts (fixtures by stdlib ``mailbox``)."""

from __future__ import annotations

import datetime
import mailbox
import os
from pathlib import Path

from imapd.importer import maildir
from tests.importer.fixtures import MTIME, crlf, make_maildir, text

UTC = datetime.timezone.utc


def test_info_letters_map_as_dovecot_does() -> None:
    keywords = {"a": "$Label1", "b": "Junk"}
    assert maildir.flags_of("123.host:2,DFPRST", {}) == (
        "\\Draft", "\\Flagged", "$Forwarded", "\\Answered", "\\Seen", "\\Deleted")
    assert maildir.flags_of("123.host:2,Sab", keywords) == ("\\Seen", "$Label1", "Junk")
    assert maildir.flags_of("123.host!2,S", {}) == ("\\Seen",)
    assert maildir.flags_of("123.host:2,Sc", keywords) == ("\\Seen",)  # unknown letter dropped
    assert maildir.flags_of("123.host", {}) == ()


def test_dovecot_keywords_file(tmp_path: Path) -> None:
    (tmp_path / "dovecot-keywords").write_text("0 $Forwarded\n1 Work\n26 TooFar\nbad\n")
    assert maildir.read_keywords(tmp_path) == {"a": "$Forwarded", "b": "Work"}
    assert maildir.read_keywords(tmp_path / "none") == {}


def test_maildir_plus_plus_tree(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", {1: "S", 2: "RF", 3: ""}, {"Sent": 2, "Sent.Old": 1})
    new = mailbox.Maildir(str(tmp_path / "md")).add(mailbox.MaildirMessage(text(9)))  # in new/
    (tmp_path / "md" / "tmp" / "half-written").write_bytes(b"Subject: no\n\n")
    folders = maildir.scan(tmp_path / "md")
    assert [f.path for f in folders] == [(), ("Sent",), ("Sent", "Old")]
    inbox = folders[0]
    assert [m.flags for m in inbox.messages[:3]] == [("\\Seen",), ("\\Flagged", "\\Answered"), ()]
    assert inbox.messages[0].internal_date == datetime.datetime.fromtimestamp(MTIME + 1, UTC)
    assert inbox.messages[0].read() == crlf(text(1))
    assert len(inbox.messages) == 4 and inbox.messages[3].label.endswith(new)
    assert inbox.messages[3].flags == ()  # new/: not seen by any client yet
    assert len(folders[1].messages) == 2 and len(folders[2].messages) == 1
    assert not any(f.problems for f in folders)


def test_modified_utf7_names_and_nested_layout(tmp_path: Path) -> None:
    root = tmp_path / "md"
    mailbox.Maildir(str(root), create=True)
    mailbox.Maildir(str(root / ".Entw&APw-rfe"), create=True)
    (root / "Projects").mkdir()
    nested = mailbox.Maildir(str(root / "Projects" / "Alpha"), create=True)
    nested.add(mailbox.MaildirMessage(text(1)))
    paths = [f.path for f in maildir.scan(root)]
    assert paths == [(), ("Entwürfe",), ("Projects", "Alpha")]


def test_not_a_maildir_and_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    [folder] = maildir.scan(tmp_path / "empty")
    assert folder.problems and "not a Maildir" in folder.problems[0][1]
    make_maildir(tmp_path / "md", {1: "S"}, {})
    [folder] = maildir.scan(tmp_path / "md")
    os.unlink(folder.messages[0].label)
    try:
        folder.messages[0].read()
    except OSError:
        pass
    else:
        raise AssertionError("reading a vanished file must fail")

"""The importer over the mail core (memory engine): folders, flags, dates,
resuming, duplicates, per-item problems, batches refused by the store."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import pytest

from imapd.importer import maildir, mbox
from imapd.importer import run as run_module
from imapd.importer.progress import Progress
from imapd.importer.run import Importer, Summary, target_name
from imapd.importer.source import SourceFolder
from imapd.mail.errors import Cannot, OverQuota
from imapd.mail.records import AppendItem, AppendResult
from imapd.mail.service import MailService
from imapd.storage.memory import MemoryBackend
from tests.importer.fixtures import crlf, make_maildir, make_mbox, text
from tests.support.inline import run_inline as run

U = "bob"


def import_into(service: MailService, folders: Sequence[object], root: str | None = None,
                batch: int = 100) -> tuple[Summary, str]:
    out = io.StringIO()
    importer = Importer(service, U, root, Progress(0, out), batch)
    return run(importer.run(folders)), out.getvalue()  # type: ignore[arg-type]


def contents(service: MailService, name: str) -> list[tuple[bytes, tuple[str, ...], int]]:
    entry = run(service.target_entry(U, name))
    records = run(service.backend.fetch_records(entry.ref))
    return [(run(service.backend.read_message(entry.ref, r.uid)) or b"", tuple(sorted(r.flags)),
             int(r.internal_date.timestamp())) for r in records]


def test_target_names() -> None:
    assert target_name(None, ()) == "INBOX"
    assert target_name(None, ("Sent", "Old")) == "Sent/Old"
    assert target_name("Archive/", ()) == "Archive"
    assert target_name("Archive", ("a/b",)) == "Archive/a_b"


def test_maildir_tree_imported_with_flags_and_dates(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", {1: "S", 2: "RF"}, {"Sent": 2, "Sent.Old": 1})
    service = MailService(MemoryBackend())
    summary, out = import_into(service, maildir.scan(tmp_path / "md"))
    assert (summary.folders, summary.messages, summary.skipped, summary.errors) == (3, 5, 0, 0)
    assert out == ""  # no bar, no problems: nothing on the stream
    inbox = contents(service, "INBOX")
    assert [(body, flags) for body, flags, _ in inbox] == [
        (crlf(text(1)), ("\\Seen",)), (crlf(text(2)), ("\\Answered", "\\Flagged"))]
    first = maildir.scan(tmp_path / "md")[0].messages[0]
    assert inbox[0][2] == int(first.internal_date.timestamp())
    assert len(contents(service, "Sent/Old")) == 1
    assert set(run(service.subscriptions(U))) >= {"Sent", "Sent/Old"}


def test_a_rerun_skips_what_is_there_and_keeps_true_duplicates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "META_CHUNK", 1)  # the stored analyses read in chunks
    make_mbox(tmp_path / "box", {1: "R", 2: "", 3: ""})
    service = MailService(MemoryBackend())
    folders = mbox.scan(tmp_path / "box")
    folders[0].messages.append(folders[0].messages[0])  # the same message twice in the source
    # Interrupted after the first batch of two: those are in the store.
    first = SourceFolder(folders[0].path, "box", folders[0].messages[:2])
    summary, _ = import_into(service, [first], root="Old", batch=2)
    assert (summary.messages, summary.skipped) == (2, 0)
    again, _ = import_into(service, folders, root="Old")
    assert (again.messages, again.skipped) == (2, 2)
    assert sorted(body for body, _, _ in contents(service, "Old")) == sorted(
        crlf(text(n)) for n in (1, 1, 2, 3))


def test_problems_are_reported_and_the_import_goes_on(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", {1: "S", 2: "", 3: ""}, {"Bad\x01Name": 1})
    folders = maildir.scan(tmp_path / "md")
    os.unlink(folders[0].messages[1].label)  # vanished between scan and import
    folders[0].problems.append(("md/cur/x", "Permission denied"))
    service = MailService(MemoryBackend())
    summary, out = import_into(service, folders)
    assert (summary.messages, summary.errors) == (2, 3)
    assert "No such file or directory" in out and "Permission denied" in out
    assert "Bad\x01Name" in out
    assert [body for body, _, _ in contents(service, "INBOX")] == [crlf(text(1)), crlf(text(3))]


class Refuses(MemoryBackend):
    """Refuses any append holding a message with ``refused`` in it."""

    refused = b"message 2"
    full = False

    async def append(self, ref: object, items: Sequence[AppendItem],
                     claim: bool = False) -> AppendResult:
        if self.full:
            raise OverQuota("Quota exceeded")
        if any(self.refused in bytes(item.message) for item in items):
            raise Cannot("refused")
        return await super().append(ref, items, claim)  # type: ignore[arg-type]


def test_a_refused_batch_is_retried_one_by_one(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", {1: "", 2: "", 3: ""}, {})
    service = MailService(Refuses())
    summary, out = import_into(service, maildir.scan(tmp_path / "md"))
    assert (summary.messages, summary.errors) == (2, 1)
    assert out.count(": refused\n") == 1


def test_over_quota_stops_with_one_line(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", {1: "", 2: "", 3: ""}, {"Sent": 3})
    backend = Refuses()
    backend.full = True
    summary, out = import_into(MailService(backend), maildir.scan(tmp_path / "md"), batch=1)
    assert (summary.messages, summary.errors) == (0, 1)
    assert out.count("\n") == 1 and "Quota" in out


def test_a_message_over_the_size_bound_is_reported_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_maildir(tmp_path / "md", {1: "", 2: ""}, {})
    (tmp_path / "md" / "cur" / "huge:2,S").write_bytes(b"Subject: big\n\n" + b"x" * 4000)
    monkeypatch.setattr(run_module, "MAX_MESSAGE", 1000)
    service = MailService(MemoryBackend())
    summary, out = import_into(service, maildir.scan(tmp_path / "md"))
    assert (summary.messages, summary.errors) == (2, 1)
    assert "huge:2,S: larger than 1000 B" in out


def test_an_interrupt_stops_between_messages(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", {n: "" for n in range(1, 6)}, {"Sent": 2})
    polls: list[int] = []

    def interrupted() -> bool:
        polls.append(1)
        return len(polls) > 2  # after two messages

    out = io.StringIO()
    importer = Importer(MailService(MemoryBackend()), U, None, Progress(0, out), 1, interrupted)
    summary = run(importer.run(maildir.scan(tmp_path / "md")))
    assert (summary.messages, summary.errors) == (2, 1)
    assert "stopped: interrupted (run the same command again to resume)" in out.getvalue()

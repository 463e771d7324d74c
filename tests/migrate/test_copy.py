"""Copy, resume and verify (imapd.migrate.copy / run) against a fake source
over the memory backend: what lands where, exactly once, and the table."""

from __future__ import annotations

import datetime
import io
from typing import Any, Callable, Sequence

import pytest

from imapd.mail.service import MailService
from imapd.migrate import copy
from imapd.migrate.client import Folder, Summary, message_id_of
from imapd.migrate.copy import batches, parse_folder_map, target_of
from imapd.migrate.client import SourceError
from imapd.migrate.run import Plan, migrate, migrate_account, report
from imapd.storage.memory import MemoryBackend
from tests.support.inline import run_inline as run

U = "alice"
WHEN = datetime.datetime(2021, 5, 4, 3, 2, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


def message(n: int, mid: bool = True) -> bytes:
    return (b"Message-ID: <%d@x>\r\n" % n if mid else b"") + b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n)


class FakeSource:
    """Folders of (flags, body) with UIDs 1..n; ``fail_after`` bodies
    fetched, the connection 'drops' (an interrupted run)."""

    def __init__(self, folders: dict[tuple[str, str | None, tuple[str, ...]], list[tuple[tuple[str, ...], bytes]]]):
        self.content = {Folder(name, name.encode(), delim, attrs): msgs
                        for (name, delim, attrs), msgs in folders.items()}
        self.open: list[tuple[tuple[str, ...], bytes]] = []
        self.fail_after: int | None = None
        self.fetched = 0
        self.logged_out = False

    def folders(self) -> list[Folder]:
        return list(self.content)

    def subscribed(self) -> set[str]:
        return {"Lists.py/thon", "Spam", "Gone"}

    def count(self, folder: Folder) -> int:
        return len(self.content[folder])

    def examine(self, folder: Folder) -> int:
        self.open = self.content[folder]
        return len(self.open)

    def summaries(self, first: int, last: int) -> list[Summary]:
        return [Summary(i, flags, WHEN, len(body), message_id_of(body.split(b"\r\n\r\n")[0]))
                for i, (flags, body) in enumerate(self.open[first - 1:last], first)]

    def logout(self) -> None:
        self.logged_out = True

    def bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        if self.fail_after is not None and self.fetched + len(uids) > self.fail_after:
            raise ConnectionResetError("dropped")
        self.fetched += len(uids)
        return {uid: self.open[uid - 1][1] for uid in uids}


async def direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def local(mail: MailService, name: str) -> list[tuple[tuple[str, ...], bytes]]:
    entry = run(mail.target_entry(U, name))
    records = run(mail.backend.fetch_records(entry.ref))
    return sorted((r.flags, run(mail.backend.read_message(entry.ref, r.uid)) or b"") for r in records)


def source() -> FakeSource:
    return FakeSource({
        ("INBOX", ".", ()): [(("\\Seen", "$Label1"), message(1)), ((), message(2, mid=False)),
                             ((), message(3)), ((), message(3))],   # identical twins stay two
        ("Lists", ".", ("\\Noselect",)): [],
        ("Lists.py/thon", ".", ()): [(("\\Flagged",), message(4))],
        ("Sent Messages", ".", ("\\HasNoChildren", "\\Sent")): [(("\\Seen",), message(5))],
        ("Spam", ".", ("\\Junk",)): [((), message(6))],
    })


def service() -> MailService:
    return MailService(MemoryBackend(), default_mailboxes=[("Sent", "\\Sent")])


def test_copies_each_message_once_and_a_rerun_copies_nothing() -> None:
    mail, src = service(), source()
    out = io.StringIO()
    results = run(migrate(mail, src, Plan(U, {}), direct, out))
    assert [(r.source, r.target, r.source_count, r.present, r.copied) for r in results] == [
        ("INBOX", "INBOX", 4, 4, 4), ("Lists.py/thon", "Lists/py_thon", 1, 1, 1),
        ("Sent Messages", "Sent", 1, 1, 1), ("Spam", "Spam", 1, 1, 1)]
    assert out.getvalue() == ""  # not a terminal: no progress line
    assert local(mail, "INBOX") == sorted(src.content[src.folders()[0]])
    assert run(mail.list_mailboxes(U, "", "Spam"))[0].special_use == "\\Junk"
    assert run(mail.subscriptions(U)) == ["Lists/py_thon", "Sent", "Spam"]  # Sent: a default, subscribed
    assert report(results, io.StringIO()) == 0
    again = run(migrate(mail, src, Plan(U, {}), direct, io.StringIO()))
    assert sum(r.copied for r in again) == 0 and all(r.ok for r in again)
    assert local(mail, "INBOX") == sorted(src.content[src.folders()[0]])


def test_an_interrupted_run_resumed_copies_each_message_exactly_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy, "BATCH_MESSAGES", 1)
    mail, src = service(), source()
    src.fail_after = 3  # between the twins
    table = io.StringIO()
    assert report(run(migrate(mail, src, Plan(U, {}), direct, io.StringIO())), table) == 1
    assert "MISMATCH" in table.getvalue() and "dropped" in table.getvalue()
    assert len(local(mail, "INBOX")) == 3
    src.fail_after = None
    results = run(migrate(mail, src, Plan(U, {}), direct, io.StringIO()))
    assert [r.copied for r in results] == [1, 1, 1, 1] and report(results, io.StringIO()) == 0
    assert local(mail, "INBOX") == sorted(src.content[src.folders()[0]])


def test_a_message_that_changed_size_is_an_error_not_a_copy() -> None:
    mail, src = service(), source()
    inbox = src.folders()[0]
    src.bodies = lambda uids: {uid: src.open[uid - 1][1] + b"!" for uid in uids}  # type: ignore[method-assign]
    results = run(migrate(mail, src, Plan(U, {"Lists": "", "Sent Messages": "", "Spam": ""}), direct,
                          io.StringIO()))
    assert results[0].present == 0 and "octets, the source said" in results[0].errors[0]
    table = io.StringIO()
    assert report(results, table) == 1 and "(skipped)" in table.getvalue()
    assert inbox.name == "INBOX" and local(mail, "INBOX") == []


def test_targets() -> None:
    def folder(name: str, *attrs: str, delim: str | None = ".") -> Folder:
        return Folder(name, name.encode(), delim, attrs)

    uses = {"\\Sent": "Sent"}
    assert target_of(folder("inbox"), {}, uses) == "INBOX"
    assert target_of(folder("a.b.c"), {}, uses) == "a/b/c"
    assert target_of(folder("a/b", delim=None), {}, uses) == "a/b"
    assert target_of(folder("Gesendet", "\\Sent"), {}, uses) == "Sent"
    assert target_of(folder("Gesendet", "\\Sent"), {"Gesendet": "Old sent"}, uses) == "Old sent"
    fmap = parse_folder_map(["[Gmail]=Gmail", "[Gmail].All Mail="])
    assert target_of(folder("[Gmail].All Mail", "\\All"), dict(reversed(fmap.items())), uses) is None
    assert target_of(folder("[Gmail].Starred.x", "\\Flagged"), fmap, uses) == "Gmail/Starred/x"
    with pytest.raises(ValueError):
        parse_folder_map(["nothing"])
    courier = Folder("INBOX.Lists.py", b"", ".", (), "INBOX.")  # RFC 2342 personal prefix
    assert target_of(courier, {}, uses) == "Lists/py"
    assert target_of(Folder("INBOX", b"INBOX", ".", (), "INBOX."), {}, uses) == "INBOX"
    assert target_of(courier, {"INBOX.Lists": "L"}, uses) == "L/py"


def test_batches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy, "BATCH_BYTES", 100)
    sizes = [40, 40, 40, 500, 10]
    summaries = [Summary(i, (), WHEN, size, None) for i, size in enumerate(sizes)]
    assert [[s.size for s in b] for b in batches(summaries)] == [[40, 40], [40], [500], [10]]


def test_the_progress_bar_counts_every_source_message() -> None:
    """Copied, already there or skipped by a mapping: the bar (drawn here on
    request; by default only on a terminal) ends at its total."""
    mail, src = service(), source()
    run(migrate(mail, src, Plan(U, {}), direct, io.StringIO()))
    screen = io.StringIO()
    run(migrate(mail, src, Plan(U, {"Spam": ""}), direct, screen, bar=True))
    assert "6/6" in screen.getvalue().split("\r")[-1], screen.getvalue()


def test_migrate_account_prints_the_table_or_says_why_the_source_failed(
        capsys: pytest.CaptureFixture[str]) -> None:
    mail, src = service(), source()
    assert run(migrate_account(mail, lambda: src, Plan(U, {}), direct, io.StringIO())) == 0
    assert "7 messages copied; all present" in capsys.readouterr().out and src.logged_out

    def refused() -> FakeSource:
        raise SourceError("imap://bob@host:143: [AUTHENTICATIONFAILED] Authentication failed.")
    assert str(run(migrate_account(mail, refused, Plan(U, {}), direct, io.StringIO()))).startswith("imap://bob")

    def broken() -> list[Folder]:
        raise SourceError("source: socket error: EOF")
    src = source()
    src.folders = broken  # type: ignore[method-assign]
    assert run(migrate_account(mail, lambda: src, Plan(U, {}), direct, io.StringIO())) == \
        "source: socket error: EOF"
    assert src.logged_out and capsys.readouterr().out == ""


def test_a_gmail_like_account() -> None:
    """Labels are folders, every message is in [Gmail]/All Mail (\\All) once
    more: copied as the server shows them (All Mail a plain folder: imapd has
    no \\All), or without All Mail when mapped away; Sent Mail, Spam, Trash
    land in the account's own special-use mailboxes."""
    labelled, archived, sent = message(1), message(2), message(3)
    gmail = FakeSource({
        ("INBOX", "/", ()): [((), labelled)],
        ("Work", "/", ()): [((), labelled)],
        ("[Gmail]", "/", ("\\Noselect",)): [],
        ("[Gmail]/All Mail", "/", ("\\All",)): [((), labelled), ((), archived), (("\\Seen",), sent)],
        ("[Gmail]/Sent Mail", "/", ("\\Sent",)): [(("\\Seen",), sent)],
        ("[Gmail]/Spam", "/", ("\\Junk",)): [],
        ("[Gmail]/Starred", "/", ("\\Flagged",)): [],
    })
    mail = MailService(MemoryBackend(), default_mailboxes=[("Sent", "\\Sent"), ("Junk", "\\Junk")])
    results = run(migrate(mail, gmail, Plan(U, {}), direct, io.StringIO()))
    assert [(r.source, r.target, r.copied) for r in results] == [
        ("INBOX", "INBOX", 1), ("Work", "Work", 1), ("[Gmail]/All Mail", "[Gmail]/All Mail", 3),
        ("[Gmail]/Sent Mail", "Sent", 1), ("[Gmail]/Spam", "Junk", 0), ("[Gmail]/Starred", "[Gmail]/Starred", 0)]
    assert run(mail.list_mailboxes(U, "", "[Gmail]/All Mail"))[0].special_use is None
    other = MailService(MemoryBackend(), default_mailboxes=[("Sent", "\\Sent")])
    results = run(migrate(other, gmail, Plan(U, parse_folder_map(["[Gmail]/All Mail="])), direct, io.StringIO()))
    assert sum(r.copied for r in results) == 3 and report(results, io.StringIO()) == 0
    assert "[Gmail]/All Mail" not in {info.name for info in run(other.list_mailboxes(U, "", "*"))}

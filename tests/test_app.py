"""The composition root (``imapd.app``): the assembled server, in this
process on a real reactor (tests/support/reactor_thread.py), serves a
stdlib imaplib client end to end: LOGIN, SELECT, APPEND, FETCH (RFC 3501
§6.2.3, §6.3.1, §6.3.11, §6.4.5); and stopping it says BYE (§7.1.5)."""

from __future__ import annotations

import imaplib
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from imapd import app
from imapd.core.config import Config, Limits
from imapd.mail.records import AppendItem
from imapd.storage.sqlite.writer import ThreadedWriter
from tests.support.context import make_users
from tests.support.reactor_thread import on_reactor, reactor

MESSAGE = b"From: a@example.org\r\nSubject: assembled\r\n\r\nHello from the app test.\r\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, int]]:
    """``app.build_service`` on a fresh data dir, listening on 127.0.0.1:0."""
    data = tmp_path / "data"
    make_users(data, alice="wonderland")
    config = Config(data_dir=data, limits=Limits(failed_login_delay=0.05))
    listeners = app.Listeners(imap=("tcp:0:interface=127.0.0.1",))

    async def start() -> Any:
        # On the reactor thread, as ``imapd serve`` does: storage opened
        # there is used there.
        service = app.build_service(config, listeners, reactor(), reload_on_hangup=False)
        service.startService()
        return service

    service = on_reactor(start)
    assert len(service.ports) == 1
    try:
        yield service, service.ports[0].getHost().port
    finally:
        if service.running:
            async def stop() -> None:
                await service.stopService()

            on_reactor(stop)


def test_serves_login_select_append_fetch(served: tuple[Any, int]) -> None:
    _, port = served
    imap = imaplib.IMAP4("127.0.0.1", port)
    assert imap.welcome.endswith(b"] imapd ready")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login("alice", "not the password")
    assert imap.login("alice", "wonderland")[0] == "OK"
    typ, appended = imap.append("INBOX", "(\\Flagged)", None, MESSAGE)
    assert typ == "OK" and b"APPENDUID" in appended[0]
    assert imap.select("INBOX") == ("OK", [b"1"])
    typ, fetched = imap.fetch("1", "(FLAGS BODY.PEEK[])")
    assert typ == "OK" and isinstance(fetched[0], tuple)
    head, body = fetched[0]
    assert body == MESSAGE and b"\\Flagged" in head
    # The default special-use mailboxes come from the config (RFC 6154).
    typ, listed = imap.list('""', "*")
    assert typ == "OK" and any(b"\\Sent" in line for line in listed if isinstance(line, bytes))
    assert imap.logout()[0] == "BYE"


def test_stopping_says_bye_and_closes_the_port(served: tuple[Any, int]) -> None:
    service, port = served
    imap = imaplib.IMAP4("127.0.0.1", port)
    assert imap.login("alice", "wonderland")[0] == "OK"

    async def stop() -> None:
        await service.stopService()

    on_reactor(stop)
    imap.sock.settimeout(30)
    assert imap.readline().startswith(b"* BYE")
    imap.shutdown()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_open_mail_is_the_service_over_the_threaded_sqlite_backend(tmp_path: Path) -> None:
    """What ``build_service`` switches to once the IMAP handlers take a
    ``MailService``: deliveries go through the writer thread and back."""
    config = Config(data_dir=tmp_path)

    async def scenario() -> tuple[Any, ...]:
        mail = app.open_mail(config, reactor())
        try:
            names = [info.name for info in await mail.list_mailboxes("alice", "", "*")]
            result = await mail.deliver("alice", "INBOX", [AppendItem(MESSAGE, ("\\Seen",))])
            status = await mail.status("alice", "INBOX")
            return names, result, status
        finally:
            await mail.close()

    names, result, status = on_reactor(scenario)
    # Every account gets the default special-use mailboxes once (RFC 6154).
    assert set(names) >= {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert (status.messages, status.unseen, status.uidnext) == (1, 0, 2)
    assert result.uids == (1,)


def test_open_mail_writes_on_the_writer_thread(tmp_path: Path) -> None:
    """Assembled in threaded mode (group commit, fsync off the reactor
    thread): an inline backend here would put every fsync on the reactor."""
    async def writer_of() -> Any:
        mail = app.open_mail(Config(data_dir=tmp_path), reactor())
        try:
            return mail.backend.writer  # type: ignore[attr-defined]
        finally:
            await mail.close()

    assert isinstance(on_reactor(writer_of), ThreadedWriter)


# --- the store URL (issue 14) -------------------------------------------------------

@pytest.mark.parametrize("url,shown", [
    ("postgresql://imapd:s3cret@db.example:5433/mail", "postgresql://imapd:***@db.example:5433/mail"),
    ("postgres://imapd:p@ss:w@db/mail?sslmode=require", "postgres://imapd:***@db/mail?sslmode=require"),
    ("postgresql://db/mail?sslmode=require&password=s3cret", "postgresql://db/mail?sslmode=require&password=***"),
    ("postgresql:///mail?password=s3cret", "postgresql:///mail?password=***"),
    ("postgresql://imapd@db/mail", "postgresql://imapd@db/mail"),
])
def test_store_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    from imapd.core.config import parse_store

    store = parse_store(url)
    assert store.is_postgres and store.dsn == url and store.redacted() == shown


def test_store_url_shapes() -> None:
    from imapd.core.config import StoreURLError, parse_store

    assert parse_store("sqlite").kind == parse_store("").kind == "sqlite"
    assert parse_store("SQLite").redacted() == "sqlite"
    for bad in ("/var/mail", "postgresql:/db", "mysql://u:s3cret@h/db"):
        with pytest.raises(StoreURLError) as caught:
            parse_store(bad)
        assert "s3cret" not in str(caught.value)


def test_open_mail_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, store="postgresql://imapd:s3cret@127.0.0.1:1/mail")
    with pytest.raises(app.StoreError) as caught:
        app.check_store(config)
    message = str(caught.value)
    assert message.startswith("imapd: store postgresql://imapd:***@127.0.0.1:1/mail: ")
    assert "\n" not in message and "s3cret" not in message


def test_python_logging_records_reach_twisted_logger() -> None:
    """Storage engines log with Python ``logging``; the server's log is
    Twisted's: a disk-full warning must come out as a levelled line."""
    import logging

    from twisted.logger import globalLogPublisher

    from imapd.app import bridge_stdlib_logging

    seen: list[dict[str, object]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        bridge_stdlib_logging()
        bridge_stdlib_logging()  # idempotent: one handler
        logging.getLogger("imapd.storage.sqlite.space").warning("disk full: %s", "APPEND refused")
    finally:
        globalLogPublisher.removeObserver(seen.append)
        root = logging.getLogger()
        for handler in [h for h in root.handlers if type(h).__name__ == "_StdlibToTwisted"]:
            root.removeHandler(handler)
    ours = [e for e in seen if e.get("log_namespace") == "imapd.storage.sqlite.space"]
    assert len(ours) == 1
    assert ours[0]["text"] == "disk full: APPEND refused"
    assert str(ours[0]["log_level"].name) == "warn"  # type: ignore[attr-defined]

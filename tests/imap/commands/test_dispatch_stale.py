"""A view whose catch-up failed (the store was unavailable) is stale: the
next message command catches up first, or fails NO [UNAVAILABLE]; it never
answers OK on an old picture of the mailbox (found by the PostgreSQL
restart test: an acknowledged UID STORE on the client's own APPEND was not
applied)."""

from __future__ import annotations

from typing import Any

import pytest

from imapd.mail.errors import Unavailable
from tests.imap.commands.harness import Client, MailServer

MESSAGE = b"Subject: m\r\n\r\nbody\r\n"


class StoreDown:
    """Makes the backend's catch-up read fail while ``down``."""

    def __init__(self, server: MailServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        real = server.backend.changes_since

        async def changes_since(*args: Any) -> Any:
            if self.down:
                raise Unavailable("mail store unavailable")
            return await real(*args)

        monkeypatch.setattr(server.backend, "changes_since", changes_since)


def test_uid_store_after_a_failed_catch_up_is_applied_or_refused(
    server: MailServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StoreDown(server, monkeypatch)
    assert client.exchange(b"s SELECT INBOX\r\n").endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    store.down = True
    reply = client.exchange(b"a APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert reply.startswith(b"a OK [APPENDUID ")  # committed; its EXISTS could not be read
    assert b"EXISTS" not in reply
    # Still down: refused, not "OK" for a message the view does not know.
    assert client.exchange(b"u1 UID STORE 1 +FLAGS (\\Flagged)\r\n") == (
        b"u1 NO [UNAVAILABLE] mail store unavailable\r\n")
    store.down = False
    reply = client.exchange(b"u2 UID STORE 1 +FLAGS (\\Flagged)\r\n")
    assert reply.startswith(b"* 1 EXISTS\r\n* 1 RECENT\r\n"), reply
    assert b"* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)\r\n" in reply
    assert reply.endswith(b"u2 OK UID STORE completed\r\n")


def test_commands_outside_the_mailbox_still_work_while_stale(
    server: MailServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StoreDown(server, monkeypatch)
    client.exchange(b"s SELECT INBOX\r\n")
    store.down = True
    client.exchange(b"a APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert client.exchange(b"c CAPABILITY\r\n").endswith(b"c OK CAPABILITY completed\r\n")
    assert client.exchange(b"n NOOP\r\n") == b"n OK NOOP completed\r\n"

"""imapd's test kit for mail-client developers (``pip install imapd[testing]``).

A strict, fast, throw-away IMAP (and POP3, LMTP) server inside a pytest
suite: the pytest plugin (``imapd.testing.plugin``, loaded by its
``pytest11`` entry point) gives the fixtures ``imap_server``,
``imap_server_session``, ``mail_user``, ``make_mail_user`` and
``mailbox``; without pytest, ``TestServer`` is the server itself.

    def test_my_client(imap_server, mail_user):
        mail_user.seed("INBOX", b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        client = imaplib.IMAP4(*imap_server.address)
        client.login(mail_user.name, mail_user.password)
        ...
        assert imap_server.mailbox("INBOX").messages[0].flags == {"\\\\Seen"}

The names below are imported on first use, so importing this package (as
pytest does at start-up) loads neither Twisted's reactor nor the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imapd.testing.inspect import MailboxNotFound, MailboxState, StoredMessage
    from imapd.testing.seeding import SeedError
    from imapd.testing.server import MailUser, ServerNotRunning, TestServer
    from imapd.testing.users import TestUsers
    from imapd.testing.checks import CHECKS, CheckInfo, CheckSuite, ClientProtocolError, Violation
    from imapd.testing.faults import (
        Fault, FaultPlan, close_after_bytes, close_at, delay, inject_exists, inject_expunge,
        respond, throttle,
    )
    from imapd.testing.transcript import Transcript

# public name -> the module that defines it
_EXPORTS = {
    "TestServer": "imapd.testing.server",
    "MailUser": "imapd.testing.server",
    "ServerNotRunning": "imapd.testing.server",
    "MailboxState": "imapd.testing.inspect",
    "StoredMessage": "imapd.testing.inspect",
    "MailboxNotFound": "imapd.testing.inspect",
    "SeedError": "imapd.testing.seeding",
    "TestUsers": "imapd.testing.users",
    "CHECKS": "imapd.testing.checks",
    "CheckInfo": "imapd.testing.checks",
    "CheckSuite": "imapd.testing.checks",
    "ClientProtocolError": "imapd.testing.checks",
    "Violation": "imapd.testing.checks",
    "Fault": "imapd.testing.faults",
    "FaultPlan": "imapd.testing.faults",
    "close_after_bytes": "imapd.testing.faults",
    "close_at": "imapd.testing.faults",
    "delay": "imapd.testing.faults",
    "respond": "imapd.testing.faults",
    "inject_exists": "imapd.testing.faults",
    "inject_expunge": "imapd.testing.faults",
    "throttle": "imapd.testing.faults",
    "Transcript": "imapd.testing.transcript",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imapd.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once
    return value

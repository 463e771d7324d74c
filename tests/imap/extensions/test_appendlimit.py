"""APPENDLIMIT (RFC 7889): ``APPENDLIMIT=n`` is the configured literal
limit; an APPEND (or one message of a MULTIAPPEND) above it is refused with
``NO [TOOBIG]`` before its continuation (RFC 7889 §3, RFC 4469 TOOBIG), so
the client never uploads it; STATUS (APPENDLIMIT) gives the same number."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from imapd.imap import capabilities
from imapd.imap.commands.context import Features
from imapd.core.config import Limits
from imapd.imap.session.state import Session, State
from tests.imap.commands.harness import Client, MailServer

LIMIT = 10


@pytest.fixture
def small(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path / "small", limits=Limits(max_literal=LIMIT, max_command=1000))
    yield server
    server.close()


@pytest.fixture
def limited(small: MailServer) -> Client:
    return small.connect("alice")


def test_the_limit_is_advertised_before_and_after_login(limited: Client, server: MailServer) -> None:
    assert b" APPENDLIMIT=10 " in limited.greeting
    assert b" APPENDLIMIT=10 " in limited.command("c CAPABILITY")
    assert b" APPENDLIMIT=67108864 " in server.connect(None).greeting  # the default 64 MiB


def test_advertised_limit_follows_the_features() -> None:
    session = Session("peer", state=State.AUTHENTICATED)
    caps = capabilities.advertised(session, Features(append_limit=4096))
    assert "APPENDLIMIT=4096" in caps and sum(c.startswith("APPENDLIMIT") for c in caps) == 1
    assert "APPENDLIMIT=67108864" in capabilities.advertised(session, Features())  # 64 MiB default


def test_at_the_limit_is_accepted_above_is_toobig_without_continuation(small: MailServer, limited: Client) -> None:
    limited.transcript(f'''
        C: a APPEND INBOX {{{LIMIT}}}
        S: + Ready for literal data
        C: 0123456789
        S: a OK [APPENDUID {small.uidvalidity("INBOX")} 1] APPEND completed
        C: b APPEND INBOX {{{LIMIT + 1}}}
        S: b NO [TOOBIG] Literal too big
        C: c NOOP
        S: c OK NOOP completed
    ''')
    assert small.status("INBOX").messages == 1


def test_a_multiappend_with_one_message_too_big_appends_none(small: MailServer, limited: Client) -> None:
    limited.transcript(f'''
        C: a APPEND INBOX {{2}}
        S: + Ready for literal data
        C: ab {{{LIMIT + 1}}}
        S: a NO [TOOBIG] Literal too big
        C: b APPEND INBOX {{2+}}
        C: ab {{{LIMIT + 1}+}}
        C: 01234567890
        S: b NO [TOOBIG] Literal too big
    ''')
    assert small.status("INBOX").messages == 0


def test_status_appendlimit(limited: Client) -> None:
    limited.transcript('''
        C: a STATUS INBOX (APPENDLIMIT MESSAGES)
        S: * STATUS INBOX (APPENDLIMIT 10 MESSAGES 0)
        S: a OK STATUS completed
    ''')

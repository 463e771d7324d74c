"""SEARCH over the real-world-style fixtures (fixtures/messages/): decoded
RFC 2047 headers, 8-bit and quoted-printable/base64 bodies in several
charsets, attached and digest messages, duplicate and malformed headers."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.imap.commands.harness import Client, MailServer
from tests.support.server import REPO_ROOT

FIXTURES = sorted((REPO_ROOT / "fixtures" / "messages").glob("*.eml"))
SEQ = {path.stem: seq for seq, path in enumerate(FIXTURES, start=1)}

QUERIES: list[tuple[str, list[str]]] = [
    ('SUBJECT "cr\u00e8me"', ["nonascii-headers"]),
    ('SUBJECT "\u65e5\u672c\u8a9e"', ["nonascii-headers"]),
    ('FROM "Andr\u00e9 Dupont"', ["nonascii-headers"]),
    ('BODY "\u65e5\u672c\u8a9e"', ["nonascii-headers"]),
    ('BODY "Stra\u00dfe und Gr\u00fc\u00dfe"', ["8bit-body"]),
    ('BODY "caf\u00e9 equipment"', ["alternative"]),
    ('BODY "Gr\u00fc\u00dfe, Erin"', ["mixed-attachments"]),
    ('BODY "second post"', ["digest"]),
    ('TEXT "hello list"', ["digest"]),
    ('BODY "kickoff is on monday"', ["nested-rfc822"]),
    ('BODY "this message is signed"', ["smime-signed"]),
    ("BODY softbreak", ["malformed-bad-encodings"]),
    ('SUBJECT "second subject"', ["duplicate-headers"]),
    ("FROM second@example.com", ["duplicate-headers"]),
    ("HEADER Message-ID report.q1", ["mixed-attachments"]),
    ("SENTON 11-Apr-2024", ["nested-rfc822"]),
    ("SENTON 1-Jan-1999", ["no-content-type"]),
    ("SENTSINCE 16-Apr-2024", ["nonascii-headers"]),
]


@pytest.fixture(scope="module")
def fixtures_mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    server = MailServer(tmp_path_factory.mktemp("search-fixtures"))
    for path in FIXTURES:
        server.append("INBOX", path.read_bytes())
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    yield client
    server.close()


@pytest.mark.parametrize(("criteria", "names"), QUERIES, ids=[q for q, _ in QUERIES])
def test_search_fixtures(fixtures_mailbox: Client, criteria: str, names: list[str]) -> None:
    numbers = " ".join(str(n) for n in sorted(SEQ[name] for name in names))
    fixtures_mailbox.transcript(f"""
        C: a SEARCH CHARSET UTF-8 {criteria}
        S: * SEARCH {numbers}
        S: a OK SEARCH completed
    """)

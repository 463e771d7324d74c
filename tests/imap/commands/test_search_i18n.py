"""SEARCH under the i;unicode-casemap collation (RFC 5051; RFC 5255 §4.2:
BCC, BODY, CC, FROM, SUBJECT, TEXT, TO and HEADER) over the protocol:
NFC and NFD spellings, case across scripts, ``ß``, compatibility
characters, RFC 2047 headers in several charsets, quoted-printable, base64
and 8-bit bodies; each text folded once per message."""

from __future__ import annotations

import base64
import unicodedata
from typing import Iterator

import pytest

import imapd.imap.commands.search_eval as search_eval
import imapd.message.searchtext as searchtext
from imapd.message import headers
from tests.imap.commands.harness import Client, MailServer


def b64(text: str, charset: str) -> str:
    return base64.b64encode(text.encode(charset)).decode("ascii")


M1 = (
    b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\r\n"
    b"To: =?ISO-8859-1?Q?=C5dne?= <adne@example.no>\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Die Stra=C3=9Fe in K=C3=B6ln.\r\n"
)
# Greek: subject in ISO-8859-7, body base64 of UTF-8 in NFD (marks apart).
M2 = (
    b"From: homer@example.gr\r\n"
    + f"Subject: =?ISO-8859-7?B?{b64('ΟΔΥΣΣΕΑΣ', 'iso-8859-7')}?=\r\n".encode()
    + b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + b64(unicodedata.normalize("NFD", "ὀδυσσεύς καὶ σειρῆνες\r\n"), "utf-8").encode()
    + b"\r\n"
)
# Cyrillic: 8-bit windows-1251 body.
M3 = (
    b"From: ivan@example.ru\r\n"
    b"Subject: Hello World\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=windows-1251\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + "ЖУК и паук\r\n".encode("cp1251")
)
M4 = (
    b"From: ann@example.org\r\n"
    b"Cc: =?UTF-8?B?" + b64("Zoë", "utf-8").encode() + b"?= <zoe@example.org>\r\n"
    b"Bcc: =?UTF-8?Q?=C3=89lodie?= <elodie@example.org>\r\n"
    b"Subject: plain ascii\r\n"
    b"X-Label: =?UTF-8?Q?=C3=A9t=C3=A9?=\r\n"
    b"\r\n"
    b"the file is ready\r\n"
)


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    server = MailServer(tmp_path_factory.mktemp("search-i18n"))
    for message in (M1, M2, M3, M4):
        server.append("INBOX", message)
    client = server.connect("alice")
    client.ok("s SELECT INBOX")
    yield client
    server.close()


NFD_MUENCHEN = unicodedata.normalize("NFD", "MÜNCHEN")
QUERIES = [
    ('SUBJECT "münchen"', "1"),                 # RFC 2047 UTF-8, NFC needle
    (f'SUBJECT "{NFD_MUENCHEN}"', "1"),         # the same, NFD needle
    ('SUBJECT "grüße"', "1"), ('SUBJECT "GRÜßE"', "1"),
    ('SUBJECT "GRÜSSE"', ""),                   # RFC 5051: ß is not SS
    ('BODY "köln"', "1"), ('BODY "STRAßE"', "1"), ('BODY "strasse"', ""),
    ('FROM "JÜRGEN"', "1"), ('FROM "müller"', "1"),
    ('TO "ådne"', "1"), (f'TO "{unicodedata.normalize("NFD", "ÅDNE")}"', "1"),  # ISO-8859-1 word
    ('SUBJECT "οδυσσεας"', "2"), ('SUBJECT "Οδυσσεας"', "2"),  # ISO-8859-7 word
    ('BODY "ὈΔΥΣΣΕΎΣ"', "2"),                   # base64 NFD body, NFC capitals
    ('BODY "σειρῆνες"', "2"), ('TEXT "ΚΑῚ"', "2"),
    ('BODY "ὀδυσσευς"', ""),                    # the acute on the last ε is text too
    ('TEXT "жук"', "3"), ('BODY "ПАУК"', "3"),  # windows-1251 8-bit body
    ("SUBJECT hello", "3"), ('SUBJECT "HELLO WORLD"', "3"),  # ASCII as before
    ('CC "ZOË"', "4"), ('CC "zoe"', "4"),       # display name, and the address
    ('BCC "élodie"', "4"),
    ('HEADER X-Label "ÉTÉ"', "4"), ('HEADER X-Label "ét"', "4"), ('HEADER X-Label "ete"', ""),
    ('BODY "ＦＩＬＥ"', "4"),                    # fullwidth letters are compatibility forms
    ('OR SUBJECT "münchen" BODY "жук"', "1 3"),
    ('NOT TEXT "ΟΔΥΣΣ"', "1 3 4"),
]


@pytest.mark.parametrize(("criteria", "expected"), QUERIES, ids=[q for q, _ in QUERIES])
def test_search_i18n(mailbox: Client, criteria: str, expected: str) -> None:
    result = f"* SEARCH {expected}" if expected else "* SEARCH"
    mailbox.transcript(f"""
        C: a SEARCH CHARSET UTF-8 {criteria}
        S: {result}
        S: a OK SEARCH completed
    """)


def test_literal_and_uid_search(mailbox: Client) -> None:
    needle = unicodedata.normalize("NFD", "gRÜßE")
    mailbox.transcript(f"""
        C: a UID SEARCH CHARSET UTF-8 SUBJECT {{{len(needle.encode())}+}}
        C: {needle}
        S: * SEARCH 1
        S: a OK UID SEARCH completed
        C: b SEARCH SUBJECT "München"
        S: * SEARCH 1
        S: b OK SEARCH completed
    """)


def test_each_text_is_folded_once_per_message(
    mailbox: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three SUBJECT keys and two BODY keys over four messages, none
    matching (so OR evaluates every key): each subject and each body is
    folded once, and each search string once — not once per comparison."""
    folded: list[str] = []

    def counting(text: str) -> str:
        folded.append(text)
        return original(text)

    original = searchtext.fold
    monkeypatch.setattr(searchtext, "fold", counting)
    monkeypatch.setattr(search_eval, "fold", counting)
    mailbox.transcript("""
        C: a SEARCH CHARSET UTF-8 OR SUBJECT q1 OR SUBJECT q2 OR SUBJECT "üü" OR BODY q3 BODY "éé"
        S: * SEARCH
        S: a OK SEARCH completed
    """)
    needles = ["q1", "q2", "üü", "q3", "éé"]
    assert sorted(t for t in folded if t in needles) == sorted(needles)
    assert len(folded) == len(needles) + 4 * 2  # 4 subjects + 4 bodies


def test_client_header_names_do_not_grow_a_cache(mailbox: Client) -> None:
    """SEARCH HEADER field names come from the client; the header parser's
    compiled-pattern cache stays bounded whatever they send."""
    for n in range(300):
        mailbox.ok(f"h SEARCH HEADER X-Made-Up-{n}-{'q' * 200} x")
    assert len(headers._NAME_PATTERNS) <= 256

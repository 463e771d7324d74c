"""FETCH of the real-world-style fixtures (fixtures/messages/): every
message, malformed ones included, is returned byte for byte and described
by the message model's ENVELOPE / BODY / BODYSTRUCTURE (whose own known
answers live in tests/message/test_fixtures.py); messages stored without
an analysis (``meta``) are analysed on the fly and answered the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.message import analyze, body_structure, envelope
from imapd.imap.wire.encode import encode_response
from imapd.imap.wire.responses import FetchResponse
from imapd.imap.wire.values import Literal
from imapd.mail.records import AppendItem
from tests.imap.commands.harness import Client, MailServer, run
from tests.support.server import REPO_ROOT

FIXTURES = sorted((REPO_ROOT / "fixtures" / "messages").glob("*.eml"))


def expected_fetch(seq: int, raw: bytes) -> bytes:
    info = analyze(raw)
    return encode_response(FetchResponse(seq, (
        ("UID", seq),
        ("ENVELOPE", envelope(info)),
        ("BODY", body_structure(info, extended=False)),
        ("BODYSTRUCTURE", body_structure(info, extended=True)),
        ("BODY[]", Literal(raw)),
    )))


def test_fixture_list_is_not_empty() -> None:
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("with_meta", [True, False], ids=["meta", "no-meta"])
def test_every_fixture_fetches_as_analysed(
    server: MailServer, client: Client, with_meta: bool
) -> None:
    raws = [path.read_bytes() for path in FIXTURES]
    for raw in raws:
        if with_meta:
            server.append("INBOX", raw)
        else:
            # Straight to the backend: the service would analyse it.
            entry = run(server.mail.target_entry("alice", "INBOX"))
            run(server.backend.append(entry.ref, [AppendItem(raw)]))
    client.ok("s SELECT INBOX")
    for seq, (path, raw) in enumerate(zip(FIXTURES, raws), start=1):
        out = client.command(f"a FETCH {seq} (UID ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[])")
        assert out == expected_fetch(seq, raw) + b"a OK FETCH completed\r\n", path.name


def test_plain_fixture_known_answer(server: MailServer, client: Client) -> None:
    server.append("INBOX", (REPO_ROOT / "fixtures" / "messages" / "plain.eml").read_bytes())
    client.ok("s SELECT INBOX")
    client.transcript("""
        C: a FETCH 1 (BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (Subject)])
        S: * 1 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "us-ascii" "FORMAT" "flowed") NIL NIL "7BIT" 75 6 NIL NIL NIL NIL) BODY[HEADER.FIELDS (SUBJECT)] {37}
        S: Subject: Re: Lunch on
        S:  Thursday?
        S:
        S: )
        S: a OK FETCH completed
    """)


def test_nested_message_parts(server: MailServer, client: Client) -> None:
    """Sections inside an attached message/rfc822 (``2.HEADER``, ``2.1``)
    are slices of the stored bytes (RFC 3501 §6.4.5)."""
    raw = (REPO_ROOT / "fixtures" / "messages" / "nested-rfc822.eml").read_bytes()
    server.append("INBOX", raw)
    client.ok("s SELECT INBOX")
    info = analyze(raw)
    part = info.root.children[1]
    assert part.message is not None
    inner = part.message
    header = raw[inner.header_start:inner.body_start]
    out = client.command("a FETCH 1 (BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT])")
    text = raw[inner.body_start:inner.body_end]
    assert out == (
        b"* 1 FETCH (BODY[2.HEADER] {%d}\r\n%s BODY[2.TEXT] {%d}\r\n%s)\r\n"
        % (len(header), header, len(text), text) + b"a OK FETCH completed\r\n"
    )


def test_fixture_paths_exist() -> None:
    assert all(isinstance(p, Path) and p.stat().st_size > 0 for p in FIXTURES)

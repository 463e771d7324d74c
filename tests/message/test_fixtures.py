"""Known answers for the real-world-style fixtures in fixtures/messages/.

Every size and line count below was counted by hand from the fixture text
(RFC 3501 §7.4.2: body-fld-octets is the body as transmitted, the CRLF
before a boundary belongs to the boundary, RFC 2046 §5.1.1).
"""

from __future__ import annotations

import base64
import binascii

import pytest

from imapd.message import (
    MessageInfo,
    analyze,
    analyze_strict,
    body_structure,
    envelope,
    section_bytes,
    section_span,
)
from imapd.imap.wire.commands import Section, SectionText

from .conftest import load_fixture
from .imapfmt import fmt, fmts

H = SectionText.HEADER
T = SectionText.TEXT
M = SectionText.MIME
HF = SectionText.HEADER_FIELDS
HFN = SectionText.HEADER_FIELDS_NOT


def _info(name: str) -> tuple[bytes, MessageInfo]:
    raw = load_fixture(name)
    return raw, analyze(raw)


def test_plain_envelope_and_structure() -> None:
    raw, info = _info("plain.eml")
    assert fmts(envelope(info)) == (
        '("Tue, 5 Mar 2024 09:14:07 +0100" "Re: Lunch on Thursday?"'
        ' (("Alice Example" NIL "alice" "example.org"))'
        ' (("Alice Example" NIL "alice" "example.org"))'
        ' (("Alice Example" NIL "alice" "example.org"))'
        ' (("Bob" NIL "bob" "example.net")("Carol, C." NIL "carol" "example.net"))'
        ' (("Dave D." NIL "dave" "example.com")) NIL'
        ' "<CAB123@mail.example.net>" "<20240305091407.GA1234@example.org>")'
    )
    assert fmts(body_structure(info, False)) == (
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii" "FORMAT" "flowed") NIL NIL "7BIT" 75 6)'
    )
    assert fmts(body_structure(info, True)) == (
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii" "FORMAT" "flowed") NIL NIL "7BIT" 75 6'
        " NIL NIL NIL NIL)"
    )
    body = b"Hi Bob,\r\n\r\nThursday works for me. The usual place at 12:30?\r\n\r\n-- \r\nAlice\r\n"
    assert section_bytes(raw, info, Section()) == raw
    assert section_bytes(raw, info, Section(text=T)) == body
    assert section_bytes(raw, info, Section((1,))) == body  # part 1 of a non-multipart message
    assert section_bytes(raw, info, Section((1,), M)) == raw[: raw.index(b"\r\n\r\n") + 4]
    assert section_bytes(raw, info, Section((2,))) is None
    assert section_bytes(raw, info, Section((1, 1))) is None
    assert section_bytes(raw, info, Section((1,), H)) is None  # not a message/rfc822 part
    assert section_bytes(raw, info, Section(text=HF, fields=("SUBJECT", "CC"))) == (
        b"Cc: dave@example.com (Dave D.)\r\nSubject: Re: Lunch on\r\n Thursday?\r\n\r\n"
    )
    assert info.sent_date is not None and info.sent_date.isoformat() == "2024-03-05"


def test_alternative() -> None:
    raw, info = _info("alternative.eml")
    assert fmts(body_structure(info, True)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "QUOTED-PRINTABLE" 94 2 NIL NIL NIL NIL)'
        '("TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL "BASE64" 104 2 NIL NIL NIL NIL)'
        ' "ALTERNATIVE" ("BOUNDARY" "----=_Part_1_20240320") NIL NIL NIL)'
    )
    assert fmts(body_structure(info, False)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "QUOTED-PRINTABLE" 94 2)'
        '("TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL "BASE64" 104 2) "ALTERNATIVE")'
    )
    # The line break before "------=_Part..." belongs to the delimiter.
    assert section_bytes(raw, info, Section((1,))) == (
        b"Spring sale: 20% off all caf=C3=A9 equipment until Sunday.=20\r\n"
        b"Visit https://shop.example/sale"
    )
    assert section_bytes(raw, info, Section((2,), M)) == (
        b"Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    html = base64.b64decode(section_bytes(raw, info, Section((2,))) or b"")
    assert html.decode() == (
        "<html><body><p>Spring sale: 20% off all café equipment</p></body></html>\n"
    )
    text = section_bytes(raw, info, Section(text=T)) or b""
    assert text.startswith(b"This is a multi-part message in MIME format.\r\n")
    assert text.endswith(b"------=_Part_1_20240320--\r\n")


def test_mixed_attachments_extension_data() -> None:
    raw, info = _info("mixed-attachments.eml")
    assert fmts(body_structure(info, True)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL "Cover note" "QUOTED-PRINTABLE" 51 1'
        " NIL NIL NIL NIL)"
        '("APPLICATION" "PDF" ("NAME" "report-q1.pdf") NIL NIL "BASE64" 116'
        ' "Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "report-q1.pdf" "SIZE" "107"))'
        ' ("en" "de") NIL)'
        '("IMAGE" "PNG" NIL "<logo@example.com>" NIL "BASE64" 96 NIL'
        " (\"INLINE\" (\"FILENAME*\" \"UTF-8''logo%20%E2%9C%93.png\")) NIL"
        ' "http://example.com/logo.png")'
        ' "MIXED" ("BOUNDARY" "outer-XYZ") NIL "en" NIL)'
    )
    pdf = base64.b64decode(section_bytes(raw, info, Section((2,))) or b"")
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    png = binascii.a2b_base64(section_bytes(raw, info, Section((3,))) or b"")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")
    assert section_bytes(raw, info, Section((4,))) is None
    assert section_bytes(raw, info, Section((3,), M)) == (
        b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-ID: <logo@example.com>\r\nContent-Disposition: inline;\r\n"
        b" filename*0*=UTF-8''logo%20%E2%9C%93;\r\n filename*1=\".png\"\r\n"
        b"Content-Location: http://example.com/logo.png\r\n\r\n"
    )


NESTED_MESSAGE = (
    b"From: Ivan <ivan@example.net>\r\n"
    b"To: team:grace@example.org,judy@example.net;\r\n"
    b"Subject: Project kickoff\r\n"
    b"Date: Wed, 10 Apr 2024 17:45:00 +0000\r\n"
    b"Message-ID: <kickoff@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\nContent-Type: text/plain\r\n\r\nKickoff is on Monday.\r\n\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<p>Kickoff is on <b>Monday</b>.</p>\r\n\r\n"
    b"--inner--\r\n"
)


def test_nested_message_rfc822() -> None:
    raw, info = _info("nested-rfc822.eml")
    assert len(NESTED_MESSAGE) == 401 and NESTED_MESSAGE.count(b"\n") == 19
    assert fmts(body_structure(info, True)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 34 1 NIL NIL NIL NIL)'
        '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 401'
        ' ("Wed, 10 Apr 2024 17:45:00 +0000" "Project kickoff"'
        ' (("Ivan" NIL "ivan" "example.net")) (("Ivan" NIL "ivan" "example.net"))'
        ' (("Ivan" NIL "ivan" "example.net"))'
        ' ((NIL NIL "team" NIL)(NIL NIL "grace" "example.org")(NIL NIL "judy" "example.net")'
        '(NIL NIL NIL NIL)) NIL NIL NIL "<kickoff@example.net>")'
        ' (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 23 1 NIL NIL NIL NIL)'
        '("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 37 1 NIL NIL NIL NIL)'
        ' "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL) 19'
        ' NIL ("INLINE" NIL) NIL NIL)'
        ' "MIXED" ("BOUNDARY" "fwd") NIL NIL NIL)'
    )
    assert section_bytes(raw, info, Section((2,))) == NESTED_MESSAGE
    header_end = NESTED_MESSAGE.index(b"\r\n\r\n") + 4
    assert section_bytes(raw, info, Section((2,), H)) == NESTED_MESSAGE[:header_end]
    assert section_bytes(raw, info, Section((2,), T)) == NESTED_MESSAGE[header_end:]
    assert section_bytes(raw, info, Section((2,), HF, ("SUBJECT", "X-NONE"))) == (
        b"Subject: Project kickoff\r\n\r\n"
    )
    assert section_bytes(raw, info, Section((2,), M)) == (
        b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    )
    assert section_bytes(raw, info, Section((2, 1))) == b"Kickoff is on Monday.\r\n"
    assert section_bytes(raw, info, Section((2, 2))) == b"<p>Kickoff is on <b>Monday</b>.</p>\r\n"
    assert section_bytes(raw, info, Section((2, 2), M)) == b"Content-Type: text/html\r\n\r\n"
    assert section_bytes(raw, info, Section((2, 3))) is None
    assert section_bytes(raw, info, Section((2, 1), H)) is None
    assert section_bytes(raw, info, Section((1,))) == b"See the forwarded message below.\r\n"


def test_digest_defaults_to_message_rfc822() -> None:
    raw, info = _info("digest.eml")
    assert fmts(body_structure(info, False)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 52 3)'
        '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 98'
        ' ("Thu, 11 Apr 2024 08:00:00 +0000" "First post" ((NIL NIL "kim" "example.org"))'
        ' ((NIL NIL "kim" "example.org")) ((NIL NIL "kim" "example.org")) NIL NIL NIL NIL NIL)'
        ' ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1) 5)'
        '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 95'
        ' ("Thu, 11 Apr 2024 09:00:00 +0000" "Second post" ((NIL NIL "lee" "example.org"))'
        ' ((NIL NIL "lee" "example.org")) ((NIL NIL "lee" "example.org")) NIL NIL NIL NIL NIL)'
        ' ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 9 1) 5) "DIGEST")'
    )
    assert section_bytes(raw, info, Section((2,), M)) == b"\r\n"
    assert section_bytes(raw, info, Section((2, 1))) == b"Hello list!\r\n"
    assert section_bytes(raw, info, Section((3,), HFN, ("FROM", "DATE"))) == (
        b"Subject: Second post\r\n\r\n"
    )
    assert section_bytes(raw, info, Section((3,), T)) == b"Hi Kim.\r\n"


def test_smime_signed_parts_are_byte_exact() -> None:
    raw, info = _info("smime-signed.eml")
    assert fmts(body_structure(info, True)).startswith(
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 23 1 NIL NIL NIL NIL)'
        '("APPLICATION" "PKCS7-SIGNATURE" ("NAME" "smime.p7s") NIL'
        ' "S/MIME Cryptographic Signature" "BASE64" 702 NIL'
        ' ("ATTACHMENT" ("FILENAME" "smime.p7s")) NIL NIL) "SIGNED"'
        ' ("PROTOCOL" "application/pkcs7-signature" "MICALG" "sha-256"'
        ' "BOUNDARY" "----signed-boundary") NIL NIL NIL)'
    )
    # What the signature covers (RFC 8551 §3.5.3): the first part with its
    # MIME header, exactly as transmitted, without the CRLF before the boundary.
    signed = (section_bytes(raw, info, Section((1,), M)) or b"") + (
        section_bytes(raw, info, Section((1,))) or b""
    )
    assert signed == (
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\nThis message is signed."
    )
    assert base64.b64decode(section_bytes(raw, info, Section((2,))) or b"") == bytes(range(256)) * 2


def test_malformed_missing_close_delimiters() -> None:
    raw, info = _info("malformed-missing-close.eml")
    assert fmts(body_structure(info, False)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)'
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 18 1) "ALTERNATIVE")'
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 27 1) "MIXED")'
    )
    # The unclosed inner multipart ends where the outer delimiter starts.
    assert section_bytes(raw, info, Section((2, 1))) == b"inner never closed"
    assert section_bytes(raw, info, Section((3,))) == b"last part runs to the end\r\n"


def test_malformed_multipart_without_boundary_is_a_leaf() -> None:
    raw, info = _info("malformed-no-boundary.eml")
    assert fmts(body_structure(info, True)) == (
        '("MULTIPART" "MIXED" NIL NIL NIL "7BIT" 60 NIL NIL NIL NIL)'
    )
    assert section_bytes(raw, info, Section((1,))) == raw[raw.index(b"--whatever"):]


def test_malformed_multipart_without_parts_gets_empty_text_part() -> None:
    raw, info = _info("malformed-no-parts.eml")
    assert fmts(body_structure(info, False)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0) "MIXED")'
    )
    assert fmts(body_structure(info, True)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)'
        ' "MIXED" ("BOUNDARY" "unused") NIL NIL NIL)'
    )
    assert section_bytes(raw, info, Section((1,))) is None


def test_malformed_bad_encodings_and_invalid_content_type() -> None:
    raw, info = _info("malformed-bad-encodings.eml")
    assert fmts(body_structure(info, False)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "BASE64" 33 1)'
        '("TEXT" "PLAIN" ("CHARSET" "x-no-such-charset") NIL NIL "QUOTED-PRINTABLE" 41 2)'
        '("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "X-UUENCODE" 18 1)'
        '("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 37 1) "MIXED")'
    )


def test_8bit_headers_are_sent_as_literals_unchanged() -> None:
    raw, info = _info("malformed-8bit-headers.eml")
    subject = "Grüße aus Köln".encode()
    name = "Jörg Müller".encode()
    assert fmt(envelope(info)) == (
        b'("Sun, 14 Apr 2024 18:00:00 +0200" {%d}\r\n%s' % (len(subject), subject)
        + b" (({%d}\r\n%s NIL \"joerg\" \"example.de\"))" % (len(name), name) * 3
        + b' ((NIL NIL {10}\r\nempf\xc3\xa4nger "example.de")) NIL NIL NIL NIL)'
    )


def test_no_content_type_defaults() -> None:
    raw, info = _info("no-content-type.eml")
    assert fmts(body_structure(info, True)) == (
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 41 2 NIL NIL NIL NIL)'
    )
    assert section_bytes(raw, info, Section(text=T)) == b"A message from before MIME.\r\nSecond line."
    assert info.sent_date is not None and info.sent_date.isoformat() == "1999-01-01"


def test_duplicate_headers_first_wins() -> None:
    raw, info = _info("duplicate-headers.eml")
    assert fmts(envelope(info)) == (
        '("Mon, 15 Apr 2024 10:00:00 +0000" "First subject"'
        ' ((NIL NIL "first" "example.com")) ((NIL NIL "first" "example.com"))'
        ' ((NIL NIL "first" "example.com")) ((NIL NIL "a" "example.com")) NIL NIL NIL NIL)'
    )
    assert fmts(body_structure(info, False)) == (
        '("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "8BIT" 19 1)'
    )
    assert section_bytes(raw, info, Section(text=HF, fields=("SUBJECT",))) == (
        b"Subject: First subject\r\nSubject: Second subject\r\n\r\n"
    )


def test_nonascii_headers_keep_encoded_words() -> None:
    raw, info = _info("nonascii-headers.eml")
    assert fmts(envelope(info)) == (
        '("Tue, 16 Apr 2024 11:22:33 +0200"'
        ' "=?UTF-8?Q?Caf=C3=A9_?= =?UTF-8?Q?cr=C3=A8me?= and =?UTF-8?B?5pel5pys6Kqe?= text"'
        ' (("=?UTF-8?Q?Andr=C3=A9_Dupont?=" NIL "andre" "example.fr"))'
        ' (("=?ISO-8859-1?Q?Fran=E7oise?=" NIL "francoise" "example.fr"))'
        ' (("=?utf-8?B?5bGx55Sw?=" NIL "yamada" "example.jp"))'
        ' (("=?UTF-8?B?0JjQstCw0L0=?=" NIL "ivan" "example.ru")'
        '(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'
        ' NIL NIL NIL "<nonascii@example.fr>")'
    )
    assert fmts(body_structure(info, False)) == (
        '("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 46 1)'
    )


def test_8bit_body() -> None:
    raw, info = _info("8bit-body.eml")
    assert fmts(body_structure(info, False)) == (
        '("TEXT" "PLAIN" ("CHARSET" "ISO-8859-1") NIL NIL "8BIT" 30 1)'
    )
    assert section_bytes(raw, info, Section((1,))) == (
        b"Stra\xdfe und Gr\xfc\xdfe, \xe0 bient\xf4t.\r\n"
    )


def test_bare_lf_message() -> None:
    raw, info = _info("bare-lf.eml")
    assert b"\r" not in raw
    assert fmts(body_structure(info, False)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 18 2) "MIXED")'
    )
    assert section_bytes(raw, info, Section((1,))) == b"line one\nline two\n"
    assert section_bytes(raw, info, Section((1,), M)) == b"Content-Type: text/plain\n\n"
    assert section_bytes(raw, info, Section(text=HF, fields=("TO",))) == b"To: lf@example.org\n\n"


def test_header_only_message_has_no_blank_line() -> None:
    raw, info = _info("header-only.eml")
    assert fmts(body_structure(info, False)) == (
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0)'
    )
    assert section_bytes(raw, info, Section(text=H)) == raw
    assert section_bytes(raw, info, Section(text=T)) == b""
    # RFC 3501 §6.4.5: no blank line is added when the message has none.
    assert section_bytes(raw, info, Section(text=HF, fields=("FROM",))) == (
        b"From: nobody@example.org\r\n"
    )


def test_inner_boundary_that_extends_the_outer_one() -> None:
    raw, info = _info("boundary-prefix.eml")
    assert fmts(body_structure(info, False)) == (
        '((("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1) "ALTERNATIVE") "MIXED")'
    )
    assert section_bytes(raw, info, Section((1, 1))) == b"plain"


def test_every_fixture_round_trips_and_spans_match(fixture_name: str) -> None:
    raw = load_fixture(fixture_name)
    info = analyze_strict(raw)
    assert analyze(raw) == info
    assert MessageInfo.from_bytes(info.to_bytes()) == info
    assert info.size == len(raw)
    for section in (Section(), Section(text=H), Section(text=T), Section((1,)), Section((1,), M)):
        span = section_span(info, section)
        data = section_bytes(raw, info, section)
        if span is None:
            assert data is None
        else:
            assert 0 <= span[0] <= span[1] <= len(raw)
            assert data == raw[span[0]:span[1]]


@pytest.mark.parametrize("name", ["plain.eml", "nested-rfc822.eml"])
def test_header_fields_not_excludes_exactly(name: str) -> None:
    raw, info = _info(name)
    everything = section_bytes(raw, info, Section(text=H)) or b""
    without_date = section_bytes(raw, info, Section(text=HFN, fields=("date",))) or b""
    date_only = section_bytes(raw, info, Section(text=HF, fields=("DATE",))) or b""
    assert b"\r\nDate:" not in without_date and not without_date.startswith(b"Date:")
    assert date_only.startswith(b"Date: ") and date_only.count(b"\n") == 2
    assert len(without_date) + len(date_only) == len(everything) + 2  # blank line twice

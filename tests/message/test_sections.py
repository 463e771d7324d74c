"""Section addressing on the RFC 3501 §6.4.5 example message, partial
fetches, and the non-contiguous HEADER.FIELDS sections."""

from __future__ import annotations

import pytest

from imapd.message import (
    analyze,
    apply_partial,
    body_structure,
    header_span,
    partial_span,
    section_bytes,
    section_span,
)
from imapd.imap.wire.commands import Partial, Section, SectionText

from .imapfmt import fmts


def leaf(ctype: str, marker: str) -> bytes:
    # No line break after the marker: the CRLF that multipart() puts before
    # the next delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    return f"Content-Type: {ctype}\r\n\r\n{marker}".encode()


def multipart(subtype: str, boundary: str, *parts: bytes, header: str = "") -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return (
        f"{header}Content-Type: multipart/{subtype}; boundary={boundary}\r\n\r\n".encode()
        + body + b"--" + boundary.encode() + b"--\r\n"
    )


def message_part(inner: bytes) -> bytes:
    return b"Content-Type: message/rfc822\r\n\r\n" + inner


# RFC 3501 §6.4.5: the example of a complex message and its part specifiers.
INNER_3 = multipart(
    "mixed", "m3", leaf("text/plain", "body-3.1"), leaf("application/octet-stream", "body-3.2"),
    header="Subject: message 3\r\n",
)
INNER_4_2 = multipart(
    "mixed", "m42",
    leaf("text/plain", "body-4.2.1"),
    multipart("alternative", "m422", leaf("text/plain", "body-4.2.2.1"),
              leaf("text/richtext", "body-4.2.2.2")),
    header="Subject: message 4.2\r\n",
)
EXAMPLE = multipart(
    "mixed", "top",
    leaf("text/plain", "body-1"),
    leaf("application/octet-stream", "body-2"),
    message_part(INNER_3),
    multipart("mixed", "m4", leaf("image/gif", "body-4.1"), message_part(INNER_4_2)),
    header="From: a@example.org\r\nSubject: example\r\n",
)
INFO = analyze(EXAMPLE)


@pytest.mark.parametrize(
    ("part", "marker"),
    [
        ((1,), b"body-1"), ((2,), b"body-2"), ((3, 1), b"body-3.1"), ((3, 2), b"body-3.2"),
        ((4, 1), b"body-4.1"), ((4, 2, 1), b"body-4.2.1"), ((4, 2, 2, 1), b"body-4.2.2.1"),
        ((4, 2, 2, 2), b"body-4.2.2.2"),
    ],
)
def test_leaf_parts(part: tuple[int, ...], marker: bytes) -> None:
    assert section_bytes(EXAMPLE, INFO, Section(part)) == marker


def test_message_parts_and_their_header_and_text() -> None:
    assert section_bytes(EXAMPLE, INFO, Section((3,))) == INNER_3
    assert section_bytes(EXAMPLE, INFO, Section((4, 2))) == INNER_4_2
    assert section_bytes(EXAMPLE, INFO, Section((3,), SectionText.HEADER)) == (
        b"Subject: message 3\r\nContent-Type: multipart/mixed; boundary=m3\r\n\r\n"
    )
    text = section_bytes(EXAMPLE, INFO, Section((4, 2), SectionText.TEXT))
    assert text == INNER_4_2[INNER_4_2.index(b"\r\n\r\n") + 4:]
    assert section_bytes(
        EXAMPLE, INFO, Section((4, 2), SectionText.HEADER_FIELDS, ("SUBJECT",)),
    ) == b"Subject: message 4.2\r\n\r\n"


def test_mime_headers() -> None:
    assert section_bytes(EXAMPLE, INFO, Section((4, 1), SectionText.MIME)) == (
        b"Content-Type: image/gif\r\n\r\n"
    )
    assert section_bytes(EXAMPLE, INFO, Section((3,), SectionText.MIME)) == (
        b"Content-Type: message/rfc822\r\n\r\n"
    )
    assert section_bytes(EXAMPLE, INFO, Section((4,), SectionText.MIME)) == (
        b"Content-Type: multipart/mixed; boundary=m4\r\n\r\n"
    )


def test_multipart_part_body_includes_its_delimiters() -> None:
    body = section_bytes(EXAMPLE, INFO, Section((4,))) or b""
    assert body.startswith(b"--m4\r\nContent-Type: image/gif")
    assert body.endswith(b"--m4--\r\n")


@pytest.mark.parametrize(
    "section",
    [
        Section((5,)), Section((0,)), Section((1, 1)), Section((4, 3)), Section((4, 2, 3)),
        Section((4, 2, 2, 3)), Section((4, 2, 2, 1, 1)),
        Section((1,), SectionText.HEADER), Section((4,), SectionText.TEXT),
        Section((2,), SectionText.HEADER_FIELDS, ("FROM",)),
        Section((), SectionText.MIME),
    ],
)
def test_missing_sections(section: Section) -> None:
    assert section_bytes(EXAMPLE, INFO, section) is None
    assert section_span(INFO, section) is None


def test_whole_message_header_and_text() -> None:
    header_end = EXAMPLE.index(b"\r\n\r\n") + 4
    assert section_span(INFO, Section()) == (0, len(EXAMPLE))
    assert section_span(INFO, Section(text=SectionText.HEADER)) == (0, header_end)
    assert section_span(INFO, Section(text=SectionText.TEXT)) == (header_end, len(EXAMPLE))
    assert header_span(INFO, Section(text=SectionText.HEADER_FIELDS, fields=("X",))) == (
        0, header_end,
    )
    assert section_span(INFO, Section(text=SectionText.HEADER_FIELDS, fields=("X",))) is None
    assert header_span(INFO, Section((1,))) is None


def test_structure_of_the_example() -> None:
    assert fmts(body_structure(INFO, False)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 6 1)'
        '("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" 6)'
        '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" ' + str(len(INNER_3)) +
        ' (NIL "message 3" NIL NIL NIL NIL NIL NIL NIL NIL)'
        ' (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 8 1)'
        '("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" 8) "MIXED") '
        + str(INNER_3.count(b"\n")) + ")"
        '(("IMAGE" "GIF" NIL NIL NIL "7BIT" 8)'
        '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" ' + str(len(INNER_4_2)) +
        ' (NIL "message 4.2" NIL NIL NIL NIL NIL NIL NIL NIL)'
        ' (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)'
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1)'
        '("TEXT" "RICHTEXT" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1) "ALTERNATIVE")'
        ' "MIXED") ' + str(INNER_4_2.count(b"\n")) + ') "MIXED") "MIXED")'
    )
    assert INNER_3.endswith(b"--m3--\r\n") and INNER_4_2.endswith(b"--m42--\r\n")


def test_message_rfc822_at_top_level() -> None:
    # RFC 3501 §6.4.5: a non-multipart message has a part 1 (its body); for
    # a message/rfc822 message, 1.x addresses the encapsulated message.
    inner = b"Subject: inner\r\n\r\nhello\r\n"
    raw = b"Content-Type: message/rfc822\r\n\r\n" + inner
    info = analyze(raw)
    assert section_bytes(raw, info, Section((1,))) == inner
    assert section_bytes(raw, info, Section((1, 1))) == b"hello\r\n"
    assert section_bytes(raw, info, Section((1,), SectionText.HEADER)) == b"Subject: inner\r\n\r\n"
    assert section_bytes(raw, info, Section((1,), SectionText.TEXT)) == b"hello\r\n"
    assert section_bytes(raw, info, Section((1, 1), SectionText.MIME)) == b"Subject: inner\r\n\r\n"
    assert section_bytes(raw, info, Section((1, 2))) is None


@pytest.mark.parametrize(
    ("origin", "count", "expected"),
    [(0, 3, b"bod"), (3, 3, b"y-1"), (5, 100, b"1"), (6, 1, b""), (100, 5, b""), (0, 0, b"")],
)
def test_partial(origin: int, count: int, expected: bytes) -> None:
    data = section_bytes(EXAMPLE, INFO, Section((1,))) or b""
    partial = Partial(origin, count)
    assert apply_partial(data, partial) == expected
    span = section_span(INFO, Section((1,)))
    assert span is not None
    start, end = partial_span(span, partial)
    assert EXAMPLE[start:end] == expected
    assert apply_partial(data, None) == data and partial_span(span, None) == span


def test_header_fields_keep_message_order_and_all_occurrences() -> None:
    raw = b"B: 1\r\nA: 2\r\nb: 3\r\n folded\r\nC: 4\r\n\r\nbody"
    info = analyze(raw)
    fields = Section(text=SectionText.HEADER_FIELDS, fields=("A", "B"))
    assert section_bytes(raw, info, fields) == b"B: 1\r\nA: 2\r\nb: 3\r\n folded\r\n\r\n"
    nots = Section(text=SectionText.HEADER_FIELDS_NOT, fields=("b",))
    assert section_bytes(raw, info, nots) == b"A: 2\r\nC: 4\r\n\r\n"
    none = Section(text=SectionText.HEADER_FIELDS, fields=("Z",))
    assert section_bytes(raw, info, none) == b"\r\n"


def test_section_bytes_accepts_memoryview() -> None:
    view = memoryview(EXAMPLE)
    assert section_bytes(view, INFO, Section((4, 1))) == b"body-4.1"  # type: ignore[arg-type]
    assert section_bytes(
        view, INFO, Section(text=SectionText.HEADER_FIELDS, fields=("FROM",)),  # type: ignore[arg-type]
    ) == b"From: a@example.org\r\n\r\n"

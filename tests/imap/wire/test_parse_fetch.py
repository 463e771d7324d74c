"""FETCH parsing known answers (RFC 3501 §6.4.5, §6.4.8, §8)."""

from __future__ import annotations

import pytest

from imapd.core.model import SeqRange, SequenceSet
from imapd.imap.wire import commands as c
from imapd.imap.wire.parse import parse_command

K = c.FetchKind
T = c.SectionText
FLAGS = c.FetchAttribute(K.FLAGS)
INTERNALDATE = c.FetchAttribute(K.INTERNALDATE)
SIZE = c.FetchAttribute(K.RFC822_SIZE)
ENVELOPE = c.FetchAttribute(K.ENVELOPE)
BODY = c.FetchAttribute(K.BODY)
UID = c.FetchAttribute(K.UID)


def seq(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))


def section(
    part: tuple[int, ...] = (), text: c.SectionText | None = None, fields: tuple[str, ...] = (),
    peek: bool = False, partial: c.Partial | None = None,
) -> c.FetchAttribute:
    return c.FetchAttribute(K.BODY_SECTION, c.Section(part, text, fields), peek, partial)


def fetch(tag: str, seqset: SequenceSet, *attributes: c.FetchAttribute, uid: bool = False) -> c.Fetch:
    return c.Fetch(tag, uid, seqset, attributes)


EXAMPLES: list[tuple[bytes, c.Fetch]] = [
    # RFC 3501 §6.4.5
    (
        b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
        fetch("A654", seq((2, 4)), FLAGS, section((), T.HEADER_FIELDS, ("DATE", "FROM"))),
    ),
    # RFC 3501 §6.4.8
    (
        b"A999 UID FETCH 4827313:4828442 FLAGS\r\n",
        fetch("A999", seq((4827313, 4828442)), FLAGS, uid=True),
    ),
    # RFC 3501 §8
    (b"a003 fetch 12 full\r\n", fetch("a003", seq((12, 12)), FLAGS, INTERNALDATE, SIZE, ENVELOPE, BODY)),
    (b"a004 fetch 12 body[header]\r\n", fetch("a004", seq((12, 12)), section((), T.HEADER))),
    # Macros (§6.4.5), any case.
    (b"a FETCH 1 ALL\r\n", fetch("a", seq((1, 1)), FLAGS, INTERNALDATE, SIZE, ENVELOPE)),
    (b"a FETCH 1 fast\r\n", fetch("a", seq((1, 1)), FLAGS, INTERNALDATE, SIZE)),
    # Every simple attribute.
    (
        b"a FETCH * (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE "
        b"RFC822.TEXT BODY BODYSTRUCTURE UID)\r\n",
        fetch(
            "a", seq((None, None)), ENVELOPE, FLAGS, INTERNALDATE, c.FetchAttribute(K.RFC822),
            c.FetchAttribute(K.RFC822_HEADER), SIZE, c.FetchAttribute(K.RFC822_TEXT), BODY,
            c.FetchAttribute(K.BODYSTRUCTURE), UID,
        ),
    ),
    # Sections and partials.
    (b"a FETCH 1 BODY[]\r\n", fetch("a", seq((1, 1)), section())),
    (b"a FETCH 1 body.peek[]<0.2048>\r\n", fetch("a", seq((1, 1)), section(peek=True, partial=c.Partial(0, 2048)))),
    (
        b"a FETCH 1 (BODY.PEEK[1.2.HEADER.FIELDS.NOT (A B)]<0.100>)\r\n",
        fetch("a", seq((1, 1)), section((1, 2), T.HEADER_FIELDS_NOT, ("A", "B"), True, c.Partial(0, 100))),
    ),
    (b"a FETCH 1 BODY[TEXT]\r\n", fetch("a", seq((1, 1)), section((), T.TEXT))),
    (b"a FETCH 1 BODY[4.1.MIME]\r\n", fetch("a", seq((1, 1)), section((4, 1), T.MIME))),
    (b"a FETCH 1 BODY[3.HEADER]\r\n", fetch("a", seq((1, 1)), section((3,), T.HEADER))),
    (b"a FETCH 1 BODY[4.2.TEXT]\r\n", fetch("a", seq((1, 1)), section((4, 2), T.TEXT))),
    (b"a FETCH 1 BODY[4.2.2.1]\r\n", fetch("a", seq((1, 1)), section((4, 2, 2, 1)))),
    (
        b'a FETCH 1 BODY[header.fields (subject "X(Y" {4}\r\nDate)]\r\n',
        fetch("a", seq((1, 1)), section((), T.HEADER_FIELDS, ("SUBJECT", "X(Y", "DATE"))),
    ),
    (
        b"a UID FETCH 1:*,3 (UID FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Subject)]<10.5>)\r\n",
        fetch(
            "a", seq((1, None), (3, 3)), UID, FLAGS,
            section((), T.HEADER_FIELDS, ("FROM", "TO", "CC", "SUBJECT"), True, c.Partial(10, 5)),
            uid=True,
        ),
    ),
    (b"a FETCH 5:1 (FLAGS)\r\n", fetch("a", seq((5, 1)), FLAGS)),
]


@pytest.mark.parametrize("frame, expected", EXAMPLES)
def test_fetch_known_answers(frame: bytes, expected: c.Fetch) -> None:
    assert parse_command(frame) == expected


ERRORS: list[tuple[bytes, str]] = [
    (b"a FETCH 1\r\n", "Missing FETCH attributes"),
    (b"a FETCH 1 ()\r\n", "Invalid FETCH attribute"),
    (b"a FETCH 1 (FLAGS\r\n", "Invalid FETCH attribute list: expected space or ')'"),
    (b"a FETCH 1 (FLAGS ALL)\r\n", "FETCH macro ALL cannot be used in a list"),
    (b"a FETCH 1 ALL FLAGS\r\n", "Unexpected extra arguments"),
    (b"a FETCH 1 FROB\r\n", "Unknown FETCH attribute FROB"),
    (b"a FETCH 1 FLAGS[]\r\n", "Unknown FETCH attribute FLAGS["),
    (b"a FETCH 1 BODY[MIME]\r\n", "MIME section requires a part number"),
    (b"a FETCH 1 BODY[0]\r\n", "Invalid section part number"),
    (b"a FETCH 1 BODY[1.]\r\n", "Invalid section specifier 1."),
    (b"a FETCH 1 BODY[HEADER.FOO]\r\n", "Invalid section specifier HEADER.FOO"),
    (b"a FETCH 1 BODY[TEXT.1]\r\n", "Invalid section specifier TEXT.1"),
    (b"a FETCH 1 BODY[HEADER.FIELDS]\r\n", "Missing header list after HEADER.FIELDS"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "Invalid header field name"),
    (b"a FETCH 1 BODY[HEADER.FIELDS (A:B)]\r\n", "Invalid header field name"),
    (b"a FETCH 1 BODY[HEADER.FIELDS (A B]\r\n", "Invalid header list: expected space or ')'"),
    (b"a FETCH 1 BODY[HEADER\r\n", "Invalid section: expected ']'"),
    (b"a FETCH 1 BODY[]<0>\r\n", "Invalid partial: expected '.'"),
    (b"a FETCH 1 BODY[]<0.0>\r\n", "Invalid partial length: must not be zero"),
    (b"a FETCH 1 BODY[]<1.2\r\n", "Invalid partial: expected '>'"),
    (b"a FETCH 1 BODY[]<99999999999.2>\r\n", "Invalid partial origin: too large"),
    (b"a FETCH 1 BODY[TEXT] (FLAGS)\r\n", "Unexpected extra arguments"),
    (b"a FETCH x FLAGS\r\n", "Invalid sequence set"),
]


@pytest.mark.parametrize("frame, reason", ERRORS)
def test_fetch_errors(frame: bytes, reason: str) -> None:
    assert parse_command(frame) == c.CommandSyntaxError("a", reason)

"""Parser known answers for IDLE (RFC 2177 §4), ENABLE (RFC 5161 §4),
NAMESPACE (RFC 2342 §6), ID (RFC 2971 §4), UNSELECT (RFC 3691 §4) and
COMPRESS (RFC 4978 §5); the round trip over all commands is in
tests/imap/wire/test_roundtrip.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.imap.wire import commands as c
from imapd.imap.wire.encode_command import encode_command
from imapd.imap.wire.parse import parse_command

PARSED = [
    (b"a IDLE\r\n", c.Idle("a")),
    (b"a idle\n", c.Idle("a")),
    (b"t2 ENABLE CONDSTORE X-GOOD-IDEA\r\n", c.Enable("t2", ("CONDSTORE", "X-GOOD-IDEA"))),
    (b"t ENABLE qresync\r\n", c.Enable("t", ("QRESYNC",))),
    (b"t ENABLE UTF8=ACCEPT\r\n", c.Enable("t", ("UTF8=ACCEPT",))),
    (b"n NAMESPACE\r\n", c.Namespace("n")),
    (b"a042 ID NIL\r\n", c.Id("a042", None)),
    (b"a ID nil\r\n", c.Id("a", None)),
    (b"a ID ()\r\n", c.Id("a", ())),
    (  # RFC 2971 §3.1 example
        b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")\r\n',
        c.Id("a023", (("name", "sodr"), ("version", "19.34"), ("vendor", "Pink Floyd Music Limited"))),
    ),
    (b'a ID ("name" NIL "os" {5}\r\nLinux)\r\n', c.Id("a", (("name", None), ("os", "Linux")))),
    (b'a ID ("name" {4+}\r\nm\xc3\xbct)\r\n', c.Id("a", (("name", "m\u00fct"),))),
    (b"u UNSELECT\r\n", c.Unselect("u")),
    (b"c COMPRESS DEFLATE\r\n", c.Compress("c", "DEFLATE")),
    (b"c compress deflate\r\n", c.Compress("c", "DEFLATE")),
    (b"c COMPRESS LZ4\r\n", c.Compress("c", "LZ4")),  # the handler refuses it (BAD)
]

SYNTAX_ERRORS = [
    (b"a IDLE now\r\n", "Unexpected extra arguments"),
    (b"a ENABLE\r\n", "Missing capability name"),
    (b"a ENABLE \r\n", "Missing capability name"),
    (b'a ENABLE "CONDSTORE"\r\n', "Invalid capability name"),
    (b"a ENABLE (CONDSTORE)\r\n", "Invalid capability name"),
    (b"a NAMESPACE x\r\n", "Unexpected extra arguments"),
    (b"a ID\r\n", "Missing ID parameter list"),
    (b"a ID NILS\r\n", "Invalid ID parameters: expected '(' or NIL"),
    (b'a ID "name" "x"\r\n', "Invalid ID parameters: expected '(' or NIL"),
    (b"a ID (name x)\r\n", "Invalid ID field: expected a string"),
    (b'a ID ("name")\r\n', "Expected a space before ID value"),
    (b'a ID ("name" x)\r\n', "Invalid ID value: expected a string"),
    (b'a ID (NIL "x")\r\n', "Invalid ID field: expected a string"),
    (b'a ID ("a" "b"\r\n', "Invalid ID parameters: expected space or ')'"),
    (b'a ID ("a" "b""c" "d")\r\n', "Invalid ID parameters: expected space or ')'"),
    (b'a ID ("a" "b") x\r\n', "Unexpected extra arguments"),
    (b"a UNSELECT INBOX\r\n", "Unexpected extra arguments"),
    (b"a COMPRESS\r\n", "Missing compression algorithm"),
    (b'a COMPRESS "DEFLATE"\r\n', "Invalid compression algorithm"),
    (b"a COMPRESS DEFLATE LEVEL\r\n", "Unexpected extra arguments"),
]


@pytest.mark.parametrize(("frame", "expected"), PARSED)
def test_known_answers(frame: bytes, expected: c.Command) -> None:
    assert parse_command(frame) == expected


@pytest.mark.parametrize(("frame", "reason"), SYNTAX_ERRORS)
def test_syntax_errors_keep_the_tag(frame: bytes, reason: str) -> None:
    assert parse_command(frame) == c.CommandSyntaxError("a", reason)


def test_id_limits_of_rfc_2971_are_not_enforced_on_the_client() -> None:
    """RFC 2971 §3.3 limits bind senders; §3 forbids refusing service on ID
    data. The conformance script sends 30 pairs at the limits."""
    params = tuple((f"{chr(97 + i % 26)}{'x' * 29}", "9" * 1024) for i in range(30))
    command = c.Id("a", params)
    assert parse_command(encode_command(command)) == command


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40), max_size=4))
def test_id_never_raises_on_any_bytes(pieces: list[bytes]) -> None:
    frame = b"a ID (" + b" ".join(pieces) + b")\r\n"
    result = parse_command(frame)
    assert isinstance(result, (c.Id, c.CommandSyntaxError))


@pytest.mark.parametrize("command", [
    c.Enable("t", ("CONDSTORE", "X-GOOD-IDEA")),
    c.Id("a", (("name", "a \"quoted\" \\ name"), ("multi\r\nline", None))),
    c.Id("a", None),
    c.Compress("z", "DEFLATE"),
    c.Idle("i"), c.Namespace("n"), c.Unselect("u"),
])
def test_encode_command_round_trips(command: c.Command) -> None:
    assert parse_command(encode_command(command)) == command
    assert parse_command(encode_command(command, nonsync=True)) == command


def test_encoded_bytes() -> None:
    assert encode_command(c.Enable("t", ("CONDSTORE", "QRESYNC"))) == b"t ENABLE CONDSTORE QRESYNC\r\n"
    assert encode_command(c.Id("a", (("name", "x"), ("v", None)))) == b'a ID ("name" "x" "v" NIL)\r\n'
    assert encode_command(c.Compress("c", "DEFLATE")) == b"c COMPRESS DEFLATE\r\n"
    with pytest.raises(ValueError):
        encode_command(c.Enable("t", ()))

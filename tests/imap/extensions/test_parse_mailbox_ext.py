"""Parser known answers for LIST-EXTENDED (RFC 5258 §6) with LIST-STATUS
(RFC 5819 §4) and SPECIAL-USE (RFC 6154 §6), CREATE ... (USE (...))
(RFC 6154 §3) and MULTIAPPEND (RFC 3502 §6); hypothesis round trips of
these forms, also through the framer (one continuation per literal)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.core.config import Limits
from imapd.imap.wire import commands as c
from imapd.imap.wire.encode_command import encode_command
from imapd.imap.wire.framer import CommandFrame, Framer, NeedContinuation
from imapd.imap.wire.parse import parse_command
from tests.imap.wire import strategies as gen

UTC = datetime.timezone.utc

PARSED = [
    # The plain forms are unchanged (RFC 3501 §6.3.8, §6.3.3, §6.3.11).
    (b'a LIST "" *\r\n', c.List("a", "", "*")),
    (b"a CREATE foo\r\n", c.Create("a", "foo")),
    (b"a APPEND x {1}\r\nA\r\n", c.Append("a", "x", (), None, b"A")),
    # RFC 5258 §5 examples.
    (b'A02 LIST (SUBSCRIBED) "" "*"\r\n', c.List("A02", "", "*", ("SUBSCRIBED",))),
    (b'A03 LIST () "" "%" RETURN (CHILDREN)\r\n', c.List("A03", "", "%", (), None, ("CHILDREN",))),
    (b'A04 LIST (REMOTE) "" "%" RETURN (CHILDREN)\r\n',
     c.List("A04", "", "%", ("REMOTE",), None, ("CHILDREN",))),
    (b'C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"\r\n',
     c.List("C04", "", "%", ("SUBSCRIBED", "RECURSIVEMATCH"))),
    (b'G01 LIST "" ("INBOX" "Drafts" "Sent/%")\r\n',
     c.List("G01", "", "INBOX", patterns=("INBOX", "Drafts", "Sent/%"))),
    (b'a list (recursivematch subscribed) "" (x)\r\n',
     c.List("a", "", "x", ("RECURSIVEMATCH", "SUBSCRIBED"), ("x",))),
    (b'a LIST "" % RETURN ()\r\n', c.List("a", "", "%", None, None, ())),
    # RFC 5819 §5 example.
    (b'A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))\r\n',
     c.List("A01", "", "%", None, None, ("STATUS",), ("MESSAGES", "UNSEEN"))),
    (b'a LIST "" % RETURN (status (size messages size) subscribed)\r\n',
     c.List("a", "", "%", None, None, ("STATUS", "SUBSCRIBED"), ("SIZE", "MESSAGES"))),
    # RFC 6154 §5.1, §5.2 examples.
    (b't1 LIST "" "%" RETURN (SPECIAL-USE)\r\n', c.List("t1", "", "%", None, None, ("SPECIAL-USE",))),
    (b't1 LIST (SPECIAL-USE) "" "*"\r\n', c.List("t1", "", "*", ("SPECIAL-USE",))),
    (b"t1 CREATE MySpecial (USE (\\Drafts \\Sent))\r\n",
     c.Create("t1", "MySpecial", ("\\Drafts", "\\Sent"))),
    (b"t1 create x (use (\\sent \\SENT \\X-Custom))\r\n", c.Create("t1", "x", ("\\Sent", "\\X-Custom"))),
    (b"t1 CREATE x (USE ())\r\n", c.Create("t1", "x", ())),
    # RFC 3502 §6 example (two messages, the second with flags and a date).
    (b'A003 APPEND saved-messages (\\Seen) {3}\r\nabc (\\Draft) "05-Jul-1996 02:44:25 +0000" {2}\r\nde\r\n',
     c.Append("A003", "saved-messages", ("\\Seen",), None, b"abc", (
         c.AppendMessage(("\\Draft",), datetime.datetime(1996, 7, 5, 2, 44, 25, tzinfo=UTC), b"de"),))),
    (b"a APPEND x {1+}\r\nA {1+}\r\nB ~{1+}\r\nC\r\n",
     c.Append("a", "x", (), None, b"A", (c.AppendMessage((), None, b"B"), c.AppendMessage((), None, b"C")))),
]

SYNTAX_ERRORS = [
    (b'a LIST (imaptest) "" ""\r\n', "Unknown LIST selection option IMAPTEST"),
    (b'a LIST (recursivematch) "" ""\r\n', "RECURSIVEMATCH needs another selection option such as SUBSCRIBED"),
    (b'a LIST (recursivematch remote) "" ""\r\n', "RECURSIVEMATCH needs another selection option"),
    (b'a LIST (SPECIAL-USE RECURSIVEMATCH) "" "*"\r\n', "RECURSIVEMATCH needs another selection option"),
    (b'a LIST "" "" return (imaptest)\r\n', "Unknown LIST return option IMAPTEST"),
    (b'a LIST "" % RETURN (STATUS)\r\n', "Expected a space before status items"),
    (b'a LIST "" % RETURN (STATUS ())\r\n', "Invalid keyword"),
    (b'a LIST "" % RETURN (STATUS (BOGUS))\r\n', "Unknown status item BOGUS"),
    (b'a LIST "" % RETURN (STATUS (MESSAGES) STATUS (UNSEEN))\r\n', "STATUS given twice"),
    (b'a LIST "" ()\r\n', "Invalid mailbox pattern"),
    (b'a LIST "" (a b\r\n', "Invalid mailbox patterns: expected space or ')'"),
    (b'a LIST () ""\r\n', "Missing mailbox pattern"),
    (b'a LIST "" % RETURN\r\n', "Unexpected extra arguments"),
    (b"a CREATE x (USE (Sent))\r\n", "Invalid special-use attribute"),
    (b"a CREATE x (FOO (\\Sent))\r\n", "Unknown CREATE parameter FOO"),
    (b"a CREATE x (USE (\\Sent) USE (\\Trash))\r\n", "Invalid CREATE parameters: expected ')' (USE may appear once)"),
    (b"a CREATE x (USE \\Sent)\r\n", "Invalid USE parameter: expected '('"),
    (b"a APPEND x {1}\r\nA B\r\n", "Invalid APPEND: the message must be a literal"),
    (b"a APPEND x {1}\r\nA \r\n", "Missing next message"),
    (b"a APPEND x {1}\r\nA (\\Seen)\r\n", "Missing message literal"),
]


@pytest.mark.parametrize(("frame", "expected"), PARSED)
def test_known_answers(frame: bytes, expected: c.Command) -> None:
    assert parse_command(frame) == expected


@pytest.mark.parametrize(("frame", "reason"), SYNTAX_ERRORS)
def test_syntax_errors_are_bad_with_a_reason(frame: bytes, reason: str) -> None:
    parsed = parse_command(frame)
    assert isinstance(parsed, c.CommandSyntaxError), parsed
    assert parsed.tag == "a" and parsed.reason.startswith(reason), parsed.reason


def test_extended_list_properties() -> None:
    plain = c.List("a", "", "*")
    assert not plain.extended and plain.all_patterns == ("*",)
    assert c.List("a", "", "x", patterns=("x", "y")).all_patterns == ("x", "y")
    assert c.List("a", "", "x", selection=()).extended
    assert c.List("a", "", "x", return_options=()).extended
    assert c.List("a", "", "x", patterns=("x",)).extended


def test_append_messages_lists_every_message_in_order() -> None:
    second = c.AppendMessage(("\\Seen",), None, b"2")
    command = c.Append("a", "x", ("\\Draft",), None, b"1", (second,))
    assert command.messages == (c.AppendMessage(("\\Draft",), None, b"1"), second)


def test_encoder_refuses_patterns_that_do_not_start_with_the_pattern() -> None:
    with pytest.raises(ValueError):
        encode_command(c.List("a", "", "x", patterns=("y",)))


mailbox_commands = st.one_of(gen.extended_lists, gen.creates, gen.multiappends)


@settings(max_examples=400, deadline=None)  # timing varies under a loaded -n run
@given(mailbox_commands, st.booleans())
def test_round_trip(command: c.Command, nonsync: bool) -> None:
    assert parse_command(encode_command(command, nonsync=nonsync)) == command


@settings(max_examples=200, deadline=None)
@given(gen.multiappends)
def test_multiappend_asks_for_each_literal_separately(command: c.Append) -> None:
    """RFC 3502 §6: each message is a synchronizing literal of its own; the
    framer asks for each one and the parser gets the whole command."""
    events = Framer(Limits()).feed(encode_command(command))
    frames = [e for e in events if isinstance(e, CommandFrame)]
    continuations = [e for e in events if isinstance(e, NeedContinuation)]
    assert len(continuations) == len(command.messages)
    assert len(frames) == 1 and parse_command(frames[0].data) == command

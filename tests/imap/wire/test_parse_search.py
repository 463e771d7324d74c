"""SEARCH parsing known answers (RFC 3501 §6.4.4, §6.4.8)."""

from __future__ import annotations

import datetime

import pytest

from imapd.core.model import ANSWERED, DELETED, DRAFT, FLAGGED, RECENT, SEEN, SeqRange, SequenceSet
from imapd.imap.wire import commands as c
from imapd.imap.wire.parse import parse_command

F = c.SearchFlag
D = datetime.date


def seq(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))


def search(tag: str, *keys: c.SearchKey, charset: str | None = None, uid: bool = False) -> c.Search:
    return c.Search(tag, uid, charset, c.SearchAnd(keys))


EXAMPLES: list[tuple[bytes, c.Search]] = [
    # RFC 3501 §6.4.4 examples
    (
        b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n',
        search(
            "A282", F(FLAGGED, True),
            c.SearchDate(c.DateField.INTERNAL, c.DateOp.SINCE, D(1994, 2, 1)),
            c.SearchNot(c.SearchHeader("FROM", "Smith")),
        ),
    ),
    (
        b'A283 SEARCH TEXT "string not in mailbox"\r\n',
        search("A283", c.SearchText(c.TextScope.TEXT, "string not in mailbox")),
    ),
    (
        b"A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n",
        search("A284", c.SearchText(c.TextScope.TEXT, "XXXXXX"), charset="UTF-8"),
    ),
    # The example criteria from the §6.4.4 prose and §6.4.8.
    (
        b'a SEARCH DELETED FROM "SMITH" SINCE 1-Feb-1994\r\n',
        search(
            "a", F(DELETED, True), c.SearchHeader("FROM", "SMITH"),
            c.SearchDate(c.DateField.INTERNAL, c.DateOp.SINCE, D(1994, 2, 1)),
        ),
    ),
    (
        b"a UID SEARCH 1:100 UID 443:557\r\n",
        search("a", c.SearchSeq(seq((1, 100))), c.SearchUid(seq((443, 557))), uid=True),
    ),
    # Every flag key and its normalisation.
    (
        b"a SEARCH ANSWERED DELETED DRAFT FLAGGED RECENT SEEN UNANSWERED UNDELETED "
        b"UNDRAFT UNFLAGGED UNSEEN OLD NEW ALL\r\n",
        search(
            "a", F(ANSWERED, True), F(DELETED, True), F(DRAFT, True), F(FLAGGED, True),
            F(RECENT, True), F(SEEN, True), F(ANSWERED, False), F(DELETED, False),
            F(DRAFT, False), F(FLAGGED, False), F(SEEN, False), F(RECENT, False),
            c.SearchAnd((F(RECENT, True), F(SEEN, False))), c.SearchAll(),
        ),
    ),
    (
        b"a SEARCH KEYWORD $Forwarded UNKEYWORD Junk\r\n",
        search("a", F("$Forwarded", True), F("Junk", False)),
    ),
    # String keys, header shorthands, HEADER, BODY/TEXT; astring forms.
    (
        b'a search bcc x cc "y z" from {3}\r\nabc to "" subject s header X-Mailer "" body b text t\r\n',
        search(
            "a", c.SearchHeader("BCC", "x"), c.SearchHeader("CC", "y z"),
            c.SearchHeader("FROM", "abc"), c.SearchHeader("TO", ""),
            c.SearchHeader("SUBJECT", "s"), c.SearchHeader("X-MAILER", ""),
            c.SearchText(c.TextScope.BODY, "b"), c.SearchText(c.TextScope.TEXT, "t"),
        ),
    ),
    # Dates: every date key, quoted date, one- and two-digit days.
    (
        b'a SEARCH BEFORE 1-Jan-2000 ON "02-feb-2001" SINCE 31-DEC-1999 '
        b"SENTBEFORE 3-Mar-2003 SENTON 4-Apr-2004 SENTSINCE 29-Feb-2004\r\n",
        search(
            "a",
            c.SearchDate(c.DateField.INTERNAL, c.DateOp.BEFORE, D(2000, 1, 1)),
            c.SearchDate(c.DateField.INTERNAL, c.DateOp.ON, D(2001, 2, 2)),
            c.SearchDate(c.DateField.INTERNAL, c.DateOp.SINCE, D(1999, 12, 31)),
            c.SearchDate(c.DateField.SENT, c.DateOp.BEFORE, D(2003, 3, 3)),
            c.SearchDate(c.DateField.SENT, c.DateOp.ON, D(2004, 4, 4)),
            c.SearchDate(c.DateField.SENT, c.DateOp.SINCE, D(2004, 2, 29)),
        ),
    ),
    (
        b"a SEARCH LARGER 1000 SMALLER 0\r\n",
        search("a", c.SearchSize(True, 1000), c.SearchSize(False, 0)),
    ),
    # Nesting, OR, NOT, sequence sets with * and reversed ranges.
    (
        b"a SEARCH OR (SEEN FLAGGED) NOT (OR 1:* UID *:5,7) 9:2\r\n",
        search(
            "a",
            c.SearchOr(
                c.SearchAnd((F(SEEN, True), F(FLAGGED, True))),
                c.SearchNot(c.SearchAnd((
                    c.SearchOr(c.SearchSeq(seq((1, None))), c.SearchUid(seq((None, 5), (7, 7)))),
                ))),
            ),
            c.SearchSeq(seq((9, 2))),
        ),
    ),
    (
        b"a SEARCH OR OR SEEN DRAFT NOT NOT DELETED\r\n",
        search(
            "a",
            c.SearchOr(c.SearchOr(F(SEEN, True), F(DRAFT, True)), c.SearchNot(c.SearchNot(F(DELETED, True)))),
        ),
    ),
    (b"a SEARCH ((ALL))\r\n", search("a", c.SearchAnd((c.SearchAnd((c.SearchAll(),)),)))),
    (b"a SEARCH $\r\n", search("a", c.SearchSeq(SequenceSet((), saved=True)))),
    # Charsets: names upper-cased; raw UTF-8 accepted in quoted strings.
    (
        b'a SEARCH charset utf-8 SUBJECT "\xc3\xa4rger"\r\n',
        search("a", c.SearchHeader("SUBJECT", "ärger"), charset="UTF-8"),
    ),
    (b'a SEARCH SUBJECT "\xc3\xa4"\r\n', search("a", c.SearchHeader("SUBJECT", "ä"))),
    (
        b'a SEARCH CHARSET "us-ascii" TEXT x\r\n',
        search("a", c.SearchText(c.TextScope.TEXT, "x"), charset="US-ASCII"),
    ),
    # An unknown charset still parses (the handler answers NO [BADCHARSET]).
    (
        b"a SEARCH CHARSET KOI8-R TEXT {2}\r\n\xf0\xd2\r\n",
        search("a", c.SearchText(c.TextScope.TEXT, "\ufffd\ufffd"), charset="KOI8-R"),
    ),
]


@pytest.mark.parametrize("frame, expected", EXAMPLES)
def test_search_known_answers(frame: bytes, expected: c.Search) -> None:
    assert parse_command(frame) == expected


ERRORS: list[tuple[bytes, str]] = [
    (b"a SEARCH\r\n", "Missing search criteria"),
    (b"a SEARCH \r\n", "Missing search criteria"),
    (b"a SEARCH FOO\r\n", "Unknown search key FOO"),
    (b"a SEARCH CHARSETX\r\n", "Unknown search key CHARSETX"),
    (b"a SEARCH CHARSET\r\n", "Unknown search key CHARSET"),
    (b"a SEARCH CHARSET UTF-8\r\n", "Missing search criteria after CHARSET"),
    (b"a SEARCH FROM\r\n", "Missing value for FROM"),
    (b"a SEARCH HEADER X-Foo\r\n", "Missing value for HEADER"),
    (b"a SEARCH HEADER \"a:b\" x\r\n", "Invalid header field name for HEADER"),
    (b"a SEARCH SINCE\r\n", "Missing date for SINCE"),
    (b"a SEARCH SINCE 1994-02-01\r\n", "Invalid date (expected d-Mon-yyyy)"),
    (b"a SEARCH SINCE 30-Feb-1994\r\n", "Invalid date: out of range"),
    (b"a SEARCH SINCE 1-Foo-1994\r\n", "Invalid month name in date"),
    (b'a SEARCH SINCE "1-Feb-1994\r\n', "Unterminated quoted date"),
    (b"a SEARCH LARGER x\r\n", "Invalid size for LARGER"),
    (b"a SEARCH KEYWORD \\Seen\r\n", "Invalid keyword for KEYWORD"),
    (b"a SEARCH UID x\r\n", "Invalid UID set"),
    (b"a SEARCH NOT\r\n", "Missing search key after NOT"),
    (b"a SEARCH OR SEEN\r\n", "Missing second search key for OR"),
    (b"a SEARCH (SEEN\r\n", "Unbalanced parentheses in search criteria"),
    (b"a SEARCH ()\r\n", "Invalid search key"),
    (b"a SEARCH SEEN)\r\n", "Invalid search key: expected a space"),
    (b"a SEARCH SEEN  DRAFT\r\n", "Invalid search key"),
    (b'a SEARCH SUBJECT "\xff"\r\n', "Search string is not valid UTF-8"),
    (b"a SEARCH CHARSET \"\" ALL\r\n", "Invalid charset name"),
]


@pytest.mark.parametrize("frame, reason", ERRORS)
def test_search_errors(frame: bytes, reason: str) -> None:
    assert parse_command(frame) == c.CommandSyntaxError("a", reason)


@pytest.mark.parametrize(
    "criteria",
    [b"(" * 40 + b"ALL" + b")" * 40, b"NOT " * 40 + b"ALL", b"OR ALL " * 40 + b"ALL"],
)
def test_nesting_beyond_limit_is_a_syntax_error(criteria: bytes) -> None:
    assert parse_command(b"a SEARCH " + criteria + b"\r\n") == c.CommandSyntaxError("a", "Too deeply nested")


def test_nesting_within_limit_parses() -> None:
    frame = b"a SEARCH " + b"(" * 31 + b"ALL" + b")" * 31 + b"\r\n"
    assert isinstance(parse_command(frame), c.Search)


def test_hostile_deep_not_chain_does_not_crash() -> None:
    frame = b"a SEARCH " + b"NOT " * 15_000 + b"ALL\r\n"
    assert parse_command(frame) == c.CommandSyntaxError("a", "Too deeply nested")

"""Parser known answers for the non-FETCH/SEARCH commands (RFC 3501 §6.1-§6.4),
including every client command example of RFC 3501 §6-§8."""

from __future__ import annotations

import datetime

import pytest

from imapd.core.model import SeqRange, Secret, SequenceSet
from imapd.imap.wire import commands as c
from imapd.imap.wire.parse import parse_command

TZ_PST = datetime.timezone(datetime.timedelta(hours=-8))


def seq(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))


APPEND_310 = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
    b"Subject: afternoon meeting\r\n"
    b"To: mooch@owatagu.siam.edu\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)
assert len(APPEND_310) == 310  # the size the RFC's example announces

# Every client command in RFC 3501 §6.1-§6.4 and §8 that is not a FETCH or
# SEARCH (those are in their own files), with what it must parse into.
RFC_EXAMPLES: list[tuple[bytes, c.Command]] = [
    (b"abcd CAPABILITY\r\n", c.Capability("abcd")),
    (b"efgh STARTTLS\r\n", c.StartTLS("efgh")),
    (b"ijkl CAPABILITY\r\n", c.Capability("ijkl")),
    (b"a002 NOOP\r\n", c.Noop("a002")),
    (b"a047 NOOP\r\n", c.Noop("a047")),
    (b"A023 LOGOUT\r\n", c.Logout("A023")),
    (b"a001 CAPABILITY\r\n", c.Capability("a001")),
    (b"a002 STARTTLS\r\n", c.StartTLS("a002")),
    (b"a004 LOGIN joe password\r\n", c.Login("a004", "joe", Secret(b"password"))),
    (b"A001 AUTHENTICATE GSSAPI\r\n", c.Authenticate("A001", "GSSAPI")),
    (b"a001 LOGIN SMITH SESAME\r\n", c.Login("a001", "SMITH", Secret(b"SESAME"))),
    (b"A142 SELECT INBOX\r\n", c.Select("A142", "INBOX")),
    (b"A932 EXAMINE blurdybloop\r\n", c.Examine("A932", "blurdybloop")),
    (b"A003 CREATE owatagusiam/\r\n", c.Create("A003", "owatagusiam/")),
    (b"A004 CREATE owatagusiam/blurdybloop\r\n", c.Create("A004", "owatagusiam/blurdybloop")),
    (b'A682 LIST "" *\r\n', c.List("A682", "", "*")),
    (b"A683 DELETE blurdybloop\r\n", c.Delete("A683", "blurdybloop")),
    (b"A684 DELETE foo\r\n", c.Delete("A684", "foo")),
    (b"A685 DELETE foo/bar\r\n", c.Delete("A685", "foo/bar")),
    (b'A86 LIST "" %\r\n', c.List("A86", "", "%")),
    (b"A683 RENAME blurdybloop sarasoop\r\n", c.Rename("A683", "blurdybloop", "sarasoop")),
    (b"A684 RENAME foo zowie\r\n", c.Rename("A684", "foo", "zowie")),
    (b"Z433 RENAME INBOX old-mail\r\n", c.Rename("Z433", "INBOX", "old-mail")),
    (b"A002 SUBSCRIBE #news.comp.mail.mime\r\n", c.Subscribe("A002", "#news.comp.mail.mime")),
    (b"A002 UNSUBSCRIBE #news.comp.mail.mime\r\n", c.Unsubscribe("A002", "#news.comp.mail.mime")),
    (b'A101 LIST "" ""\r\n', c.List("A101", "", "")),
    (b'A102 LIST #news.comp.mail.misc ""\r\n', c.List("A102", "#news.comp.mail.misc", "")),
    (b'A103 LIST /usr/staff/jones ""\r\n', c.List("A103", "/usr/staff/jones", "")),
    (b"A202 LIST ~/Mail/ %\r\n", c.List("A202", "~/Mail/", "%")),
    (b'A002 LSUB "#news." "comp.mail.*"\r\n', c.Lsub("A002", "#news.", "comp.mail.*")),
    (b'A003 LSUB "#news." "comp.%"\r\n', c.Lsub("A003", "#news.", "comp.%")),
    (
        b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
        c.Status("A042", "blurdybloop", ("UIDNEXT", "MESSAGES")),
    ),
    (
        b"A003 APPEND saved-messages (\\Seen) {310}\r\n" + APPEND_310 + b"\r\n",
        c.Append("A003", "saved-messages", ("\\Seen",), None, APPEND_310),
    ),
    (b"FXXZ CHECK\r\n", c.Check("FXXZ")),
    (b"A341 CLOSE\r\n", c.Close("A341")),
    (b"A202 EXPUNGE\r\n", c.Expunge("A202")),
    (
        b"A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
        c.Store("A003", False, seq((2, 4)), c.StoreMode.ADD, False, ("\\Deleted",)),
    ),
    (b"A003 COPY 2:4 MEETING\r\n", c.Copy("A003", False, seq((2, 4)), "MEETING")),
    (b"A001 LOGIN fred blurdybloop\r\n", c.Login("A001", "fred", Secret(b"blurdybloop"))),
    (b"A222 COPY 1:2 owatagusiam\r\n", c.Copy("A222", False, seq((1, 2)), "owatagusiam")),
    (b"A223 COPY 3:200 blurdybloop\r\n", c.Copy("A223", False, seq((3, 200)), "blurdybloop")),
    (b"A443 EXPUNGE\r\n", c.Expunge("A443")),
    (
        b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n",
        c.Login("A001", "FRED FOOBAR", Secret(b"fat man")),
    ),
    # §8 sample connection
    (b"a001 login mrc secret\r\n", c.Login("a001", "mrc", Secret(b"secret"))),
    (b"a002 select inbox\r\n", c.Select("a002", "INBOX")),
    (
        b"a005 store 12 +flags \\deleted\r\n",
        c.Store("a005", False, seq((12, 12)), c.StoreMode.ADD, False, ("\\Deleted",)),
    ),
    (b"a006 logout\r\n", c.Logout("a006")),
]


@pytest.mark.parametrize("frame, expected", RFC_EXAMPLES)
def test_rfc3501_client_examples(frame: bytes, expected: c.Command) -> None:
    assert parse_command(frame) == expected


MORE: list[tuple[bytes, c.Command]] = [
    # Bare LF line end (the framer accepts it).
    (b"a NOOP\n", c.Noop("a")),
    # Tags use any ASTRING-CHAR but "+" (RFC 3501 §9), incl. "]".
    (b"x]1 NOOP\r\n", c.Noop("x]1")),
    # SASL-IR (RFC 4959): initial response stays base64; "=" means empty.
    (b"a AUTHENTICATE plain AGZvbwBiYXI=\r\n", c.Authenticate("a", "PLAIN", b"AGZvbwBiYXI=")),
    (b"a AUTHENTICATE PLAIN =\r\n", c.Authenticate("a", "PLAIN", b"=")),
    # LOGIN: quoted with escapes, literals, 8-bit password bytes.
    (b'a LOGIN "jo \\"e\\"" "p\\\\w"\r\n', c.Login("a", 'jo "e"', Secret(b"p\\w"))),
    (b"a LOGIN {5+}\r\nj\xc3\xb6rg {3}\r\n\xff\x01x\r\n", c.Login("a", "jörg", Secret(b"\xff\x01x"))),
    (b'a LOGIN "" ""\r\n', c.Login("a", "", Secret(b""))),
    # Mailbox names: mUTF-7 decoded, INBOX case-insensitive, only INBOX itself.
    (b"a SELECT iNbOx\r\n", c.Select("a", "INBOX")),
    (b'a SELECT "InBox"\r\n', c.Select("a", "INBOX")),
    (b"a SELECT {5}\r\ninbox\r\n", c.Select("a", "INBOX")),
    (b"a SELECT inbox/Sub\r\n", c.Select("a", "inbox/Sub")),
    (b"a CREATE Entw&APw-rfe\r\n", c.Create("a", "Entwürfe")),
    (b'a CREATE "~peter/mail/&U,BTFw-/&ZeVnLIqe-"\r\n', c.Create("a", "~peter/mail/台北/日本語")),
    (b"a CREATE a&-b\r\n", c.Create("a", "a&b")),
    (b"a DELETE x]y\r\n", c.Delete("a", "x]y")),
    (b"a RENAME inbox \"New Box\"\r\n", c.Rename("a", "INBOX", "New Box")),
    # LIST keeps the reference/pattern spelling (no INBOX folding).
    (b"a LIST inbox *\r\n", c.List("a", "inbox", "*")),
    (b"a LIST \"\" %/]x*\r\n", c.List("a", "", "%/]x*")),
    (b"a LSUB {0}\r\n &AOQ-*\r\n", c.Lsub("a", "", "ä*")),
    (
        b"a STATUS inbox (messages recent uidnext uidvalidity unseen)\r\n",
        c.Status("a", "INBOX", ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")),
    ),
    # APPEND with date-time (both day forms), no flags, empty flags, literal8.
    (
        b'a APPEND inbox " 7-Feb-1994 21:52:25 -0800" {1}\r\nx\r\n',
        c.Append("a", "INBOX", (), datetime.datetime(1994, 2, 7, 21, 52, 25, tzinfo=TZ_PST), b"x"),
    ),
    (
        b'a APPEND inbox (\\seen $Label1) "17-jul-1996 02:44:25 +0000" {1+}\r\nx\r\n',
        c.Append(
            "a", "INBOX", ("\\Seen", "$Label1"),
            datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=datetime.timezone.utc), b"x",
        ),
    ),
    (b"a APPEND x () {0}\r\n\r\n", c.Append("a", "x", (), None, b"")),
    (b"a APPEND x ~{2}\r\n\x00\x01\r\n", c.Append("a", "x", (), None, b"\x00\x01")),
    # STORE variants, flags with or without parentheses, canonical system flags.
    (
        b"a STORE 1 FLAGS.SILENT (\\SEEN \\answered foo)\r\n",
        c.Store("a", False, seq((1, 1)), c.StoreMode.REPLACE, True, ("\\Seen", "\\Answered", "foo")),
    ),
    (
        b"a UID STORE 5:* -flags.silent \\Flagged \\Draft\r\n",
        c.Store("a", True, seq((5, None)), c.StoreMode.REMOVE, True, ("\\Flagged", "\\Draft")),
    ),
    (b"a STORE 1 FLAGS ()\r\n", c.Store("a", False, seq((1, 1)), c.StoreMode.REPLACE, False, ())),
    # Sequence sets: *, reversed ranges, lists.
    (
        b"a UID COPY 9:3,*,7:*,*:2 Trash\r\n",
        c.Copy("a", True, seq((9, 3), (None, None), (7, None), (None, 2)), "Trash"),
    ),
    (b"a COPY $ x\r\n", c.Copy("a", False, SequenceSet((), saved=True), "x")),
    (b"a COPY 4294967295 x\r\n", c.Copy("a", False, seq((4294967295, 4294967295)), "x")),
]


@pytest.mark.parametrize("frame, expected", MORE)
def test_more_known_answers(frame: bytes, expected: c.Command) -> None:
    assert parse_command(frame) == expected


ERRORS: list[tuple[bytes, str | None, str]] = [
    (b"\r\n", None, "Missing or invalid tag"),
    (b"+ NOOP\r\n", None, "Missing or invalid tag"),
    (b"a+ NOOP\r\n", None, "Missing or invalid tag"),
    (b"(a) NOOP\r\n", None, "Missing or invalid tag"),
    (b"a\r\n", "a", "Missing command name"),
    (b"a \r\n", "a", "Missing command name"),
    (b"a  NOOP\r\n", "a", "Invalid keyword"),
    (b"a FROB\r\n", "a", "Unknown command FROB"),
    (b"a XPIG-LATIN\r\n", "a", "Unknown command XPIG-LATIN"),
    (b"a UID XFROB 1\r\n", "a", "Unknown UID command XFROB"),
    (b"a UID\r\n", "a", "Missing command after UID"),
    (b"a NOOP extra\r\n", "a", "Unexpected extra arguments"),
    (b"a NOOP\r\nmore\r\n", "a", "Unexpected characters at end of command"),
    (b"a NOOP(\r\n", "a", "Unexpected characters at end of command"),
    (b"a SELECT\r\n", "a", "Missing mailbox name"),
    (b"a SELECT \r\n", "a", "Missing mailbox name"),
    (b"a SELECT (x)\r\n", "a", "Invalid mailbox name"),
    (b'a SELECT "abc\r\n', "a", "Unterminated or invalid quoted mailbox name"),
    (b'a SELECT "a\\b"\r\n', "a", "Invalid escape in quoted mailbox name"),
    (b"a SELECT {5}\r\nab\r\n", "a", "Truncated literal for mailbox name"),
    (b"a SELECT {2}\r\na\x00\r\n", "a", "NUL octet in literal for mailbox name"),
    (b"a SELECT ~{1}\r\nx\r\n", "a", "Unexpected characters at end of command"),
    (b"a RENAME foo\r\n", "a", "Missing new mailbox name"),
    (b"a LOGIN joe\r\n", "a", "Missing password"),
    (b"a LOGIN \"\xff\" x\r\n", "a", "Invalid user name: not UTF-8"),
    (b"a AUTHENTICATE\r\n", "a", "Missing authentication mechanism"),
    (b"a AUTHENTICATE PLAIN ab!c\r\n", "a", "Invalid initial response: expected base64 or '='"),
    (b"a AUTHENTICATE PLAIN abc\r\n", "a", "Invalid initial response: expected base64 or '='"),
    (b"a LIST x\r\n", "a", "Missing mailbox pattern"),
    (b"a STATUS x\r\n", "a", "Missing status items"),
    (b"a STATUS x ()\r\n", "a", "Invalid status item"),
    (b"a STATUS x (MESSAGES FOO)\r\n", "a", "Unknown status item FOO"),
    (b"a STATUS x (MESSAGES\r\n", "a", "Invalid status items: expected space or ')'"),
    (b"a APPEND x\r\n", "a", "Missing message literal"),
    (b"a APPEND x \"hello\"\r\n", "a", 'Invalid date-time (expected "dd-Mon-yyyy hh:mm:ss +zzzz")'),
    (b"a APPEND x (\\Seen) hello\r\n", "a", "Invalid APPEND: the message must be a literal"),
    (b'a APPEND x "31-Feb-2020 00:00:00 +0000" {1}\r\nx\r\n', "a", "Invalid date-time: out of range"),
    (b'a APPEND x "01-Foo-2020 00:00:00 +0000" {1}\r\nx\r\n', "a", "Invalid month name in date"),
    (b'a APPEND x "01-Jan-2020 24:00:00 +0000" {1}\r\nx\r\n', "a", "Invalid date-time: out of range"),
    (b"a APPEND x (\\Seen {1}\r\nx\r\n", "a", "Invalid flag"),
    (b"a STORE 1 +FLAGS\r\n", "a", "Missing flags"),
    (b"a STORE 1 FLAGZ (x)\r\n", "a", "Invalid STORE item FLAGZ: expected [+|-]FLAGS[.SILENT]"),
    (b"a STORE 1 +FLAGS (\\)\r\n", "a", "Invalid flag"),
    (b"a STORE 0 +FLAGS (x)\r\n", "a", "Invalid sequence set: numbers must be 1 to 4294967295"),
    (b"a COPY 4294967296 x\r\n", "a", "Invalid sequence set: numbers must be 1 to 4294967295"),
    (b"a COPY 1:2: x\r\n", "a", "Expected a space before mailbox name"),
    (b"a COPY ,1 x\r\n", "a", "Invalid sequence set"),
    (b"a COPY 1\r\n", "a", "Missing mailbox name"),
    (b"a FETCH\r\n", "a", "Missing sequence set"),
]


@pytest.mark.parametrize("frame, tag, reason", ERRORS)
def test_syntax_errors_carry_tag_and_specific_reason(frame: bytes, tag: str | None, reason: str) -> None:
    assert parse_command(frame) == c.CommandSyntaxError(tag, reason)


INVALID_NAMES = [
    (b"a SELECT &Jjo\r\n", "Invalid mailbox name: unterminated '&' in mailbox name"),
    (b'a SELECT "\xc3\xa4"\r\n', "Invalid mailbox name: raw 8-bit or control octet in mailbox name"),
    (b"a CREATE &-&\r\n", "Invalid mailbox name: unterminated '&' in mailbox name"),
    (b"a RENAME x &Jjo\r\n", "Invalid new mailbox name: unterminated '&' in mailbox name"),
]


@pytest.mark.parametrize("frame, reason", INVALID_NAMES)
def test_names_that_are_not_modified_utf7_are_flagged_not_bad_syntax(frame: bytes, reason: str) -> None:
    """Well-formed astrings that are not valid modified UTF-7 (RFC 3501
    §5.1.3) are marked ``invalid_name`` so the server answers NO, not BAD."""
    assert parse_command(frame) == c.CommandSyntaxError("a", reason, invalid_name=True)


def test_login_password_is_a_secret_and_not_in_repr() -> None:
    command = parse_command(b"a LOGIN joe hunter2\r\n")
    assert isinstance(command, c.Login)
    assert command.password.value == b"hunter2"
    assert "hunter2" not in repr(command)


def test_flag_list_nesting_counts_against_limit() -> None:
    frame = b"a APPEND x (\\Seen) {1}\r\nx\r\n"
    assert isinstance(parse_command(frame, max_nesting=1), c.Append)
    assert parse_command(frame, max_nesting=0) == c.CommandSyntaxError("a", "Too deeply nested")

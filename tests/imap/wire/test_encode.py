"""Response encoder: byte-exact RFC 3501 §6-§8 server examples, representation
choices, streaming, validation."""

from __future__ import annotations

from typing import Iterator

import pytest

from imapd.imap.wire import responses as r
from imapd.imap.wire.encode import encode_response, encode_response_chunks
from imapd.imap.wire.values import Atom, IString, Literal, LiteralStream, MailboxName, PList, Value, plist

S = r.Status
OK, NO, BAD = S.OK, S.NO, S.BAD


def code(name: str, *args: Value) -> r.ResponseCode:
    return r.ResponseCode(name, tuple(args))


def atoms(*names: str) -> PList:
    return PList(tuple(Atom(n) for n in names))


def s(text: str) -> IString:
    return IString(text.encode())


def address(name: str | None, mailbox: str, host: str) -> PList:
    return plist(None if name is None else s(name), None, s(mailbox), s(host))


TERRY = plist(address("Terry Gray", "gray", "cac.washington.edu"))
HEADER_342 = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
)
assert len(HEADER_342) == 342

# Every server response in RFC 3501 §6-§8 (line breaks inside the §8 FETCH
# are editorial; address lists and multipart bodies are back to back).
RFC_EXAMPLES: list[tuple[r.Response, bytes]] = [
    (r.Capability(("IMAP4rev1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED")),
     b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED"),
    (r.Tagged("abcd", OK, "CAPABILITY completed"), b"abcd OK CAPABILITY completed"),
    (r.Tagged("efgh", OK, "STARTLS completed"), b"efgh OK STARTLS completed"),
    (r.Capability(("IMAP4rev1", "AUTH=GSSAPI", "AUTH=PLAIN")), b"* CAPABILITY IMAP4rev1 AUTH=GSSAPI AUTH=PLAIN"),
    (r.Tagged("a002", OK, "NOOP completed"), b"a002 OK NOOP completed"),
    (r.Expunge(22), b"* 22 EXPUNGE"),
    (r.Exists(23), b"* 23 EXISTS"),
    (r.Recent(3), b"* 3 RECENT"),
    (r.FetchResponse(14, (("FLAGS", atoms("\\Seen", "\\Deleted")),)), b"* 14 FETCH (FLAGS (\\Seen \\Deleted))"),
    (r.Untagged(S.BYE, "IMAP4rev1 Server logging out"), b"* BYE IMAP4rev1 Server logging out"),
    (r.Tagged("A023", OK, "LOGOUT completed"), b"A023 OK LOGOUT completed"),
    (r.Capability(("IMAP4rev1", "STARTTLS", "LOGINDISABLED")), b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED"),
    (r.Tagged("a002", OK, "Begin TLS negotiation now"), b"a002 OK Begin TLS negotiation now"),
    (r.Untagged(OK, "IMAP4rev1 Server"), b"* OK IMAP4rev1 Server"),
    (r.Continuation(data=b""), b"+ "),
    (r.Continuation(data=b"YGgGCSqGSIb3EgECAgIAb1kwV6ADAgEFoQMCAQ+iSzBJoAMC"),
     b"+ YGgGCSqGSIb3EgECAgIAb1kwV6ADAgEFoQMCAQ+iSzBJoAMC"),
    (r.Tagged("A001", OK, "GSSAPI authentication successful"), b"A001 OK GSSAPI authentication successful"),
    (r.Tagged("a001", OK, "LOGIN completed"), b"a001 OK LOGIN completed"),
    # SELECT / EXAMINE (§6.3.1, §6.3.2)
    (r.Exists(172), b"* 172 EXISTS"),
    (r.Recent(1), b"* 1 RECENT"),
    (r.Untagged(OK, "Message 12 is first unseen", code("UNSEEN", 12)), b"* OK [UNSEEN 12] Message 12 is first unseen"),
    (r.Untagged(OK, "UIDs valid", code("UIDVALIDITY", 3857529045)), b"* OK [UIDVALIDITY 3857529045] UIDs valid"),
    (r.Untagged(OK, "Predicted next UID", code("UIDNEXT", 4392)), b"* OK [UIDNEXT 4392] Predicted next UID"),
    (r.FlagsResponse(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")),
     b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"),
    (r.Untagged(OK, "Limited", code("PERMANENTFLAGS", atoms("\\Deleted", "\\Seen", "\\*"))),
     b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited"),
    (r.Tagged("A142", OK, "SELECT completed", code("READ-WRITE")), b"A142 OK [READ-WRITE] SELECT completed"),
    (r.Untagged(OK, "No permanent flags permitted", code("PERMANENTFLAGS", PList(()))),
     b"* OK [PERMANENTFLAGS ()] No permanent flags permitted"),
    (r.Tagged("A932", OK, "EXAMINE completed", code("READ-ONLY")), b"A932 OK [READ-ONLY] EXAMINE completed"),
    # LIST / LSUB / DELETE / RENAME (§6.3.4-§6.3.9, §7.2.2, §7.2.3)
    (r.ListResponse((), "/", "blurdybloop"), b'* LIST () "/" blurdybloop'),
    (r.ListResponse(("\\Noselect",), "/", "foo"), b'* LIST (\\Noselect) "/" foo'),
    (r.ListResponse((), "/", "foo/bar"), b'* LIST () "/" foo/bar'),
    (r.Tagged("A684", NO, 'Name "foo" has inferior hierarchical names'),
     b'A684 NO Name "foo" has inferior hierarchical names'),
    (r.ListResponse((), ".", "foo.bar"), b'* LIST () "." foo.bar'),
    (r.ListResponse(("\\Noselect",), ".", "foo"), b'* LIST (\\Noselect) "." foo'),
    (r.ListResponse((), ".", "INBOX"), b'* LIST () "." INBOX'),
    (r.ListResponse((), ".", "INBOX.bar"), b'* LIST () "." INBOX.bar'),
    (r.ListResponse((), ".", "old-mail"), b'* LIST () "." old-mail'),
    (r.ListResponse(("\\Noselect",), "/", ""), b'* LIST (\\Noselect) "/" ""'),
    (r.ListResponse(("\\Noselect",), ".", "#news."), b'* LIST (\\Noselect) "." #news.'),
    (r.ListResponse(("\\Noselect",), "/", "/"), b'* LIST (\\Noselect) "/" /'),
    (r.ListResponse(("\\Noselect",), "/", "~/Mail/foo"), b'* LIST (\\Noselect) "/" ~/Mail/foo'),
    (r.ListResponse((), "/", "~/Mail/meetings"), b'* LIST () "/" ~/Mail/meetings'),
    (r.ListResponse((), ".", "#news.comp.mail.mime", lsub=True), b'* LSUB () "." #news.comp.mail.mime'),
    (r.ListResponse((), ".", "#news.comp.mail.misc", lsub=True), b'* LSUB () "." #news.comp.mail.misc'),
    (r.ListResponse(("\\NoSelect",), ".", "#news.comp.mail", lsub=True), b'* LSUB (\\NoSelect) "." #news.comp.mail'),
    # STATUS, APPEND, EXPUNGE, SEARCH, STORE, UID (§6.3.10-§6.4.8)
    (r.StatusResponse("blurdybloop", (("MESSAGES", 231), ("UIDNEXT", 44292))),
     b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)"),
    (r.Continuation("Ready for literal data"), b"+ Ready for literal data"),
    (r.Expunge(3), b"* 3 EXPUNGE"),
    (r.SearchResponse((2, 84, 882)), b"* SEARCH 2 84 882"),
    (r.SearchResponse(()), b"* SEARCH"),
    (r.SearchResponse((43,)), b"* SEARCH 43"),
    (r.SearchResponse((2, 84, 882), keyword="SORT"), b"* SORT 2 84 882"),  # RFC 5256 §4
    (r.FetchResponse(2, (("FLAGS", atoms("\\Deleted", "\\Seen")),)), b"* 2 FETCH (FLAGS (\\Deleted \\Seen))"),
    (r.FetchResponse(4, (("FLAGS", atoms("\\Deleted", "\\Flagged", "\\Seen")),)),
     b"* 4 FETCH (FLAGS (\\Deleted \\Flagged \\Seen))"),
    (r.FetchResponse(23, (("FLAGS", atoms("\\Seen")), ("UID", 4827313))), b"* 23 FETCH (FLAGS (\\Seen) UID 4827313)"),
    (r.Tagged("A999", OK, "UID FETCH completed"), b"A999 OK UID FETCH completed"),
    (r.Generic("XPIG-LATIN", (Atom("ow-nay"), Atom("eaking-spay"), Atom("ig-pay"), Atom("atin-lay"))),
     b"* XPIG-LATIN ow-nay eaking-spay ig-pay atin-lay"),
    (r.Tagged("A442", OK, "XPIG-LATIN ompleted-cay"), b"A442 OK XPIG-LATIN ompleted-cay"),
    # Status responses (§7.1)
    (r.Untagged(OK, "IMAP4rev1 server ready"), b"* OK IMAP4rev1 server ready"),
    (r.Untagged(OK, "System shutdown in 10 minutes", code("ALERT")), b"* OK [ALERT] System shutdown in 10 minutes"),
    (r.Untagged(NO, "Disk is 98% full, please delete unnecessary data"),
     b"* NO Disk is 98% full, please delete unnecessary data"),
    (r.Tagged("A223", NO, "COPY failed: disk is full"), b"A223 NO COPY failed: disk is full"),
    (r.Untagged(BAD, "Command line too long"), b"* BAD Command line too long"),
    (r.Untagged(BAD, "Empty command line"), b"* BAD Empty command line"),
    (r.Untagged(BAD, "Disk crash, attempting salvage to a new disk!"),
     b"* BAD Disk crash, attempting salvage to a new disk!"),
    (r.Untagged(S.PREAUTH, "IMAP4rev1 server logged in as Smith"), b"* PREAUTH IMAP4rev1 server logged in as Smith"),
    (r.Untagged(S.BYE, "Autologout; idle for too long"), b"* BYE Autologout; idle for too long"),
    (r.Capability(("IMAP4rev1", "STARTTLS", "AUTH=GSSAPI", "XPIG-LATIN")),
     b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI XPIG-LATIN"),
    (r.SearchResponse((2, 3, 6)), b"* SEARCH 2 3 6"),
    (r.Recent(5), b"* 5 RECENT"),
    (r.Expunge(44), b"* 44 EXPUNGE"),
    (r.FetchResponse(23, (("FLAGS", atoms("\\Seen")), ("RFC822.SIZE", 44827))),
     b"* 23 FETCH (FLAGS (\\Seen) RFC822.SIZE 44827)"),
    (r.Continuation("Ready for additional command text"), b"+ Ready for additional command text"),
    (r.Tagged("A044", BAD, 'No such command as "BLURDYBLOOP"'), b'A044 BAD No such command as "BLURDYBLOOP"'),
    # §7.4.2 BODYSTRUCTURE examples, as FETCH items
    (
        r.FetchResponse(1, (("BODYSTRUCTURE", plist(
            s("TEXT"), s("PLAIN"), plist(s("CHARSET"), s("US-ASCII")), None, None, s("7BIT"), 2279, 48,
        )),)),
        b'* 1 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 2279 48))',
    ),
    (
        r.FetchResponse(1, (("BODYSTRUCTURE", plist(
            plist(s("TEXT"), s("PLAIN"), plist(s("CHARSET"), s("US-ASCII")), None, None, s("7BIT"), 1152, 23),
            plist(s("TEXT"), s("PLAIN"), plist(s("CHARSET"), s("US-ASCII"), s("NAME"), s("cc.diff")),
                  s("<960723163407.20117h@cac.washington.edu>"), s("Compiler diff"), s("BASE64"), 4554, 73),
            s("MIXED"),
        )),)),
        b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED"))',
    ),
    # §8 sample connection
    (r.Untagged(OK, "IMAP4rev1 Service Ready"), b"* OK IMAP4rev1 Service Ready"),
    (r.Exists(18), b"* 18 EXISTS"),
    (r.Untagged(OK, "Message 17 is the first unseen message", code("UNSEEN", 17)),
     b"* OK [UNSEEN 17] Message 17 is the first unseen message"),
    (r.Tagged("a002", OK, "SELECT completed", code("READ-WRITE")), b"a002 OK [READ-WRITE] SELECT completed"),
    (
        r.FetchResponse(12, (
            ("FLAGS", atoms("\\Seen")),
            ("INTERNALDATE", s("17-Jul-1996 02:44:25 -0700")),
            ("RFC822.SIZE", 4286),
            ("ENVELOPE", plist(
                s("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)"), s("IMAP4rev1 WG mtg summary and minutes"),
                TERRY, TERRY, TERRY, plist(address(None, "imap", "cac.washington.edu")),
                plist(address(None, "minutes", "CNRI.Reston.VA.US"), address("John Klensin", "KLENSIN", "MIT.EDU")),
                None, None, s("<B27397-0100000@cac.washington.edu>"),
            )),
            ("BODY", plist(s("TEXT"), s("PLAIN"), plist(s("CHARSET"), s("US-ASCII")), None, None, s("7BIT"), 3028, 92)),
        )),
        b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b'RFC822.SIZE 4286 ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
        b'"IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")'
        b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>") '
        b'BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92))',
    ),
    (r.Tagged("a003", OK, "FETCH completed"), b"a003 OK FETCH completed"),
    (r.FetchResponse(12, (("BODY[HEADER]", Literal(HEADER_342)),)), b"* 12 FETCH (BODY[HEADER] {342}\r\n" + HEADER_342 + b")"),
    (r.FetchResponse(12, (("FLAGS", atoms("\\Seen", "\\Deleted")),)), b"* 12 FETCH (FLAGS (\\Seen \\Deleted))"),
    (r.Tagged("a005", OK, "+FLAGS completed"), b"a005 OK +FLAGS completed"),
    (r.Untagged(S.BYE, "IMAP4rev1 server terminating connection"), b"* BYE IMAP4rev1 server terminating connection"),
]


@pytest.mark.parametrize("response, expected", RFC_EXAMPLES)
def test_rfc3501_server_examples(response: r.Response, expected: bytes) -> None:
    assert encode_response(response) == expected + b"\r\n"


@pytest.mark.parametrize(
    "value, expected",
    [
        (IString(b""), b'""'),
        (IString(b"plain text"), b'"plain text"'),
        (IString(b'say "hi" \\o/'), b'"say \\"hi\\" \\\\o/"'),
        (IString(b"two\r\nlines"), b"{10}\r\ntwo\r\nlines"),
        (IString(b"lf\nonly"), b"{7}\r\nlf\nonly"),
        (IString(b"nul\x00"), b"{4}\r\nnul\x00"),
        (IString("Grüße".encode()), b"{7}\r\n" + "Grüße".encode()),
        (IString(b"x" * 1000), b'"' + b"x" * 1000 + b'"'),
        (IString(b"x" * 1001), b"{1001}\r\n" + b"x" * 1001),
        (Literal(b"abc"), b"{3}\r\nabc"),
        (Literal(b""), b"{0}\r\n"),
        (Literal(b"\x00\x01", binary=True), b"~{2}\r\n\x00\x01"),
        (None, b"NIL"),
        (0, b"0"),
        (4294967295, b"4294967295"),
        (Atom("\\Seen"), b"\\Seen"),
        (PList(()), b"()"),
        (plist(1, None, plist(), plist(Atom("a"))), b"(1 NIL () (a))"),
        (plist(plist(1), plist(2), 3, plist(4), plist(5)), b"((1)(2) 3 (4) (5))"),
        (MailboxName("INBOX"), b"INBOX"),
        (MailboxName("Entwürfe"), b"Entw&APw-rfe"),
        (MailboxName("with space"), b'"with space"'),
        (MailboxName("NIL"), b'"NIL"'),
        (MailboxName("nil"), b'"nil"'),
        (MailboxName(""), b'""'),
        (MailboxName('a"b'), b'"a\\"b"'),
        (MailboxName("x]"), b'"x]"'),
        (MailboxName("100%"), b'"100%"'),
    ],
)
def test_value_representation(value: Value, expected: bytes) -> None:
    assert encode_response(r.Generic("X", (value,))) == b"* X " + expected + b"\r\n"


@pytest.mark.parametrize(
    "response, expected",
    [
        (r.ListResponse((), None, "flat"), b'* LIST () NIL flat\r\n'),
        (r.ListResponse(("\\HasNoChildren",), "\\", "a b"), b'* LIST (\\HasNoChildren) "\\\\" "a b"\r\n'),
        (r.ListResponse(("\\Subscribed",), "/", "Tr&a", extended=(s("CHILDINFO"), plist(s("SUBSCRIBED")))),
         b'* LIST (\\Subscribed) "/" Tr&-a ("CHILDINFO" ("SUBSCRIBED"))\r\n'),
        (r.StatusResponse("Sent Items", (("UIDVALIDITY", 1), ("UNSEEN", 0))), b'* STATUS "Sent Items" (UIDVALIDITY 1 UNSEEN 0)\r\n'),
        (r.SearchResponse((1, 5), modseq=917162500), b"* SEARCH 1 5 (MODSEQ 917162500)\r\n"),
        (r.SearchResponse((), modseq=7), b"* SEARCH (MODSEQ 7)\r\n"),
        (r.SearchResponse((4, 1), modseq=9, keyword="SORT"), b"* SORT 4 1 (MODSEQ 9)\r\n"),
        (r.FlagsResponse(()), b"* FLAGS ()\r\n"),
        (r.Generic("ENABLED", ()), b"* ENABLED\r\n"),
        (r.Generic("VANISHED", (Atom("1:3"),), None), b"* VANISHED 1:3\r\n"),
        (r.Generic("SOMETHING", (1,), number=3), b"* 3 SOMETHING 1\r\n"),
        (r.Tagged("t", NO, "no such message", code("TRYCREATE")), b"t NO [TRYCREATE] no such message\r\n"),
        (r.Tagged("t", OK, "done", code("COPYUID", 38505, Atom("304,319:320"), Atom("3956:3958"))),
         b"t OK [COPYUID 38505 304,319:320 3956:3958] done\r\n"),
        (r.Tagged("t", NO, "bad charset", code("BADCHARSET", atoms("UTF-8", "US-ASCII"))),
         b"t NO [BADCHARSET (UTF-8 US-ASCII)] bad charset\r\n"),
        # Text can never smuggle a line break into the stream.
        (r.Tagged("t", BAD, "evil\r\n* OK injected"), b"t BAD evil  * OK injected\r\n"),
        (r.Continuation("line\nbreak"), b"+ line break\r\n"),
        (r.Tagged("t", OK, ""), b"t OK\r\n"),
    ],
)
def test_response_shapes(response: r.Response, expected: bytes) -> None:
    assert encode_response(response) == expected


@pytest.mark.parametrize(
    "response",
    [
        r.Exists(-1),
        r.Recent(-5),
        r.FetchResponse(0, (("UID", 1),)),
        r.FetchResponse(1, (("UID", -1),)),
        r.FetchResponse(1, (("UID", True),)),
        r.SearchResponse((1, -2)),
        r.SearchResponse((1,), modseq=-1),
        r.StatusResponse("x", (("MESSAGES", -1),)),
        r.Generic("X", (Atom("a\r\nb"),)),
        r.Generic("X", (Atom(""),)),
        r.Tagged("a\r\nb", OK, "x"),
        r.ListResponse((), "ab", "x"),
        r.ListResponse((), "\n", "x"),
        r.Generic("X", (MailboxName("\ud800"),)),
        r.Continuation(data=b"abc\r\n* OK"),
        r.Untagged(OK, "x", code("UIDNEXT", -3)),
    ],
)
def test_invalid_values_are_refused(response: r.Response) -> None:
    with pytest.raises(ValueError):
        encode_response(response)


def test_literal_stream_is_streamed_in_chunks_lazily() -> None:
    produced: list[str] = []

    def chunks() -> Iterator[bytes]:
        produced.append("started")
        yield b"Hello, "
        yield b""
        yield b"World"

    response = r.FetchResponse(7, (("UID", 9), ("BODY[]", LiteralStream(12, chunks)), ("FLAGS", PList(()))))
    iterator = encode_response_chunks(response)
    first = next(iterator)
    assert first == b"* 7 FETCH (UID 9 BODY[] {12}\r\n"
    assert produced == []  # the body is not produced before it is needed
    rest = list(iterator)
    assert rest == [b"Hello, ", b"World", b" FLAGS ())\r\n"]
    assert encode_response(response) == b"* 7 FETCH (UID 9 BODY[] {12}\r\nHello, World FLAGS ())\r\n"


def test_binary_literal_stream() -> None:
    value = LiteralStream(2, lambda: iter([b"\x00\xff"]), binary=True)
    assert encode_response(r.FetchResponse(1, (("BINARY[]", value),))) == b"* 1 FETCH (BINARY[] ~{2}\r\n\x00\xff)\r\n"


@pytest.mark.parametrize("produced", [[b"abc"], [b"abcdef", b"g"], [b"abcdefg"]])
def test_literal_stream_size_mismatch_is_an_error(produced: list[bytes]) -> None:
    value = LiteralStream(6, lambda: iter(produced))
    with pytest.raises(ValueError):
        encode_response(r.FetchResponse(1, (("BODY[]", value),)))

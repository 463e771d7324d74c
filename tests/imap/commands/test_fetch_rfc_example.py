"""The FETCH response example of RFC 3501 §7.4.2, reproduced byte for byte.

The RFC shows ``* 12 FETCH (FLAGS (\\Seen) INTERNALDATE ... BODY (... 3028
92))`` for a 4286-octet message. We build a message with exactly those
header fields, a 3028-octet body of 92 lines and header padding to reach
4286 octets, make it message 12 with \\Seen, and ask for FULL (the macro
whose expansion is the items the RFC shows, in that order).
"""

from __future__ import annotations

import datetime

from tests.imap.commands.harness import MailServer

PDT = datetime.timezone(datetime.timedelta(hours=-7))

RFC_RESPONSE = (
    '* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
    'RFC822.SIZE 4286 ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
    '"IMAP4rev1 WG mtg summary and minutes" '
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    '((NIL NIL "imap" "cac.washington.edu")) '
    '((NIL NIL "minutes" "CNRI.Reston.VA.US")'
    '("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
    '"<B27397-0100000@cac.washington.edu>") '
    'BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92))'
)


def rfc_message() -> bytes:
    header = (
        b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
        b"From: Terry Gray <gray@cac.washington.edu>\r\n"
        b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
        b"To: imap@cac.washington.edu\r\n"
        b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
        b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    )
    # 84 lines of 31 characters and 8 of 30, each with CRLF: 3028 octets.
    body = b"".join(b"m" * 31 + b"\r\n" for _ in range(84))
    body += b"".join(b"n" * 30 + b"\r\n" for _ in range(8))
    assert len(body) == 3028
    padding_size = 4286 - len(body) - len(header) - len(b"X-Pad: \r\n") - 2
    header += b"X-Pad: " + b"p" * padding_size + b"\r\n"
    message = header + b"\r\n" + body
    assert len(message) == 4286
    return message


def test_rfc3501_section_7_4_2_example(server: MailServer) -> None:
    for n in range(11):
        server.append("INBOX", b"Subject: filler %d\r\n\r\nx\r\n" % n)
    server.append("INBOX", rfc_message(), ["\\Seen"],
                  datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=PDT))
    first = server.connect("alice")  # claims \Recent, so the next session has none
    first.ok("a SELECT INBOX")
    client = server.connect("alice")
    client.ok("a SELECT INBOX")
    client.transcript(f"""
        C: b FETCH 12 FULL
        S: {RFC_RESPONSE}
        S: b OK FETCH completed
    """)

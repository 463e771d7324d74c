"""Parser known answers for the synchronisation extensions' grammar:
CONDSTORE/QRESYNC (RFC 7162 §7), ESEARCH (RFC 4731 §3.1), SEARCHRES
(RFC 5182 §4), MOVE (RFC 6851 §6), UID EXPUNGE (RFC 4315 §4); each form
also goes back through ``encode_command`` unchanged."""

from __future__ import annotations

import pytest

from imapd.core.model import SeqRange, SequenceSet
from imapd.imap.wire import commands as c
from imapd.imap.wire.encode_command import encode_command
from imapd.imap.wire.parse import parse_command


def seq(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))


FLAGS = (c.FetchAttribute(c.FetchKind.FLAGS),)
SAVED = SequenceSet((), saved=True)

KNOWN: list[tuple[bytes, c.Command | None]] = [
    (b"A142 SELECT INBOX (CONDSTORE)\r\n", c.Select("A142", "INBOX", condstore=True)),
    (b"a examine Trash (condstore)\r\n", c.Examine("a", "Trash", condstore=True)),
    # RFC 7162 §3.2.5's example, and the optional parts one by one.
    (b"A03 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
     c.Select("A03", "INBOX", qresync=c.QResync(
         67890007, 20050715194045000, seq((41, 41), (43, 211), (214, 541))))),
    (b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000 15000,22500,27000)))\r\n",
     c.Select("B04", "INBOX", qresync=c.QResync(
         67890007, 90060115194045000, seq((1, 29997)),
         (seq((5000, 5000), (7500, 7500), (9000, 9000)), seq((15000, 15000), (22500, 22500), (27000, 27000)))))),
    (b"a SELECT INBOX (QRESYNC (1 2 (1:3 4:6)))\r\n",
     c.Select("a", "INBOX", qresync=c.QResync(1, 2, None, (seq((1, 3)), seq((4, 6)))))),
    (b"a SELECT INBOX (QRESYNC (1 9223372036854775807) CONDSTORE)\r\n",
     c.Select("a", "INBOX", condstore=True, qresync=c.QResync(1, 2**63 - 1))),
    (b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
     c.Fetch("s100", True, seq((1, None)), FLAGS, changedsince=12345)),
    (b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
     c.Fetch("a", True, seq((300, 500)), FLAGS, changedsince=12345, vanished=True)),
    (b"a UID FETCH 1 FLAGS (VANISHED CHANGEDSINCE 0)\r\n",
     c.Fetch("a", True, seq((1, 1)), FLAGS, changedsince=0, vanished=True)),
    (b"a FETCH 1:3 (MODSEQ)\r\n",
     c.Fetch("a", False, seq((1, 3)), (c.FetchAttribute(c.FetchKind.MODSEQ),))),
    (b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)\r\n",
     c.Store("a103", True, seq((6, 6), (4, 4), (8, 8)), c.StoreMode.ADD, True, ("\\Deleted",), 12121230045)),
    (b"a STORE 1 (unchangedsince 0) FLAGS ()\r\n",
     c.Store("a", False, seq((1, 1)), c.StoreMode.REPLACE, False, (), 0)),
    (b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338\r\n',
     c.Search("a", False, None, c.SearchAnd((c.SearchModSeq(620162338, "/flags/\\draft", "all"),)))),
    (b"t SEARCH OR NOT MODSEQ 720162338 LARGER 50000\r\n",
     c.Search("t", False, None, c.SearchAnd((c.SearchOr(
         c.SearchNot(c.SearchModSeq(720162338)), c.SearchSize(True, 50000)),)))),
    (b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n', None),
    (b"A283 SEARCH RETURN () CHARSET UTF-8 ALL\r\n",
     c.Search("A283", False, "UTF-8", c.SearchAnd((c.SearchAll(),)), ())),
    (b"A285 UID SEARCH RETURN (min MAX min) 1:5000\r\n",
     c.Search("A285", True, None, c.SearchAnd((c.SearchSeq(seq((1, 5000))),)), ("MIN", "MAX"))),
    (b"A284 SEARCH RETURN (SAVE) $ UID $\r\n",
     c.Search("A284", False, None, c.SearchAnd((c.SearchSeq(SAVED), c.SearchUid(SAVED))), ("SAVE",))),
    (b"a UID MOVE 42:69 foo\r\n", c.Move("a", True, seq((42, 69)), "foo")),
    (b"a MOVE $ &AOQ-\r\n", c.Move("a", False, SAVED, "\u00e4")),
    (b"A003 UID EXPUNGE 3000:3002\r\n", c.UidExpunge("A003", seq((3000, 3002)))),
]


@pytest.mark.parametrize("frame, expected", KNOWN)
def test_known_answers_and_round_trip(frame: bytes, expected: c.Command | None) -> None:
    parsed = parse_command(frame)
    assert not isinstance(parsed, c.CommandSyntaxError), parsed
    if expected is not None:
        assert parsed == expected
    assert parse_command(encode_command(parsed)) == parsed


ERRORS: list[tuple[bytes, str]] = [
    (b"a SELECT INBOX (QRESYNC (0 1))\r\n", "Invalid UIDVALIDITY: must not be zero"),
    (b"a SELECT INBOX (QRESYNC (1 0))\r\n", "Invalid mod-sequence: must not be zero"),
    (b"a SELECT INBOX (QRESYNC (1 9223372036854775808))\r\n", "Invalid mod-sequence: too large"),
    (b"a SELECT INBOX (QRESYNC (1 2 1:*))\r\n", "Invalid known UIDs: '*' and '$' are not allowed"),
    (b"a SELECT INBOX (QRESYNC (1 2 (1:* 3)))\r\n",
     "Invalid known sequence set: '*' and '$' are not allowed"),
    (b"a SELECT INBOX (QRESYNC (1 2 3 4))\r\n",
     "Invalid QRESYNC parameters: expected '(' for sequence match data"),
    (b"a SELECT INBOX (CONDSTORE CONDSTORE)\r\n", "Unknown or repeated SELECT parameter CONDSTORE"),
    (b"a SELECT INBOX (FOO)\r\n", "Unknown or repeated SELECT parameter FOO"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)\r\n", "VANISHED is only allowed in UID FETCH"),
    (b"a UID FETCH 1 FLAGS (VANISHED)\r\n", "VANISHED requires CHANGEDSINCE"),
    (b"a UID FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)\r\n",
     "Unknown or repeated FETCH modifier CHANGEDSINCE"),
    (b"a STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS ()\r\n",
     "Invalid STORE modifiers: expected ')' (one UNCHANGEDSINCE only)"),
    (b"a STORE 1 (FOO 1) FLAGS ()\r\n", "Unknown STORE modifier FOO"),
    (b'a SEARCH MODSEQ "/other/x" all 1\r\n', 'Invalid entry name for MODSEQ: expected "/flags/<flag>"'),
    (b'a SEARCH MODSEQ "/flags/\\\\seen" both 1\r\n',
     "Invalid entry type for MODSEQ: expected priv, shared or all"),
    (b"a SEARCH RETURN (RELEVANCY) ALL\r\n", "Unsupported SEARCH RETURN option RELEVANCY"),
    (b"a MOVE 1\r\n", "Missing mailbox name"),
    (b"a UID EXPUNGE\r\n", "Missing UID set"),
]


@pytest.mark.parametrize("frame, reason", ERRORS)
def test_syntax_errors_name_the_problem(frame: bytes, reason: str) -> None:
    assert parse_command(frame) == c.CommandSyntaxError("a", reason)
